package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Extending a credential: its owner pushes ExpiresAt out.
//
//	DELIVERED ──owner extends, extend quorum needs nobody──▶ DELIVERED (ExpiresAt moved; one CAS, one audit entry)
//	DELIVERED ──owner extends, approvals needed──▶ DELIVERED + Extension (waiting; approval message posted)
//	DELIVERED + Extension ──approvals reach the extend quorum──▶ DELIVERED (ExpiresAt moved, Extension cleared)
//	DELIVERED + Extension ──deny / lapsed after the pending TTL──▶ DELIVERED (Extension cleared)
//
// Each is one compare-and-set on the request with its audit entry, which
// names who asked, by how much, the old and new expiry and the deciding rule.
// The new expiry is never more than MaxLifetime from the moment it is
// applied. A credential being deleted (a revocation lease) is not extended.

// ActionQuorum is implemented by authorizers whose quorum depends on the
// action (internal/policy): rotate and extend may need fewer approvals than
// create. Without it every action needs what create needs.
type ActionQuorum interface {
	QuorumFor(ctx context.Context, act Action, scope Scope, approvers []string) (QuorumStatus, error)
}

// quorum is what act needs in scope, given the approvers so far.
func (s *Service) quorum(ctx context.Context, act Action, scope Scope, approvers []string) (QuorumStatus, error) {
	if act == "" {
		act = ActionCreate
	}
	if aq, ok := s.auth.(ActionQuorum); ok {
		return aq.QuorumFor(ctx, act, scope, approvers)
	}
	return s.auth.Quorum(ctx, scope, approvers)
}

// action is what a request asks for, for the policy.
func (r *Request) action() Action {
	if r.Action == "" {
		return ActionCreate
	}
	return r.Action
}

// Extend asks to push the expiry of user's own credential (request id) out
// by by. It applies at once when the extend quorum needs nobody, and
// otherwise waits for approvers; the outcome's message says which, and when
// the new expiry was capped at MaxLifetime from now.
func (s *Service) Extend(ctx context.Context, id, user string, by time.Duration) (Outcome, error) {
	if by <= 0 {
		return Outcome{}, userErr(ErrInvalid, "--by must be a positive duration like 30d")
	}
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return Outcome{}, s.notFound(err, id)
	}
	if r.Requester != user {
		s.refused(ctx, user, ActionExtend, r.Scope, r.ID, r.Name, Decision{Rule: ownerOnlyRule}, "not the owner")
		return Outcome{Request: r}, userErr(ErrForbidden, "only the owner of %s can extend it", id)
	}
	if r.State != StateDelivered || r.Revoking {
		return Outcome{Request: r}, userErr(ErrConflict, "%q is not a live credential (%s); only a delivered credential can be extended", r.Name, stateWord(r))
	}
	if r.Breakglass {
		return Outcome{Request: r}, userErr(ErrInvalid, "%q is a break-glass credential: its short life is the point. Ask for a normal credential with /credbot create", r.Name)
	}
	d, err := s.auth.Authorize(ctx, user, ActionExtend, r.Scope, r.Requester)
	if err != nil {
		return Outcome{}, fmt.Errorf("authorize extend: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, user, ActionExtend, r.Scope, r.ID, r.Name, d, "not allowed"+because(d))
		return Outcome{Request: r}, userErr(ErrForbidden, "you may not extend credentials in %s%s", r.Scope, because(d))
	}
	q, err := s.quorum(ctx, ActionExtend, r.Scope, nil)
	if err != nil {
		return Outcome{}, fmt.Errorf("quorum: %w", err)
	}
	if q.Met {
		var msg string
		r, err = s.transition(ctx, id, user, func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateDelivered || cur.Revoking {
				return nil, Effects{}, userErr(ErrConflict, "%q is not a live credential any more (%s)", cur.Name, stateWord(cur))
			}
			note, err := s.applyExtension(cur, by, user)
			if err != nil {
				return nil, Effects{}, err
			}
			msg = note
			return &AuditEntry{Note: note, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{Deadline: s.nextDeadline(cur)}, nil
		})
		if err != nil {
			return Outcome{Request: r}, err
		}
		return Outcome{Request: r, Message: capitalize(msg) + "."}, nil
	}
	now := s.clock.Now().UTC()
	r, err = s.transition(ctx, id, user, func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateDelivered || cur.Revoking {
			return nil, Effects{}, userErr(ErrConflict, "%q is not a live credential any more (%s)", cur.Name, stateWord(cur))
		}
		if e := cur.Extension; e != nil && now.Before(e.At.Add(s.cfg.PendingTTL)) {
			return nil, Effects{}, userErr(ErrConflict, "an extension of %q by %s is already waiting for approval", cur.Name, humanDuration(e.By))
		}
		cur.Extension = &Extension{By: by, At: now}
		return &AuditEntry{Note: fmt.Sprintf("extension by %s asked; waiting for %d approval(s)", humanDuration(by), q.Need),
			Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{}, nil
	})
	if err != nil {
		return Outcome{Request: r}, err
	}
	ch, ts, err := s.notify.PostExtension(ctx, r, q)
	if err != nil {
		_, _ = s.transition(ctx, id, "system", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.Extension == nil || !cur.Extension.At.Equal(now) {
				return nil, Effects{}, errNoop
			}
			cur.Extension = nil
			return &AuditEntry{Note: "extension withdrawn: the approval message could not be posted"}, Effects{}, nil
		})
		return Outcome{Request: r}, fmt.Errorf("post the extension's approval message: %w", err)
	}
	r, err = s.transition(ctx, id, "system", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.Extension == nil || !cur.Extension.At.Equal(now) {
			return nil, Effects{}, errNoop
		}
		cur.Extension.Channel, cur.Extension.TS = ch, ts
		return &AuditEntry{Note: "extension's approval message posted"}, Effects{}, nil
	})
	if err != nil && !errors.Is(err, errNoop) {
		s.log.WarnContext(ctx, "record the extension's approval message", "request_id", id, "error", err)
	}
	return Outcome{Request: r, Message: fmt.Sprintf("Extending %q by %s needs approval here; the approvers were asked. You will get a DM when it is decided.",
		r.Name, humanDuration(by))}, nil
}

// DecideExtension records an approver's click on an extension's approval
// message. Like Decide, the clicker is authorized at click time and the
// owner never counts. asked (unix ns) names the extension the clicked message
// asked for: a newer one is not decided by an older message.
func (s *Service) DecideExtension(ctx context.Context, id, user string, asked int64, approve bool) (Outcome, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return Outcome{}, s.notFound(err, id)
	}
	if user == r.Requester {
		s.refused(ctx, user, decideAction(approve), r.Scope, r.ID, r.Name, Decision{Rule: selfApprovalRule}, "the owner may not decide their own extension")
		return Outcome{Request: r}, userErr(ErrForbidden, "you cannot approve or deny the extension of your own credential")
	}
	d, err := s.auth.Authorize(ctx, user, ActionApprove, r.Scope, r.Requester)
	if err != nil {
		return Outcome{}, fmt.Errorf("authorize approve: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, user, decideAction(approve), r.Scope, r.ID, r.Name, d, "not an approver"+because(d))
		return Outcome{Request: r}, userErr(ErrForbidden, "you are not an approver for %s%s", r.Scope, because(d))
	}
	var (
		q       QuorumStatus
		ext     Extension
		applied string
		already bool
	)
	r, err = s.transition(ctx, id, user, func(cur *Request) (*AuditEntry, Effects, error) {
		e := cur.Extension
		if e == nil || cur.State != StateDelivered || cur.Revoking {
			return nil, Effects{}, userErr(ErrConflict, "no extension of %q is waiting for approval", cur.Name)
		}
		if e.At.UnixNano() != asked {
			return nil, Effects{}, userErr(ErrConflict, "this extension request of %q lapsed and was asked again; decide the newer message", cur.Name)
		}
		if !s.clock.Now().Before(e.At.Add(s.cfg.PendingTTL)) {
			cur.Extension = nil
			ext = *e
			return &AuditEntry{Note: "extension lapsed without a decision"}, Effects{}, nil
		}
		a := &AuditEntry{Rule: d.Rule, PolicyHash: d.PolicyHash}
		if !approve {
			cur.Extension, ext = nil, *e
			a.Note = fmt.Sprintf("extension by %s denied", humanDuration(e.By))
			return a, Effects{}, nil
		}
		if slices.ContainsFunc(e.Approvals, func(ap Approval) bool { return ap.User == user }) {
			already = true
			return nil, Effects{}, errNoop
		}
		e.Approvals = append(e.Approvals, Approval{User: user, At: s.clock.Now().UTC(), Rule: d.Rule})
		names := make([]string, 0, len(e.Approvals))
		for _, ap := range e.Approvals {
			names = append(names, ap.User)
		}
		var err error
		if q, err = s.quorum(ctx, ActionExtend, cur.Scope, names); err != nil {
			return nil, Effects{}, err
		}
		ext = *e
		if !q.Met {
			a.Note = fmt.Sprintf("extension approval %d of %d", q.Have, q.Need)
			return a, Effects{}, nil
		}
		note, err := s.applyExtension(cur, e.By, cur.Requester)
		if err != nil {
			return nil, Effects{}, err
		}
		cur.Extension, applied = nil, note
		a.Note = note + ", approved"
		return a, Effects{Deadline: s.nextDeadline(cur)}, nil
	})
	if errors.Is(err, errNoop) && already {
		return Outcome{Request: r}, userErr(ErrConflict, "you have already approved this extension")
	}
	if err != nil {
		return Outcome{Request: r}, err
	}
	var outcome, msg string
	switch {
	case applied != "":
		outcome = fmt.Sprintf("Approved by <@%s>: %s.", user, applied)
		msg = "Approved. " + capitalize(applied) + "."
		s.tell(ctx, r, fmt.Sprintf("The extension of %q was approved: %s.", r.Name, applied))
	case r.Extension == nil && approve:
		outcome, msg = "Lapsed without a decision.", "This extension lapsed without a decision; the owner may ask again."
	case r.Extension == nil:
		outcome, msg = fmt.Sprintf("Denied by <@%s>.", user), "Denied."
		s.tell(ctx, r, fmt.Sprintf("The extension of %q by %s was denied by <@%s>. It still expires %s.", r.Name, humanDuration(ext.By), user, r.ExpiresAt.UTC().Format(time.RFC1123)))
	default:
		msg = fmt.Sprintf("Approval recorded (%d of %d).", q.Have, q.Need)
	}
	if outcome != "" {
		if err := s.notify.UpdateExtension(ctx, r, ext, outcome); err != nil {
			s.log.WarnContext(ctx, "update the extension's approval message", "request_id", id, "error", err)
		}
	}
	return Outcome{Request: r, Message: msg}, nil
}

// applyExtension moves cur.ExpiresAt out by by, at most MaxLifetime from now,
// and says what it did, for the audit entry and the people involved.
func (s *Service) applyExtension(cur *Request, by time.Duration, owner string) (string, error) {
	now := s.clock.Now().UTC()
	limit := now.Add(s.cfg.MaxLifetime)
	next := cur.ExpiresAt.Add(by)
	capped := next.After(limit)
	if capped {
		next = limit
	}
	if !next.After(cur.ExpiresAt) {
		return "", userErr(ErrInvalid, "%q already expires %s, %s from now, the longest allowed (CREDBOT_MAX_LIFETIME); it cannot be extended further now",
			cur.Name, cur.ExpiresAt.UTC().Format(time.RFC1123), humanDuration(s.cfg.MaxLifetime))
	}
	note := fmt.Sprintf("extended by %s for <@%s>: expiry %s → %s", humanDuration(by), owner,
		cur.ExpiresAt.UTC().Format(time.RFC3339), next.Format(time.RFC3339))
	if capped {
		note += fmt.Sprintf(" (capped: a credential may live at most %s from now, CREDBOT_MAX_LIFETIME)", humanDuration(s.cfg.MaxLifetime))
	}
	cur.ExpiresAt, cur.ExpiryWarned = next, false
	return note, nil
}

func stateWord(r *Request) string {
	if r.Revoking {
		return "being deleted"
	}
	return strings.ToLower(string(r.State))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
