package app

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// LoadOptions are the knobs of a load run.
type LoadOptions struct {
	N, Conc int
	// BTP, when the bot was started with its Hooks, times the BTP part of
	// each mint, so that the bot's own latency can be shown without it.
	BTP *MintTimer
	// CPUProfile, when set, is a file to write the run's CPU profile to.
	CPUProfile string
}

// The steps of one loop, as Load reports them.
const (
	stepAck = iota
	stepPosted
	stepApproveDM
	stepRevealSecret
	stepApproveShown
	stepLessBTP
	stepBTP
	stepWhole
	nSteps
)

var stepNames = [nSteps]string{
	stepAck:          "ack of /credbot create",
	stepPosted:       "command → approval message",
	stepApproveDM:    "approve click → DM with Reveal",
	stepRevealSecret: "reveal click → secret",
	stepApproveShown: "approve click → secret shown ¹",
	stepLessBTP:      "  … less BTP ²",
	stepBTP:          "BTP get + create ²",
	stepWhole:        "whole loop",
}

// Load runs n whole loops — request, approval, mint, reveal — through the local
// bot, conc at a time, and prints latency percentiles of each step. It fails if
// any loop does not end with exactly one revealed secret.
func (l *Local) Load(ctx context.Context, n, conc int, w io.Writer) error {
	return l.LoadWith(ctx, LoadOptions{N: n, Conc: conc}, w)
}

// LoadWith is Load with every option. Besides latencies it prints the flows
// per second, the process's CPU per flow (and the bot's part of it) and its
// peak RSS.
func (l *Local) LoadWith(ctx context.Context, o LoadOptions, w io.Writer) error {
	n, conc := o.N, o.Conc
	var lat [nSteps][]time.Duration
	var mu sync.Mutex
	var errs []error
	ws := l.loadWorkspace(conc)
	defer ws.HTTP.CloseIdleConnections() // else the bot's shutdown waits for them
	// Names differ from run to run: a name stays reserved while its credential lives.
	run := randomHex(3)
	meter := startCPUMeter(l.App.rdb)
	start := time.Now()
	// The driver's goroutines, and the connections they dial, carry a label
	// so that the CPU profile can tell them from the bot's.
	pprof.Do(ctx, pprof.Labels(slackfake.ProfileLabel, driverLabel), func(ctx context.Context) {
		sem := make(chan struct{}, conc)
		var wg sync.WaitGroup
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				d, err := l.loop(ctx, ws, run, i, o.BTP)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("loop %d: %w", i, err))
					return
				}
				for s := range d {
					if d[s] >= 0 {
						lat[s] = append(lat[s], d[s])
					}
				}
			})
		}
		wg.Wait()
	})
	total := time.Since(start)
	use := meter.stop()
	if o.CPUProfile != "" {
		if err := meter.saveProfile(o.CPUProfile); err != nil {
			errs = append(errs, err)
		}
	}
	done := len(lat[stepWhole])
	fmt.Fprintf(w, "%d loops, %d at a time, in %s: %d complete flows, %.1f flows/s\n", n, conc, total.Round(time.Millisecond), done, float64(done)/total.Seconds())
	fmt.Fprintf(w, "%-34s %9s %9s %9s %9s\n", "step", "p50", "p95", "p99", "max")
	for s, name := range stepNames {
		if len(lat[s]) > 0 {
			p := percentiles(lat[s])
			fmt.Fprintf(w, "%-34s %9s %9s %9s %9s\n", name, p(50), p(95), p(99), p(100))
		}
	}
	fmt.Fprintln(w, "¹ approve click → DM plus reveal click → secret: the bot's part, without the driver's turn between them")
	if o.BTP != nil {
		fmt.Fprintln(w, "² BTP: from the mint's claim to the credential created at BTP (the name check, the create, and the claim of the name in Redis)")
	}
	use.report(w, done, "flow")
	if len(lat[stepWhole]) > 0 {
		whole := percentiles(lat[stepWhole])
		fmt.Fprintf(w, "targets: ≥ 300 flows/s at c=50 (here %.0f at c=%d); whole loop p99 ≤ 250ms (here %s)", float64(done)/total.Seconds(), conc, whole(99))
		if len(lat[stepLessBTP]) > 0 {
			fmt.Fprintf(w, "; at c=1 approve click → secret shown less BTP p99 ≤ 25ms (here %s at c=%d)", percentiles(lat[stepLessBTP])(99), conc)
		}
		fmt.Fprintln(w)
	}
	if l.BTP != nil {
		live := len(l.BTP.Live(approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}))
		fmt.Fprintf(w, "BTP: %d creates, %d live credentials\n", l.BTP.Count("create"), live)
		if got := l.BTP.Count("create"); got != n && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("BTP saw %d creates for %d loops", got, n))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d loops failed; first: %w", len(errs), n, errs[0])
	}
	return nil
}

// percentiles sorts d and returns its q-th percentile for q in 0..100.
func percentiles(d []time.Duration) func(q int) time.Duration {
	slices.Sort(d)
	return func(q int) time.Duration { return rounded(d[(len(d)-1)*q/100]) }
}

// rounded is a latency as printed: to 100µs.
func rounded(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

// loadWorkspace is the local workspace with a client of its own that keeps
// a connection per concurrent loop (keepAliveClient).
func (l *Local) loadWorkspace(conc int) *slackfake.Workspace {
	ws := *l.Workspace
	ws.HTTP = keepAliveClient(conc)
	return &ws
}

// loop runs one request through the bot and returns the step latencies; a
// step it could not time is negative. Each step ends when the fake Slack
// received the bot's call, not when the driver noticed it.
func (l *Local) loop(ctx context.Context, ws *slackfake.Workspace, run string, i int, bt *MintTimer) ([nSteps]time.Duration, error) {
	var d [nSteps]time.Duration
	name := fmt.Sprintf("load-%s-%05d", run, i)
	// Each wait looks only at calls from just before its action on: a wait
	// through the whole history costs more the longer the run.
	wait := func(mark int, match func(slackfake.Call) bool) (slackfake.Call, error) {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return l.Slack.WaitFrom(wctx, mark, match)
	}
	message := func(c slackfake.Call) slackfake.Message {
		if m, ok := l.Slack.Message(c.Channel, c.TS); ok {
			return m
		}
		return slackfake.Message{Channel: c.Channel, TS: c.TS, Text: c.Params.Get("text"), Blocks: c.Params.Get("blocks")}
	}
	t0 := time.Now()
	mark := l.Slack.Mark()
	ack, err := ws.Slash(ctx, Requester, fmt.Sprintf(`create --subaccount %s --name %s --reason "load test"`, btptest.DefaultSubaccount, name))
	if err != nil || ack.Status != 200 {
		return d, fmt.Errorf("command: %d %v", ack.Status, err)
	}
	d[stepAck] = time.Since(t0)
	wantName := `"Name: ` + name + `"`
	post, err := wait(mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), wantName) ||
			c.Method == "response_url" && c.URL == ack.ResponseURL && strings.Contains(c.Body, ":warning:")
	})
	if err != nil {
		return d, fmt.Errorf("approval message: %w", err)
	}
	if post.Method == "response_url" {
		return d, fmt.Errorf("command refused: %.300s", RenderReply(post.Body))
	}
	d[stepPosted] = post.At.Sub(t0)
	msg := message(post)
	id, _, err := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	if err != nil {
		return d, err
	}
	t1 := time.Now()
	mark = l.Slack.Mark()
	if _, err := ws.Click(ctx, Approver, msg, blockkit.ActionApprove); err != nil {
		return d, err
	}
	wantID := `"value":"` + id + `"`
	dm, err := wait(mark, func(c slackfake.Call) bool {
		if c.Method != "chat.postMessage" {
			return false
		}
		b := c.Params.Get("blocks")
		return strings.Contains(b, wantID) && strings.Contains(b, blockkit.ActionReveal)
	})
	if err != nil {
		return d, fmt.Errorf("DM: %w", err)
	}
	d[stepApproveDM] = dm.At.Sub(t1)
	dmMsg := message(dm)
	t2 := time.Now()
	mark = l.Slack.Mark()
	rack, err := ws.Click(ctx, Requester, dmMsg, blockkit.ActionReveal)
	if err != nil {
		return d, err
	}
	rev, err := wait(mark, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == rack.ResponseURL })
	if err != nil {
		return d, fmt.Errorf("reveal: %w", err)
	}
	if !strings.Contains(rev.Body, "clientsecret") {
		return d, fmt.Errorf("reveal showed no secret: %.200s", rev.Body)
	}
	d[stepRevealSecret] = rev.At.Sub(t2)
	d[stepApproveShown] = d[stepApproveDM] + d[stepRevealSecret]
	d[stepWhole] = rev.At.Sub(t0)
	d[stepLessBTP], d[stepBTP] = -1, -1
	if took, ok := bt.took(id); ok {
		d[stepBTP], d[stepLessBTP] = took, d[stepApproveShown]-took
	}
	return d, nil
}

// MintTimer times the BTP part of each mint — from the claim (MINTING
// written, BTP not called yet) to the credential created at BTP — through
// approval.Hooks, so that a load run can show the bot's latency without BTP's.
type MintTimer struct {
	mu      sync.Mutex
	claimed map[string]time.Time
	btp     map[string]time.Duration
}

// NewMintTimer returns a timer; start the bot with its Hooks.
func NewMintTimer() *MintTimer {
	return &MintTimer{claimed: map[string]time.Time{}, btp: map[string]time.Duration{}}
}

// Hooks are the hooks that feed the timer (Deps.Hooks).
func (m *MintTimer) Hooks() approval.Hooks {
	return approval.Hooks{
		AfterClaim: func(id string) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.claimed[id] = time.Now()
		},
		AfterCreate: func(id string) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if t, ok := m.claimed[id]; ok {
				m.btp[id] = time.Since(t)
				delete(m.claimed, id)
			}
		},
	}
}

// took returns, once, the BTP time of request id's mint.
func (m *MintTimer) took(id string) (time.Duration, bool) {
	if m == nil {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.btp[id]
	delete(m.btp, id)
	return d, ok
}
