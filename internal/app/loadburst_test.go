package app

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/slackfake"
)

func TestBurstCommandChecksEveryCommandWasCarriedOut(t *testing.T) {
	h := start(t, nil)
	var out bytes.Buffer
	err := h.Burst(ctxT(t), BurstOptions{N: 30, Conc: 10, Rate: 50, Steady: 200 * time.Millisecond, Drain: 20 * time.Second}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"floor (slack-go verify + parse + 200)", "bot/floor ack p99", "burst of 30, 10 in flight: 30 acks, 0 failed",
		"carried out: 30 of 30 acked commands got a reply through their response_url (0 of them warnings) and 30 an approval message"} {
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
