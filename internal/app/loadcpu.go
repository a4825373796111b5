package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/slackfake"
	"github.com/redis/go-redis/v9"
)

// Who spent the CPU of a load run. In local mode the fake Slack, the BTP
// emulator, the load driver and, without REDIS_URL, miniredis all run in the
// bot's process, so the process's CPU time alone says little about the bot.
const (
	partBot     = "bot"
	partSlack   = "fake Slack"
	partDriver  = "load driver"
	partBTP     = "BTP emulator"
	partRedis   = "in-process Redis"
	partRuntime = "Go runtime (GC, scheduler)"
)

// driverLabel marks the load driver's goroutines (and the HTTP connections
// they dial) in CPU profiles, beside the fake Slack's own label.
const driverLabel = "driver"

// cpuMeter measures a load run: the process's CPU time and peak RSS from
// getrusage, and a CPU profile taken meanwhile to share the CPU out by part —
// by goroutine label for the fake Slack and the driver, by stack frames for
// the BTP emulator and miniredis. What is left is the bot, less the Go
// runtime's own goroutines (GC workers, scheduler), which no one part owns.
type cpuMeter struct {
	prof      bytes.Buffer
	profiling bool
	cpu0      time.Duration
	// The Redis server's own CPU, from INFO: on the same machine it shares
	// the cores with the process, and a flow costs it CPU too.
	rdb    redis.UniversalClient
	redis0 time.Duration
	redisK bool
}

func startCPUMeter(rdb redis.UniversalClient) *cpuMeter {
	m := &cpuMeter{cpu0: processCPU(), rdb: rdb}
	m.redis0, m.redisK = redisCPU(rdb)
	m.profiling = pprof.StartCPUProfile(&m.prof) == nil // fails if one runs already
	return m
}

// redisCPU is the CPU time the Redis server has used since it started
// (INFO cpu: used_cpu_sys + used_cpu_user). ok is false for anything but one
// real server (miniredis has no such figures; a cluster spreads over nodes).
func redisCPU(rdb redis.UniversalClient) (time.Duration, bool) {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	var total float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		total += f
		found++
	}
	if found != 2 {
		return 0, false
	}
	return time.Duration(total * float64(time.Second)), true
}

// cpuUse is what a cpuMeter saw.
type cpuUse struct {
	Total   time.Duration      // process CPU time, user + system
	Redis   time.Duration      // the Redis server's CPU time meanwhile; 0 if unknown
	Samples int                // profile samples; 0 when no profile could be taken
	Share   map[string]float64 // part → share of the profiled CPU
	MaxRSS  int64              // bytes, the process's peak since it started; 0 if unknown
	// DriverApart: the load driver ran in a process of its own.
	DriverApart bool
}

func (m *cpuMeter) stop() cpuUse {
	if m.profiling {
		pprof.StopCPUProfile()
	}
	u := cpuUse{Total: processCPU() - m.cpu0, MaxRSS: peakRSS()}
	if r1, ok := redisCPU(m.rdb); ok && m.redisK {
		u.Redis = r1 - m.redis0
	}
	if m.profiling {
		u.Samples, u.Share, _ = splitProfile(m.prof.Bytes())
	}
	return u
}

// saveProfile writes the run's CPU profile to path, for `go tool pprof`.
func (m *cpuMeter) saveProfile(path string) error {
	if !m.profiling {
		return errors.New("no CPU profile was taken: another one was running")
	}
	if err := os.WriteFile(path, m.prof.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write the CPU profile: %w", err)
	}
	return nil
}

// report prints the CPU per unit of work (n of them) and the peak RSS, saying
// what each figure includes.
func (u cpuUse) report(w io.Writer, n int, unit string) {
	if n <= 0 {
		n = 1
	}
	per := func(f float64) string {
		return (time.Duration(f * float64(u.Total) / float64(n))).Round(10 * time.Microsecond).String()
	}
	if u.Total <= 0 {
		return // not measured on this platform
	}
	with, driver := "the fake Slack, the BTP emulator, the load driver and (without REDIS_URL) miniredis", ""
	if u.DriverApart {
		with, driver = "the fake Slack, the BTP emulator and (without REDIS_URL) miniredis", "; the load driver ran in a process of its own"
	}
	fmt.Fprintf(w, "CPU: %s in all, %s per %s — the whole process: the bot and, in the same process, %s\n",
		u.Total.Round(time.Millisecond), per(1), unit, with)
	if u.Samples > 0 {
		parts := []string{partBot, partSlack, partDriver, partBTP, partRedis, partRuntime}
		var line []string
		for _, p := range parts {
			line = append(line, fmt.Sprintf("%s %.0f%%", p, 100*u.Share[p]))
		}
		fmt.Fprintf(w, "  by CPU profile (%d samples): %s\n", u.Samples, strings.Join(line, ", "))
		bot, rt := u.Share[partBot], u.Share[partRuntime]
		withRT := bot
		if rt < 1 {
			withRT = bot / (1 - rt) // the bot's proportional share of the runtime's work
		}
		fmt.Fprintf(w, "  bot alone: %s per %s (%s with its share of the Go runtime); the BTP emulator's and fake Slack's HTTP parsing before their handlers count as bot\n",
			per(bot), unit, per(withRT))
	}
	if u.Redis > 0 {
		fmt.Fprintf(w, "redis-server: %s CPU in all, %s per %s (its own process, from INFO cpu; on the same machine it shares the cores)\n",
			u.Redis.Round(time.Millisecond), (u.Redis / time.Duration(n)).Round(10*time.Microsecond), unit)
	}
	if u.MaxRSS > 0 {
		fmt.Fprintf(w, "peak RSS: %.0f MB (the whole process since it started, fake Slack and emulator included%s)\n", float64(u.MaxRSS)/(1<<20), driver)
	}
}

// splitProfile shares a CPU profile's time out by part. It reads the profile
// (gzipped protobuf, as runtime/pprof writes it) just far enough for that: the
// samples, their labels and the function names of their stacks.
func splitProfile(gz []byte) (int, map[string]float64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return 0, nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return 0, nil, err
	}
	type sample struct {
		locs   []uint64
		values []uint64
		labels [][2]uint64 // key, value: string table indexes
	}
	var (
		strs     []string
		samples  []sample
		funcName = map[uint64]uint64{}   // function id → name
		locFuncs = map[uint64][]uint64{} // location id → function ids, inlined ones too
	)
	err = pbFields(raw, func(f int, wt int, v uint64, b []byte) error {
		switch f {
		case 2: // sample
			var s sample
			err := pbFields(b, func(f int, wt int, v uint64, b []byte) error {
				switch f {
				case 1:
					s.locs = pbUints(s.locs, wt, v, b)
				case 2:
					s.values = pbUints(s.values, wt, v, b)
				case 3:
					var l [2]uint64
					err := pbFields(b, func(f int, _ int, v uint64, _ []byte) error {
						if f == 1 || f == 2 {
							l[f-1] = v
						}
						return nil
					})
					s.labels = append(s.labels, l)
					return err
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4: // location
			var id uint64
			var fns []uint64
			err := pbFields(b, func(f int, _ int, v uint64, b []byte) error {
				switch f {
				case 1:
					id = v
				case 4: // line
					return pbFields(b, func(f int, _ int, v uint64, _ []byte) error {
						if f == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			locFuncs[id] = fns
			return err
		case 5: // function
			var id, name uint64
			err := pbFields(b, func(f int, _ int, v uint64, _ []byte) error {
				switch f {
				case 1:
					id = v
				case 2:
					name = v
				}
				return nil
			})
			funcName[id] = name
			return err
		case 6: // string table
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	str := func(i uint64) string {
		if i < uint64(len(strs)) {
			return strs[i]
		}
		return ""
	}
	byPart := map[string]float64{}
	var total float64
	n := 0
	for _, s := range samples {
		if len(s.values) == 0 {
			continue
		}
		n += int(s.values[0])
		weight := float64(s.values[len(s.values)-1]) // cpu nanoseconds
		var frames []string
		for _, l := range s.locs {
			for _, f := range locFuncs[l] {
				frames = append(frames, str(funcName[f]))
			}
		}
		labels := map[string]string{}
		for _, l := range s.labels {
			labels[str(l[0])] = str(l[1])
		}
		byPart[partOf(labels[slackfake.ProfileLabel], frames)] += weight
		total += weight
	}
	if total == 0 {
		return 0, nil, errors.New("empty profile")
	}
	for p := range byPart {
		byPart[p] /= total
	}
	return n, byPart, nil
}

// partOf says who spent a sample, from its goroutine's label and its stack.
func partOf(label string, frames []string) string {
	switch label {
	case slackfake.ProfileLabelValue:
		return partSlack
	case driverLabel:
		return partDriver
	}
	for _, f := range frames {
		switch {
		case strings.Contains(f, "/internal/slackfake."):
			return partSlack
		case strings.Contains(f, "/internal/btp/btptest."):
			return partBTP
		case strings.HasPrefix(f, "github.com/alicebob/miniredis/"):
			return partRedis
		}
	}
	if !slices.ContainsFunc(frames, func(f string) bool {
		return !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/runtime/")
	}) {
		return partRuntime
	}
	return partBot
}

// pbFields calls f with each field of a protobuf message: its number, wire
// type, and its value (varint and fixed types) or bytes (length-delimited).
func pbFields(b []byte, f func(field, wireType int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("profile: bad field key")
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch wt := key & 7; wt {
		case 0:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("profile: bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("profile: short fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("profile: bad length")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("profile: short fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("profile: wire type %d", wt)
		}
		if err := f(int(key>>3), int(key&7), v, data); err != nil {
			return err
		}
	}
	return nil
}

// pbUints appends a repeated integer field, packed (wire type 2) or not.
func pbUints(to []uint64, wireType int, v uint64, data []byte) []uint64 {
	if wireType != 2 {
		return append(to, v)
	}
	for len(data) > 0 {
		x, n := binary.Uvarint(data)
		if n <= 0 {
			break
		}
		to, data = append(to, x), data[n:]
	}
	return to
}
