package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/slack-go/slack"
)

// BurstOptions are the knobs of a command burst.
type BurstOptions struct {
	N, Conc int // commands to fire, and how many in flight at a time
	// Rate and Steady set the steady runs before the burst: Rate requests
	// per second for Steady at a bare slack-go handler (the floor), at the
	// bot, and at both side by side (Rate each, interleaved). Steady 0 skips
	// them.
	Rate   int
	Steady time.Duration
	// Drain bounds the wait for the bot to carry out the commands of a run
	// (default 5m).
	Drain time.Duration
	// CPUProfile, when set, is a file to write the burst's CPU profile to.
	CPUProfile string
	// Driver, when set, is the command of a sender in a process of its own
	// (one that runs RunLoadDriver; DriverEnv is added to its environment):
	// then the process's peak RSS and CPU are the bot's, with the fake Slack
	// and the emulator, but without the sender's connections and goroutines.
	// Without it the commands are sent from this process.
	Driver    []string
	DriverEnv []string
}

// Burst fires signed /credbot create commands at the bot's HTTP handler,
// conc at a time, and prints their ack latency; then it waits until every
// command was carried out — a reply through its response_url and an approval
// message naming it, as the fake Slack received them — and fails if any was
// lost.
//
// Before the burst, steady runs at the same rate, by the same client, compare
// the bot's ack with the least any slack-go app does before it acks (verify
// the signature over the raw body, parse the command, answer 200): that floor
// alone, the bot alone, then the two side by side (compareAcks).
func (l *Local) Burst(ctx context.Context, o BurstOptions, w io.Writer) error {
	if o.Drain <= 0 {
		o.Drain = 5 * time.Minute
	}
	// Names differ from run to run: a pending request reserves its name.
	run := randomHex(3)
	base := driverRun{
		BotURL: l.Workspace.BotURL, Secret: l.Config.SigningSecret, Team: l.Workspace.Team, Command: l.Workspace.Command,
		User: Requester.ID, UserName: Requester.Name, Responses: "http://" + l.Slack.Host() + "/response/",
	}
	var child *childDriver
	if len(o.Driver) > 0 {
		child = &childDriver{argv: o.Driver, env: o.DriverEnv}
	}
	send := func(ctx context.Context, r driverRun) runResult {
		if child != nil {
			res, err := child.fire(ctx, r)
			if err != nil {
				res.failed = max(r.N, 1) // nothing came back: count the run as failed
				fmt.Fprintf(w, "%v\n", err)
			}
			return res
		}
		ws := workspaceFor(r, l.Slack)
		defer ws.HTTP.CloseIdleConnections() // else the bot's shutdown waits for them
		return fire(ctx, ws, r)
	}
	steady := func(url, beside, tag string) runResult {
		r := base
		r.BotURL, r.BesideURL, r.Tag, r.Rate, r.Steady = url, beside, tag, o.Rate, o.Steady
		return send(ctx, r)
	}
	var errs []error
	// The driver's goroutines, and the connections they dial, carry a label
	// so that the CPU profile can tell them from the bot's.
	pprof.Do(ctx, pprof.Labels(slackfake.ProfileLabel, driverLabel), func(ctx context.Context) {
		if o.Steady > 0 {
			errs = append(errs, l.compareAcks(ctx, w, o, run, steady))
		}

		tr := l.track("burst-" + run)
		meter := startCPUMeter(l.App.rdb)
		start := time.Now()
		r := base
		r.Tag, r.N, r.Conc = "burst-"+run, o.N, o.Conc
		burst := send(ctx, r)
		took := time.Since(start)
		burst.print(w, fmt.Sprintf("burst of %d, %d in flight", o.N, o.Conc))
		fmt.Fprintf(w, "  fired in %s: %.0f acks/s; %d acks slower than Slack's 3s\n",
			took.Round(time.Millisecond), float64(len(burst.lat))/took.Seconds(), countOver(burst.lat, 3*time.Second))
		errs = append(errs, tr.await(ctx, w, burst, o.Drain))
		use := meter.stop()
		use.DriverApart = child != nil
		use.report(w, o.N, "command")
		if child != nil && child.maxRSS > 0 {
			fmt.Fprintf(w, "the sender, in a process of its own: peak RSS %d MB\n", child.maxRSS>>20)
		}
		if o.CPUProfile != "" {
			errs = append(errs, meter.saveProfile(o.CPUProfile))
		}
	})
	return errors.Join(errs...)
}

// compareAcks runs the steady runs of Burst: the floor alone, the bot alone,
// then the bot with the floor beside it, and prints the two ratios. Alone, the
// floor has the cores to itself, while the bot's acks share them with the
// work they start (its workers, the fake Slack, the emulator, redis-server)
// and the sender: that ratio tells the machine's load as much as the ack.
// Side by side, the floor is served by the bot's process and its requests
// fall half-way between the bot's, so both meet the same moments: that ratio
// is what the bot's ack itself adds.
func (l *Local) compareAcks(ctx context.Context, w io.Writer, o BurstOptions, run string, steady func(url, beside, tag string) runResult) error {
	every := fmt.Sprintf("%d/s for %s", o.Rate, o.Steady)
	floorURL, stop, err := serveFloor(l.Config.SigningSecret)
	if err != nil {
		return err
	}
	floor := steady(floorURL, "", "floor-"+run)
	stop()
	floorAlone := floor.print(w, "floor (slack-go verify + parse + 200) alone, "+every)

	var errs []error
	botRun := func(beside, tag, what string) runResult {
		tr := l.track(tag)
		bot := steady(l.Workspace.BotURL, beside, tag)
		bot.p99 = bot.print(w, what)
		if beside != "" {
			bot.besideP99 = printLatencies(w, "  the floor beside it", bot.beside, bot.besideFailed)
		}
		errs = append(errs, tr.await(ctx, w, bot, o.Drain))
		return bot
	}
	alone := botRun("", "steady-"+run, "bot alone, "+every)
	if besideURL, stop, err := serveFloor(l.Config.SigningSecret); err != nil {
		errs = append(errs, err)
	} else {
		both := botRun(besideURL, "beside-"+run, fmt.Sprintf("bot with the floor beside it (%d/s each, interleaved) for %s", o.Rate, o.Steady))
		stop()
		if floorAlone > 0 && alone.p99 > 0 {
			fmt.Fprintf(w, "bot/floor ack p99 at %d/s, each alone: %.1f× (%s / %s): the floor had the cores to itself, the bot shared them with the work its acks start, redis-server and the sender\n",
				o.Rate, float64(alone.p99)/float64(floorAlone), rounded(alone.p99), rounded(floorAlone))
		}
		if both.besideP99 > 0 && both.p99 > 0 {
			fmt.Fprintf(w, "bot/floor ack p99 at %d/s, side by side: %.1f× (%s / %s): the same process and moments for both, so what the bot's ack adds (it records the command in Redis before it answers)\n",
				o.Rate, float64(both.p99)/float64(both.besideP99), rounded(both.p99), rounded(both.besideP99))
		}
	}
	return errors.Join(errs...)
}

// runResult is what a run of commands got back.
type runResult struct {
	lat     []time.Duration // of the 200 acks
	acked   []sentCommand
	failed  int       // errors and other statuses
	lastAck time.Time // when the last 200 came
	// beside and besideFailed are a steady run's second handler's, if any.
	beside         []time.Duration
	besideFailed   int
	p99, besideP99 time.Duration // once printed
}

type sentCommand struct {
	Name        string `json:"name"`
	ResponseURL string `json:"response_url"`
}

func (r *runResult) add(name string, ack slackfake.Ack, err error) {
	if err != nil || ack.Status != http.StatusOK {
		r.failed++
		return
	}
	r.lat = append(r.lat, ack.Latency)
	r.acked = append(r.acked, sentCommand{name, ack.ResponseURL})
	r.lastAck = time.Now()
}

func (r *runResult) addBeside(ack slackfake.Ack, err error) {
	if err != nil || ack.Status != http.StatusOK {
		r.besideFailed++
		return
	}
	r.beside = append(r.beside, ack.Latency)
}

// print prints the ack latencies and returns their p99 (not rounded).
func (r runResult) print(w io.Writer, what string) time.Duration {
	return printLatencies(w, what, r.lat, r.failed)
}

// printLatencies prints the latencies of the 200 acks in lat and returns
// their p99, not rounded: a ratio of rounded figures would be coarse.
func printLatencies(w io.Writer, what string, lat []time.Duration, failed int) time.Duration {
	if len(lat) == 0 {
		fmt.Fprintf(w, "%s: no acks, %d failed\n", what, failed)
		return 0
	}
	p := percentiles(lat) // sorts lat
	fmt.Fprintf(w, "%s: %d acks, %d failed; ack p50 %s, p99 %s, max %s\n", what, len(lat), failed, p(50), p(99), p(100))
	return lat[(len(lat)-1)*99/100]
}

func countOver(lat []time.Duration, limit time.Duration) int {
	n := 0
	for _, d := range lat {
		if d > limit {
			n++
		}
	}
	return n
}

func sendCommand(ctx context.Context, ws *slackfake.Workspace, p slackfake.Person, tag string, i int) (string, slackfake.Ack, error) {
	name := fmt.Sprintf("%s-%05d", tag, i)
	ack, err := ws.Slash(ctx, p, fmt.Sprintf(`create --subaccount %s --name %s --reason "burst test"`, btptest.DefaultSubaccount, name))
	return name, ack, err
}

// steadyRun sends commands at rate per second for d, whatever the answers
// take (an open loop). With beside, the same schedule shifted by half a
// period goes to a second handler too, whose latencies come back apart: the
// two meet the same moments of the run.
func steadyRun(ctx context.Context, ws, beside *slackfake.Workspace, p slackfake.Person, rate int, d time.Duration, tag string) runResult {
	var mu sync.Mutex
	var r runResult
	var wg sync.WaitGroup
	every := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Duration(i)*every < d && ctx.Err() == nil; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		wg.Go(func() {
			name, ack, err := sendCommand(ctx, ws, p, tag, i)
			mu.Lock()
			defer mu.Unlock()
			r.add(name, ack, err)
		})
		if beside == nil {
			continue
		}
		time.Sleep(time.Until(start.Add(time.Duration(i)*every + every/2)))
		wg.Go(func() {
			_, ack, err := sendCommand(ctx, beside, p, tag+"-beside", i)
			mu.Lock()
			defer mu.Unlock()
			r.addBeside(ack, err)
		})
	}
	wg.Wait()
	return r
}

// closedRun sends n commands, conc at a time, each as soon as one is answered.
func closedRun(ctx context.Context, ws *slackfake.Workspace, p slackfake.Person, n, conc int, tag string) runResult {
	var mu sync.Mutex
	r := runResult{lat: make([]time.Duration, 0, n), acked: make([]sentCommand, 0, n)}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				name, ack, err := sendCommand(ctx, ws, p, tag, i)
				mu.Lock()
				r.add(name, ack, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return r
}

// serveFloor serves the least a slack-go app does before it acks a slash
// command, on a server set up as the bot's; it returns its URL and a stop.
func serveFloor(secret string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/commands", func(w http.ResponseWriter, r *http.Request) {
		sv, err := slack.NewSecretsVerifier(r.Header, secret)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.TeeReader(http.MaxBytesReader(w, r.Body, handlers.MaxBody), &sv))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := sv.Ensure(); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if _, err := slack.SlashCommandParse(r); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// commandTracker follows, in the fake Slack, what became of the commands of
// one run (names tag-00000…): which response_urls got a reply and which names
// an approval message. It reads only what Slack would have received, so it
// holds whatever the bot does inside.
type commandTracker struct {
	tag    string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // the match runs on the fake's goroutines
	replied map[string]bool
	warned  int // replies that were warnings, not confirmations
	posted  map[string]bool
	last    time.Time // when the latest of them reached Slack
}

// track starts following the commands of a run tagged tag; call it before
// the run.
func (l *Local) track(tag string) *commandTracker {
	t := &commandTracker{tag: tag, done: make(chan struct{}), replied: map[string]bool{}, posted: map[string]bool{}}
	var ctx context.Context
	ctx, t.cancel = context.WithCancel(context.Background())
	mark := l.Slack.Mark()
	prefix := `"Name: ` + tag + "-"
	go func() {
		defer close(t.done)
		_, _ = l.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
			t.mu.Lock()
			defer t.mu.Unlock()
			switch {
			case c.Method == "response_url":
				if strings.Contains(c.Body, ":warning:") {
					t.warned++
				}
				t.replied[c.URL], t.last = true, c.At
			case c.Method == "chat.postMessage" && c.Channel == localApprovals && c.ThreadTS == "":
				b := c.Params.Get("blocks")
				if i := strings.Index(b, prefix); i >= 0 {
					name, _, _ := strings.Cut(b[i+len(`"Name: `):], `"`)
					t.posted[name], t.last = true, c.At
				}
			}
			return false // follow until cancelled
		})
	}()
	return t
}

// settled reports whether every acked command of run was carried out. It
// looks at each only once enough calls came.
func (t *commandTracker) settled(run runResult) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.replied) < len(run.acked) || len(t.posted) < len(run.acked) {
		return false
	}
	for _, c := range run.acked {
		if !t.replied[c.ResponseURL] || !t.posted[c.Name] {
			return false
		}
	}
	return true
}

// await waits until every acked command of run was carried out, or drain
// passes, prints the outcome, and fails if any command was lost.
func (t *commandTracker) await(ctx context.Context, w io.Writer, run runResult, drain time.Duration) error {
	lastAck := run.lastAck
	if lastAck.IsZero() {
		lastAck = time.Now()
	}
	deadline := time.After(drain)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		if t.settled(run) {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	t.cancel()
	<-t.done // no more matches: what the tracker holds is final
	want := len(run.acked)
	noReply, noPost := []string{}, []string{}
	for _, c := range run.acked {
		if !t.replied[c.ResponseURL] {
			noReply = append(noReply, c.Name)
		}
		if !t.posted[c.Name] {
			noPost = append(noPost, c.Name)
		}
	}
	after := "-"
	if !t.last.IsZero() {
		after = t.last.Sub(lastAck).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "  carried out: %d of %d acked commands got a reply through their response_url (%d of them warnings) and %d an approval message; the last %s after the last ack\n",
		want-len(noReply), want, t.warned, want-len(noPost), after)
	switch {
	case len(noReply)+len(noPost) > 0:
		return fmt.Errorf("%s: LOST after waiting %s: %d commands without a reply (first %v), %d without an approval message (first %v)",
			t.tag, drain, len(noReply), noReply[:min(len(noReply), 3)], len(noPost), noPost[:min(len(noPost), 3)])
	case t.warned > 0:
		return fmt.Errorf("%s: %d commands were answered with a warning", t.tag, t.warned)
	}
	return nil
}
