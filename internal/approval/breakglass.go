package approval

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Break-glass: a credential at once, without approval, for an emergency, made
// loud at once and reviewed afterwards. It is a Request with Breakglass set
// and shares the whole lifecycle of service.go from APPROVED on (minting,
// name reservation, reveal-once, claim window, expiry, crash rescue). Its own
// arrows, each one compare-and-set with its audit entry (rule, policy hash):
//
//	(none) ──policy allows breakglass, reason names a ticket, no other live
//	         break-glass of the user──▶ APPROVED. One Lua step stores the
//	         request, takes the user's break-glass lock and queues the mint.
//	live ──alert posted──▶ same state, Alerts recorded
//	live, no alert after alertRetry ──▶ the sweeper posts it (a crash between
//	         storing and alerting loses no alert)
//	live, unacknowledged, ReviewAt passed ──▶ same state, Escalations+1,
//	         ReviewAt one Review later; the escalation target is told again
//	any ──Acknowledge (review allowed, not the requester)──▶ AckedBy set;
//	         no more escalations
//	APPROVED ──Revoke now──▶ REVOKED (nothing at BTP yet; the mint job ends)
//	MINTING, ISSUED, DELIVERED ──Revoke now──▶ RevokedBy recorded, then
//	         REVOKED: deleted at BTP under the revocation lease (by the
//	         clicker, or — a crash, or still being created — by the minter
//	         the moment it exists, or the sweeper), requester told. A revoked
//	         secret is never offered or revealed.
//
// The user's break-glass lock is freed in the step that ends the request
// (any terminal state), so "one live break-glass per user" holds across
// replicas without a check-then-act. Deadlines (alert, review, claim window,
// expiry) share the request's one entry in the deadline set: no timers.

// BreakglassConfig configures the emergency path.
type BreakglassConfig struct {
	// Lifetime caps a break-glass credential's life (and is its default).
	Lifetime time.Duration
	// Review is how long a break-glass may stay unacknowledged before it
	// escalates, and then the interval between escalations.
	Review time.Duration
	// Reason must match a break-glass reason: it names an incident or ticket.
	Reason *regexp.Regexp
}

// DefaultBreakglassReason matches a ticket key such as INC-1234 or OPS-42.
const DefaultBreakglassReason = `\b[A-Z][A-Z0-9]{1,15}-[0-9]+\b`

func (c BreakglassConfig) withDefaults() BreakglassConfig {
	if c.Lifetime <= 0 {
		c.Lifetime = 4 * time.Hour
	}
	if c.Review <= 0 {
		c.Review = time.Hour
	}
	if c.Reason == nil {
		c.Reason = regexp.MustCompile(DefaultBreakglassReason)
	}
	return c
}

// alertRetry is how long after storing a break-glass (or after a failed
// attempt) the sweeper posts its alert if nobody did (the submitting worker
// crashed, or Slack failed): 15s, or a quarter of the review interval when
// that is shorter, but at least a second.
func (c BreakglassConfig) alertRetry() time.Duration {
	return min(15*time.Second, max(c.Review/4, time.Second))
}

// Breakglass issues a credential at once, without approval, to a user the
// policy allows breakglass in the scope. The reason must name an incident or
// ticket; the lifetime is capped. A refusal stores nothing but its audit
// entry.
func (s *Service) Breakglass(ctx context.Context, in Submission) (*Request, error) {
	cfg := s.cfg.Breakglass
	if err := in.Scope.Validate(); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if err := ValidateName(in.Name); err != nil {
		return nil, &UserError{Msg: "break-glass needs a --name: " + strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "), Err: ErrInvalid}
	}
	in.Reason = strings.TrimSpace(in.Reason)
	switch {
	case in.Reason == "":
		return nil, userErr(ErrInvalid, `break-glass needs --reason "INC-1234: what is broken": the incident or ticket it is for`)
	case len(in.Reason) > maxReason:
		return nil, userErr(ErrInvalid, "the reason is longer than %d characters", maxReason)
	case !cfg.Reason.MatchString(in.Reason):
		return nil, userErr(ErrInvalid, "the reason must name the incident or ticket this break-glass is for (it must match %s, e.g. INC-1234); nothing was issued", "`"+cfg.Reason.String()+"`")
	}
	switch {
	case in.ExpiresIn < 0:
		return nil, userErr(ErrInvalid, "--expires-in must be positive")
	case in.ExpiresIn == 0:
		in.ExpiresIn = cfg.Lifetime
	case in.ExpiresIn > cfg.Lifetime:
		return nil, userErr(ErrInvalid, "a break-glass credential lives at most %s; ask for that or less with --expires-in", humanDuration(cfg.Lifetime))
	}
	id := newID()
	if in.Key != "" {
		id = idFor(in.User, in.Key)
		if r, err := s.store.Get(ctx, id); err == nil {
			return s.alertOnce(ctx, r) // the same command, run again after a crash
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	d, err := s.auth.Authorize(ctx, in.User, ActionBreakglass, in.Scope, "")
	if err != nil {
		return nil, fmt.Errorf("authorize breakglass: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, in.User, ActionBreakglass, in.Scope, "", in.Name, d, "not allowed"+because(d))
		return nil, userErr(ErrForbidden, "you may not break glass in %s%s; nothing was issued. Use `/credbot create` to ask for approval", in.Scope, because(d))
	}
	if err := s.checkName(ctx, in.Scope, in.Name); err != nil {
		var ue *UserError
		if errors.As(err, &ue) {
			s.refused(ctx, in.User, ActionBreakglass, in.Scope, "", in.Name, d, ue.Msg)
		}
		return nil, err
	}
	now := s.clock.Now().UTC()
	r := &Request{
		ID: id, Requester: in.User, Team: in.Team, Scope: in.Scope, Name: in.Name,
		ReadOnly: in.ReadOnly, Reason: in.Reason, State: StateApproved, Version: 1,
		CreatedAt: now, UpdatedAt: now, Lifetime: in.ExpiresIn, DecidedBy: in.User,
		Breakglass: true, ReviewAt: now.Add(cfg.Review),
	}
	a := AuditEntry{RequestID: id, To: StateApproved, Actor: in.User, At: now, Rule: d.Rule, PolicyHash: d.PolicyHash,
		Note: "break-glass: issued without approval; reason: " + in.Reason}
	if err := s.store.Create(ctx, r, a, s.nextDeadline(r)); err != nil {
		var active *BreakglassActiveError
		switch {
		case errors.As(err, &active):
			s.refused(ctx, in.User, ActionBreakglass, in.Scope, "", in.Name, d, "another break-glass is active: "+active.Request)
			return nil, userErr(ErrBreakglassActive, "you already hold a live break-glass credential (request %s); it must expire or be revoked before you break glass again. Nothing was issued", active.Request)
		case errors.Is(err, ErrConflict) && in.Key != "":
			if r, err := s.store.Get(ctx, id); err == nil {
				return s.alertOnce(ctx, r)
			}
		case errors.Is(err, ErrNameHeld):
			return nil, userErr(ErrNameHeld, "another request has just reserved the name %q in %s; choose another --name", in.Name, in.Scope)
		}
		return nil, fmt.Errorf("store break-glass: %w", err)
	}
	s.mirror(a)
	s.observe(r, a)
	s.logMove(ctx, a, r.Version)
	return s.alertOnce(ctx, r)
}

// alertOnce posts a break-glass's alert unless it was posted, and records
// where it lives. Two replicas racing here may both post: a break-glass
// alerted twice is better than one alerted never.
func (s *Service) alertOnce(ctx context.Context, r *Request) (*Request, error) {
	if len(r.Alerts) > 0 || r.State.Terminal() {
		return r, nil
	}
	refs, err := s.notify.AlertBreakglass(ctx, r)
	if err != nil {
		// The deadline set brings a sweeper back to try again.
		s.log.ErrorContext(ctx, "could not post the break-glass alert; retrying from the deadline sweep", "request_id", r.ID, "error", errMessage(err))
		return r, nil
	}
	out, err := s.transition(ctx, r.ID, "system", func(cur *Request) (*AuditEntry, Effects, error) {
		if len(cur.Alerts) > 0 {
			return nil, Effects{}, errNoop
		}
		cur.Alerts = refs
		return &AuditEntry{Note: "break-glass alert posted"}, Effects{Deadline: s.deadlineOrKeep(cur)}, nil
	})
	if errors.Is(err, errNoop) {
		return out, nil
	}
	if err != nil {
		s.log.WarnContext(ctx, "record the break-glass alert", "request_id", r.ID, "error", err)
		return r, nil
	}
	if !out.ExpiresAt.IsZero() {
		// Minted while the alert was being posted: show the expiry now.
		s.updateAlerts(ctx, out)
	}
	return out, nil
}

// deadlineOrKeep is nextDeadline for an Effects: zero there means "leave the
// entry as it is", so a request with nothing due keeps its old entry, which
// the sweeper drops when it finds nothing due.
func (s *Service) deadlineOrKeep(r *Request) time.Time { return s.nextDeadline(r) }

// breakglassDeadline is when a live break-glass next needs the sweeper: its
// alert if none was posted, else its review while unacknowledged.
func (s *Service) breakglassDeadline(r *Request) time.Time {
	if !r.Breakglass || r.State.Terminal() {
		return time.Time{}
	}
	if r.RevokedBy != "" && (r.State == StateIssued || r.State == StateDelivered) {
		return r.UpdatedAt // a reviewer's revoke waits for nothing
	}
	if len(r.Alerts) == 0 {
		return r.CreatedAt.Add(s.cfg.Breakglass.alertRetry())
	}
	if r.AckedBy == "" && r.RevokedBy == "" {
		return r.ReviewAt
	}
	return time.Time{}
}

func (s *Service) breakglassDue(r *Request, now time.Time) bool {
	at := s.breakglassDeadline(r)
	return !at.IsZero() && !now.Before(at)
}

// reviewDue posts a missing alert, or escalates an unacknowledged
// break-glass and schedules the next escalation.
func (s *Service) reviewDue(ctx context.Context, r *Request) error {
	if len(r.Alerts) == 0 {
		r, _ = s.alertOnce(ctx, r)
		if len(r.Alerts) > 0 {
			return nil
		}
		// Still no alert: look again after a while, not at every sweep.
		_, err := s.transition(ctx, r.ID, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
			if len(cur.Alerts) > 0 || cur.State.Terminal() {
				return nil, Effects{}, errNoop
			}
			return &AuditEntry{Note: "break-glass alert could not be posted; retrying"},
				Effects{Deadline: s.clock.Now().Add(s.cfg.Breakglass.alertRetry())}, nil
		})
		return err
	}
	var n int
	r, err := s.transition(ctx, r.ID, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
		now := s.clock.Now()
		if !cur.Breakglass || cur.State.Terminal() || cur.AckedBy != "" || now.Before(cur.ReviewAt) {
			return nil, Effects{}, errNoop
		}
		cur.Escalations++
		n = cur.Escalations
		cur.ReviewAt = now.Add(s.cfg.Breakglass.Review)
		return &AuditEntry{Note: fmt.Sprintf("break-glass escalation %d: not acknowledged %s after it was issued", n, humanDuration(now.Sub(cur.CreatedAt).Round(time.Second)))},
			Effects{Deadline: s.nextDeadline(cur)}, nil
	})
	if err != nil {
		return err
	}
	if err := s.notify.EscalateBreakglass(ctx, r); err != nil {
		s.log.WarnContext(ctx, "escalate break-glass", "request_id", r.ID, "escalation", n, "error", errMessage(err))
	}
	return nil
}

// Review is a reviewer's click on a break-glass alert: acknowledge it, or
// revoke it now. The clicker is authorized here, at click time, from the id
// Slack vouched for; the requester never reviews their own.
func (s *Service) Review(ctx context.Context, id, user string, revoke bool) (Outcome, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return Outcome{}, s.notFound(err, id)
	}
	what := "acknowledge"
	if revoke {
		what = "revoke"
	}
	if !r.Breakglass {
		return Outcome{Request: r}, userErr(ErrInvalid, "request %s is not a break-glass", id)
	}
	if user == r.Requester {
		s.refused(ctx, user, ActionReview, r.Scope, r.ID, r.Name, Decision{Rule: selfReviewRule}, "the user who broke glass may not review it")
		return Outcome{Request: r}, userErr(ErrForbidden, "you cannot %s your own break-glass; another reviewer must", what)
	}
	d, err := s.auth.Authorize(ctx, user, ActionReview, r.Scope, r.Requester)
	if err != nil {
		return Outcome{}, fmt.Errorf("authorize review: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, user, ActionReview, r.Scope, r.ID, r.Name, d, "not a reviewer"+because(d))
		return Outcome{Request: r}, userErr(ErrForbidden, "you may not review break-glass in %s%s", r.Scope, because(d))
	}
	if revoke {
		return s.revokeBreakglass(ctx, r, user, d)
	}
	var already string
	r, err = s.transition(ctx, id, user, func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.AckedBy != "" {
			already = cur.AckedBy
			return nil, Effects{}, errNoop
		}
		cur.AckedBy, cur.AckedAt = user, s.clock.Now().UTC()
		return &AuditEntry{Note: "break-glass acknowledged", Rule: d.Rule, PolicyHash: d.PolicyHash},
			Effects{Deadline: s.nextDeadline(cur)}, nil
	})
	if errors.Is(err, errNoop) {
		return Outcome{Request: r}, userErr(ErrConflict, "this break-glass was already acknowledged by <@%s>", already)
	}
	if err != nil {
		return Outcome{Request: r}, err
	}
	if err := s.notify.UpdateBreakglass(ctx, r); err != nil {
		s.log.WarnContext(ctx, "update break-glass alert", "request_id", id, "error", err)
	}
	return Outcome{Request: r, Message: "Acknowledged. Escalations stop; the credential lives until " + r.ExpiresAtOr("its lifetime ends") + "."}, nil
}

// ExpiresAtOr renders when r's credential expires, or def before it has one.
func (r *Request) ExpiresAtOr(def string) string {
	if r.ExpiresAt.IsZero() {
		return def
	}
	return r.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")
}

// finishRevoke completes a reviewer's Revoke now that its worker did not
// finish (it died, or BTP failed): the deadline brought it here.
func (s *Service) finishRevoke(ctx context.Context, r *Request) error {
	why := "revoked by a reviewer (<@" + r.RevokedBy + ">) after break-glass review"
	r, err := s.retire(ctx, r.ID, "deadline", Decision{}, StateRevoked, why, func(cur *Request) bool {
		return cur.RevokedBy != "" && (cur.State == StateIssued || cur.State == StateDelivered)
	})
	if err != nil {
		return err
	}
	if err := s.notify.UpdateBreakglass(ctx, r); err != nil {
		s.log.WarnContext(ctx, "update break-glass alert", "request_id", r.ID, "error", err)
	}
	s.tell(ctx, r, fmt.Sprintf("Your break-glass credential %q in %s was revoked by <@%s> and deleted at BTP.", r.Name, r.Scope, r.RevokedBy))
	return nil
}

// revokeBreakglass ends a break-glass at a reviewer's click: at BTP (only
// the credential this request created, under the revocation lease) and in
// the store, and tells the requester.
func (s *Service) revokeBreakglass(ctx context.Context, r *Request, user string, d Decision) (Outcome, error) {
	why := "revoked by a reviewer (<@" + user + ">) after break-glass review"
	var err error
	switch r.State {
	case StateApproved:
		// Not claimed by a minter yet: nothing at BTP. The mint job finds it
		// REVOKED and ends.
		r, err = s.transition(ctx, r.ID, user, func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateApproved {
				return nil, Effects{}, userErr(ErrConflict, "it is being created right now; press Revoke now again in a few seconds")
			}
			cur.State, cur.Failure, cur.RevokedBy = StateRevoked, why, user
			return &AuditEntry{Note: why, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{ClearDeadline: true, ReleaseName: true}, nil
		})
	case StateMinting, StateIssued, StateDelivered:
		// Record the revoke first: if this worker dies before the deletion,
		// or the credential is still being created, the minter and the
		// sweeper finish it (finishRevoke).
		r, err = s.transition(ctx, r.ID, user, func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.RevokedBy != "" {
				return nil, Effects{}, errNoop
			}
			if cur.State != StateMinting && cur.State != StateIssued && cur.State != StateDelivered {
				return nil, Effects{}, userErr(ErrConflict, "this break-glass has already ended (%s)", strings.ToLower(string(cur.State)))
			}
			cur.RevokedBy = user
			return &AuditEntry{Note: "break-glass revoke requested", Rule: d.Rule, PolicyHash: d.PolicyHash},
				Effects{Deadline: s.clock.Now().Add(revokeRecheck)}, nil
		})
		if errors.Is(err, errNoop) {
			return Outcome{Request: r}, userErr(ErrConflict, "<@%s> has revoked it already; it is being deleted at BTP", r.RevokedBy)
		}
		if err != nil {
			return Outcome{Request: r}, err
		}
		if r.State == StateMinting {
			s.updateAlerts(ctx, r)
			return Outcome{Request: r, Message: fmt.Sprintf("Revoke recorded. %q is being created at BTP right now; credbot deletes it as soon as it exists, before anyone can reveal it, and tells <@%s>.", r.Name, r.Requester)}, nil
		}
		r, err = s.retire(ctx, r.ID, user, d, StateRevoked, why, func(cur *Request) bool {
			return cur.State == StateIssued || cur.State == StateDelivered
		})
		if errors.Is(err, errNoop) {
			return Outcome{Request: r}, userErr(ErrConflict, "it is being deleted at BTP already")
		}
	default:
		return Outcome{Request: r}, userErr(ErrConflict, "this break-glass has already ended (%s)", strings.ToLower(string(r.State)))
	}
	if err != nil {
		return Outcome{Request: r}, err
	}
	if err := s.notify.UpdateBreakglass(ctx, r); err != nil {
		s.log.WarnContext(ctx, "update break-glass alert", "request_id", r.ID, "error", err)
	}
	s.tell(ctx, r, fmt.Sprintf("Your break-glass credential %q in %s was revoked by <@%s> and deleted at BTP. If you still need access, ask with `/credbot create`.", r.Name, r.Scope, user))
	return Outcome{Request: r, Message: fmt.Sprintf("Revoked: %q was deleted at BTP and <@%s> was told.", r.Name, r.Requester)}, nil
}

// selfReviewRule is the audit rule of a refused review of one's own break-glass.
const selfReviewRule = "built-in: nobody reviews their own break-glass"

// updateAlerts rewrites a break-glass's alerts after a change of state.
func (s *Service) updateAlerts(ctx context.Context, r *Request) {
	if r == nil || !r.Breakglass || len(r.Alerts) == 0 {
		return
	}
	if err := s.notify.UpdateBreakglass(ctx, r); err != nil {
		s.log.WarnContext(ctx, "update break-glass alert", "request_id", r.ID, "error", err)
	}
}
