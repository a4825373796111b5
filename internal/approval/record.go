package approval

import (
	"context"
	"fmt"
)

// What the audit trail holds besides the transitions: every refused attempt
// and every admin lookup or delete, each with who, the deciding rule and the
// policy hash, and how it ended. (Policy loads and replica starts are
// recorded by the wiring, through Store.Note as well.)

// Events of the entries that change no request.
const (
	EventRefused = "refused"
	EventList    = "list"
	EventGet     = "get"
	EventDelete  = "delete"
	EventPolicy  = "policy"
	EventStart   = "start"
)

// Built-in rules that decide without the policy, named in the audit trail.
const (
	ownerOnlyRule    = "built-in: only the requester may reveal, cancel or delete their own request's credential"
	selfApprovalRule = "built-in: requesters never approve or deny their own requests"
	// requesterCancelRule decides a requester's cancel of their own request.
	requesterCancelRule = "built-in: the requester may cancel their own pending request"
)

// ownerDelete is the decision behind an owner's "Delete now": a built-in
// rule, recorded with the hash of the policy in force like every decision.
func (s *Service) ownerDelete() Decision {
	return Decision{Allowed: true, Rule: "built-in: the owner may delete their own credential before its lifetime ends", PolicyHash: s.policyHash()}
}

// policyHasher is an Authorizer that names the policy in force
// (internal/policy's Engine does).
type policyHasher interface{ Hash() string }

// policyHash is the hash of the policy in force, for decisions the code
// makes by a built-in rule; "" when the Authorizer cannot say.
func (s *Service) policyHash() string {
	if h, ok := s.auth.(policyHasher); ok {
		return h.Hash()
	}
	return ""
}

func decideAction(approve bool) Action {
	if approve {
		return ActionApprove
	}
	return "deny"
}

// record writes an audit entry that changes no request. It returns the
// store's error for callers that must not go on unrecorded.
func (s *Service) record(ctx context.Context, a AuditEntry) error {
	a.At = s.clock.Now().UTC()
	if err := s.store.Note(ctx, a); err != nil {
		s.log.ErrorContext(ctx, "could not write an audit entry", "event", a.Event, "action", string(a.Action), "actor", a.Actor,
			"request_id", a.RequestID, "error", err)
		return fmt.Errorf("record in the audit trail: %w", err)
	}
	s.mirror(a)
	return nil
}

// refused records a refused attempt; the refusal stands whether or not the
// entry could be written (the error is logged by record).
func (s *Service) refused(ctx context.Context, user string, act Action, scope Scope, requestID, name string, d Decision, why string) {
	_ = s.record(ctx, AuditEntry{Event: EventRefused, Action: act, Actor: user, RequestID: requestID,
		Scope: scope.String(), Name: name, Rule: d.Rule, PolicyHash: d.PolicyHash, Result: why})
}

// looked records an admin lookup with its result. A lookup that cannot be
// recorded is not answered: a security team must be able to see who looked.
func (s *Service) looked(ctx context.Context, event, user string, scope Scope, name string, d Decision, result string) error {
	return s.record(ctx, AuditEntry{Event: event, Action: Action(event), Actor: user, Scope: scope.String(), Name: name,
		Rule: d.Rule, PolicyHash: d.PolicyHash, Result: result})
}
