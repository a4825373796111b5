package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Observer is told what the lifecycle did, for metrics. It must not block,
// and none of its methods ever receives secret material.
type Observer interface {
	// Transitioned is called after every change written to the store, with
	// the request as written and its audit entry.
	Transitioned(r *Request, e AuditEntry)
	// Revealed is called once per reveal attempt with its outcome: shown,
	// refused, already_taken, unsealable, not_found, error — and
	// undeliverable when a taken secret could not be shown.
	Revealed(outcome string)
}

func (s *Service) observe(r *Request, e AuditEntry) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Transitioned(r, e)
	}
}

// logMove writes one INFO line per change of state, for whoever follows a
// request through the logs; annotations (a message posted) are DEBUG.
// version is the request's version after the change: it orders one
// request's lines, which workers on several goroutines (or replicas) may log
// out of order.
func (s *Service) logMove(ctx context.Context, e AuditEntry, version int64) {
	level, msg := slog.LevelInfo, "request "+strings.ToLower(string(e.To))
	if e.From == e.To {
		// Not a change of state: its own message, so that "request
		// delivered" names the delivery and nothing else.
		level, msg = slog.LevelDebug, "request annotated"
	}
	s.log.Log(ctx, level, msg,
		"request_id", e.RequestID, "version", version, "from", string(e.From), "to", string(e.To), "actor", e.Actor, "rule", e.Rule, "note", e.Note)
}

// errUnsealable: the secret was taken but does not open on this replica.
var errUnsealable = fmt.Errorf("%w: the sealed secret does not open", ErrAlreadyTaken)

func revealOutcome(err error) string {
	switch {
	case err == nil:
		return "shown"
	case errors.Is(err, errUnsealable):
		return "unsealable"
	case errors.Is(err, ErrAlreadyTaken):
		return "already_taken"
	case errors.Is(err, ErrForbidden):
		return "refused"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	}
	return "error"
}
