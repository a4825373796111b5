package app

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/slackfake"
)

// Load runs n whole loops — request, approval, mint, reveal — through the local
// bot, conc at a time, and prints latency percentiles of each step. It fails if
// any loop does not end with exactly one revealed secret.
func (l *Local) Load(ctx context.Context, n, conc int, w io.Writer) error {
	steps := []string{"ack of /credbot create", "command → approval message", "approve click → DM with Reveal", "reveal click → secret", "whole loop"}
	lat := make([][]time.Duration, len(steps))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d, err := l.loop(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("loop %d: %w", i, err))
				return
			}
			for s := range d {
				lat[s] = append(lat[s], d[s])
			}
		})
	}
	wg.Wait()
	total := time.Since(start)
	fmt.Fprintf(w, "%d loops, %d at a time, in %s (%.1f loops/s)\n", n, conc, total.Round(time.Millisecond), float64(n)/total.Seconds())
	fmt.Fprintf(w, "%-34s %9s %9s %9s %9s\n", "step", "p50", "p95", "p99", "max")
	for s, name := range steps {
		d := lat[s]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		p := func(q int) time.Duration { return d[(len(d)-1)*q/100].Round(100 * time.Microsecond) }
		fmt.Fprintf(w, "%-34s %9s %9s %9s %9s\n", name, p(50), p(95), p(99), d[len(d)-1].Round(100*time.Microsecond))
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

// loop runs one request through the bot and returns the step latencies.
func (l *Local) loop(ctx context.Context, i int) ([]time.Duration, error) {
	name := fmt.Sprintf("load-%05d", i)
	wait := func(match func(slackfake.Call) bool) (slackfake.Call, error) {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return l.Slack.WaitFor(wctx, match)
	}
	t0 := time.Now()
	ack, err := l.Workspace.Slash(ctx, Requester, fmt.Sprintf(`create --subaccount %s --name %s --reason "load test"`, btptest.DefaultSubaccount, name))
	if err != nil || ack.Status != 200 {
		return nil, fmt.Errorf("command: %d %v", ack.Status, err)
	}
	tAck := time.Since(t0)
	post, err := wait(func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), `"Name: `+name+`"`)
	})
	if err != nil {
		return nil, fmt.Errorf("approval message: %w", err)
	}
	tPosted := time.Since(t0)
	msg, _ := l.Slack.Message(post.Channel, post.TS)
	id, _, err := slackfake.FindButton(msg.Blocks, handlers.ActionApprove)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	if _, err := l.Workspace.Click(ctx, Approver, msg, handlers.ActionApprove); err != nil {
		return nil, err
	}
	dm, err := wait(func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Params.Get("blocks"), handlers.ActionReveal) && strings.Contains(c.Params.Get("blocks"), `"value":"`+id+`"`)
	})
	if err != nil {
		return nil, fmt.Errorf("DM: %w", err)
	}
	tMint := time.Since(t1)
	dmMsg, _ := l.Slack.Message(dm.Channel, dm.TS)
	t2 := time.Now()
	rack, err := l.Workspace.Click(ctx, Requester, dmMsg, handlers.ActionReveal)
	if err != nil {
		return nil, err
	}
	rev, err := wait(func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == rack.ResponseURL })
	if err != nil {
		return nil, fmt.Errorf("reveal: %w", err)
	}
	if !strings.Contains(rev.Body, "clientsecret") {
		return nil, fmt.Errorf("reveal showed no secret: %.200s", rev.Body)
	}
	return []time.Duration{tAck, tPosted, tMint, time.Since(t2), time.Since(t0)}, nil
}
