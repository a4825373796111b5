package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// routeChecksPerRound bounds the conversations.info calls one readiness
// round spends on routed channels: Slack limits that method per workspace,
// and routes.yaml may name many channels. With more routed channels than
// this, each is asked about every few rounds, and the last answer stands.
const routeChecksPerRound = 3

// routeChecks is the readiness check of the channels routes.yaml names: is
// the bot in each? It remembers each channel's last answer, asks Slack about
// the least recently checked few per round, and reports on all of them.
type routeChecks struct {
	mu   sync.Mutex
	last map[string]routeCheck // channel -> its last check
}

type routeCheck struct {
	at      time.Time
	problem string // "" when the bot can post there
}

// member is ChannelMember: is the bot in channel, and the channel's name.
type member func(ctx context.Context, channel string) (bool, string, error)

// check asks about up to routeChecksPerRound of channels and returns the
// problems known for any of them, or nil.
func (rc *routeChecks) check(ctx context.Context, channels []string, isMember member, now time.Time) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.last == nil {
		rc.last = map[string]routeCheck{}
	}
	routed := map[string]bool{}
	for _, ch := range channels {
		routed[ch] = true
	}
	for ch := range rc.last {
		if !routed[ch] {
			delete(rc.last, ch) // no longer routed: forget it
		}
	}
	due := slices.Clone(channels)
	slices.SortStableFunc(due, func(a, b string) int { return rc.last[a].at.Compare(rc.last[b].at) }) // never checked first
	for _, ch := range due[:min(len(due), routeChecksPerRound)] {
		ok, name, err := isMember(ctx, ch)
		c := routeCheck{at: now}
		switch {
		case err != nil:
			c.problem = err.Error()
		case !ok:
			c.problem = fmt.Sprintf("the bot is not a member of %s (#%s), so it cannot post there", ch, name)
		}
		rc.last[ch] = c
	}
	var problems []string
	for _, ch := range channels {
		if p := rc.last[ch].problem; p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return unmet("routes.yaml sends approval requests where credbot cannot post (they go to CREDBOT_APPROVAL_CHANNEL instead): %s", strings.Join(problems, "; "))
}
