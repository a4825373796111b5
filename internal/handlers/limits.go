package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/credbot/credbot/internal/store"
)

// Limiter counts hits in a fixed window that starts with the first hit, in
// one atomic step. Implemented by internal/store.
type Limiter interface {
	CountInWindow(ctx context.Context, key string, window time.Duration) (n int64, left time.Duration, err error)
}

// commandWindow is the window of Config.CommandsPerMinute.
const commandWindow = time.Minute

// overCommandLimit counts a slash command of user and, past the limit,
// returns the ack that refuses it. It is for commands that record nothing
// (those that open a form) and for a server without an inbox; a recorded
// command is counted by the step that records it (commandQuota). Either way a
// refused command does nothing at all: no request, no message to approvers,
// no BTP call.
//
// Only slash commands count (help and usage errors do not: they are answered
// in the ack and cost nothing). Clicks do not: every button acts on a message
// credbot sent, an approver may rightly clear thirty requests in a minute,
// and what a click could spend is bounded elsewhere (Approve and Deny meet a
// compare-and-set; More pages through the cached list).
//
// When the count cannot be made the command goes on: Redis is then down, and
// recording the command fails and says so anyway.
func (s *Server) overCommandLimit(ctx context.Context, user string) (any, bool) {
	limit := s.cfg.CommandsPerMinute
	if s.cfg.Limiter == nil || limit <= 0 {
		return nil, false
	}
	n, left, err := s.cfg.Limiter.CountInWindow(ctx, commandQuotaKey(user), commandWindow)
	if err != nil {
		s.log.WarnContext(ctx, "count commands; not limiting this one", "user", user, "error", err)
		return nil, false
	}
	if n <= int64(limit) {
		return nil, false
	}
	return s.refuseOverLimit(ctx, user, left), true
}

// commandQuota is what a recorded slash command of user counts against: the
// same counter as overCommandLimit's, counted by Inbox.Record in the step
// that records the command, so that its ack costs one round trip. Nothing
// without a Limiter or a limit.
func (s *Server) commandQuota(user string) store.Quota {
	if s.cfg.Limiter == nil || s.cfg.CommandsPerMinute <= 0 {
		return store.Quota{}
	}
	return store.Quota{Key: commandQuotaKey(user), Limit: int64(s.cfg.CommandsPerMinute), Window: commandWindow}
}

func commandQuotaKey(user string) string { return "commands:" + user }

// refuseOverLimit is the ack of a command past its sender's limit, whose
// window ends in left.
func (s *Server) refuseOverLimit(ctx context.Context, user string, left time.Duration) any {
	limit := s.cfg.CommandsPerMinute
	secs := max(int64((left+time.Second-1)/time.Second), 1)
	s.log.InfoContext(ctx, "refused a command over the per-user limit", "user", user, "limit", limit, "retry_in", left)
	return ackText(fmt.Sprintf(":hourglass_flowing_sand: credbot takes at most %d commands a minute from one person; try again in %d s. Nothing was done.", limit, secs))
}
