package app

import (
	"bytes"
	"context"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/slackfake"
)

// steadyLines are what the steady runs of a burst at 50/s for 200ms print:
// ten commands each, the floor's beside the bot's counted apart, each bot
// run's commands carried out, and both ratios.
var steadyLines = []string{
	"floor (slack-go verify + parse + 200) alone, 50/s for 200ms: 10 acks, 0 failed",
	"bot alone, 50/s for 200ms: 10 acks, 0 failed",
	"bot with the floor beside it (50/s each, interleaved) for 200ms: 10 acks, 0 failed",
	"the floor beside it: 10 acks, 0 failed",
	"carried out: 10 of 10 acked commands",
	"bot/floor ack p99 at 50/s, each alone: ",
	"bot/floor ack p99 at 50/s, side by side: ",
}

func TestBurstCommandChecksEveryCommandWasCarriedOut(t *testing.T) {
	h := start(t, nil)
	var out bytes.Buffer
	err := h.Burst(ctxT(t), BurstOptions{N: 30, Conc: 10, Rate: 50, Steady: 200 * time.Millisecond, Drain: 20 * time.Second}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range append(steadyLines, "burst of 30, 10 in flight: 30 acks, 0 failed",
		"carried out: 30 of 30 acked commands got a reply through their response_url (0 of them warnings) and 30 an approval message") {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCPUProfileTellsTheDriverFromTheFakeAndTheBot(t *testing.T) {
	spin := func(ctx context.Context, d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	m := startCPUMeter(nil)
	if !m.profiling {
		t.Skip("a CPU profile is running already")
	}
	pprof.Do(context.Background(), pprof.Labels(slackfake.ProfileLabel, driverLabel), func(ctx context.Context) { spin(ctx, 300*time.Millisecond) })
	pprof.Do(context.Background(), pprof.Labels(slackfake.ProfileLabel, slackfake.ProfileLabelValue), func(ctx context.Context) { spin(ctx, 300*time.Millisecond) })
	spin(context.Background(), 300*time.Millisecond)
	u := m.stop()
	if u.Samples == 0 {
		t.Skip("no samples: too busy a machine to profile")
	}
	for _, p := range []string{partDriver, partSlack, partBot} {
		if u.Share[p] < 0.1 {
			t.Errorf("%s got %.0f%% of three equal spins: %v", p, 100*u.Share[p], u.Share)
		}
	}
}

// With the sender in a process of its own (load -burst's default), the run is
// carried out as from this process, and the sender's memory is told apart
// from the bot's.
func TestBurstFromASenderInAProcessOfItsOwn(t *testing.T) {
	h := start(t, nil)
	var out bytes.Buffer
	err := h.Burst(ctxT(t), BurstOptions{N: 30, Conc: 10, Rate: 50, Steady: 200 * time.Millisecond, Drain: 20 * time.Second,
		Driver: []string{os.Args[0], "-test.run=^TestLoadDriverChild$"}, DriverEnv: []string{"CREDBOT_TEST_LOAD_DRIVER=1"}}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range append(steadyLines, "burst of 30, 10 in flight: 30 acks, 0 failed",
		"carried out: 30 of 30 acked commands got a reply through their response_url (0 of them warnings) and 30 an approval message",
		"the load driver ran in a process of its own", "the sender, in a process of its own: peak RSS") {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "the last -") {
		t.Errorf("the last command was carried out before its ack:\n%s", out.String())
	}
}

// TestLoadDriverChild is not a test: it is the sender that
// TestBurstFromASenderInAProcessOfItsOwn starts.
func TestLoadDriverChild(t *testing.T) {
	if os.Getenv("CREDBOT_TEST_LOAD_DRIVER") == "" {
		t.Skip("runs only as the child of TestBurstFromASenderInAProcessOfItsOwn")
	}
	if err := RunLoadDriver(context.Background(), os.Stdin, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// A sender given a run it cannot fire says so and sends nothing.
func TestLoadDriverRefusesAnEmptyRun(t *testing.T) {
	for _, in := range []string{"", "{", `{"bot_url":"http://127.0.0.1:1"}`, `{"bot_url":"http://127.0.0.1:1","responses":"http://127.0.0.1:1/response/"}`} {
		var out bytes.Buffer
		if err := RunLoadDriver(context.Background(), strings.NewReader(in), &out); err == nil || out.Len() > 0 {
			t.Errorf("%q: err %v, wrote %q; want an error and nothing written", in, err, out.String())
		}
	}
}
