package approval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Just-in-time role collections: /credbot assign asks for a BTP role
// collection, for the requester's own BTP user, for a while. It is a Request
// with an Assignment, and runs through the same compare-and-set state machine
// as a credential; only what happens at BTP differs:
//
//	PENDING ──quorum (policy action assign:<collection>)──▶ APPROVED (+ job queued)
//	APPROVED ──claimed by one worker──▶ MINTING
//	MINTING ──BTP reads the user: already holds it, credbot never sent an assign──▶ ASSIGNED (PreExisting)
//	MINTING ──BTP reads the user: lacks it──▶ MINTING (AbsentAt recorded: the intent, before any assign)
//	MINTING ──assign; BTP's answer lists the collection──▶ ASSIGNED (Held = BTP's answer; DM sent)
//	MINTING ──BTP refused the assign──▶ FAILED (requester told why)
//	MINTING ──worker died──▶ (job rescued) read the user: holds it and AbsentAt set → ours, ASSIGNED;
//	                          lacks it → assign again
//	ASSIGNED ──warning time──▶ ASSIGNED (ExpiryWarned, requester told)
//	ASSIGNED ──end time / admin or owner ends it──▶ ASSIGNED (Revoking lease) ──unassign, BTP's
//	                          answer lacks it──▶ ENDED (requester told)
//
// The rules that make a crash at any point harmless:
//   - AbsentAt is written (one compare-and-set) after a read saw the user
//     without the collection and before the first assign is sent. Without it,
//     a collection the user holds was granted by someone else: PreExisting,
//     and credbot never unassigns it. With it, whatever BTP shows is credbot's.
//   - From AbsentAt on the request is never left: it ends ASSIGNED (tracked,
//     with its end in the deadline set) or FAILED only after BTP refused (so
//     nothing was assigned). When the assign's outcome stays unknown after
//     every retry, the request goes to ASSIGNED with its end now, and the
//     unassign path removes whatever may be there.
//   - The end is the deadline sorted set's (BTP assignments never expire).
//     Unassigning runs under the revocation lease; a worker that dies is
//     replaced when the lease lapses, and the unassign is retried until BTP's
//     answer (or a read) confirms the collection is gone.
//   - One request at a time holds a (scope, user, collection): its name
//     reservation is derived from them, so two requests never share a grant.

// StateAssigned and StateEnded are the states of an assignment that has been
// granted (or found pre-existing) and of one that is over.
const (
	StateAssigned State = "ASSIGNED"
	StateEnded    State = "ENDED"
)

// Assignment is what makes a Request a just-in-time role collection.
type Assignment struct {
	RoleCollection string  `json:"role_collection"`
	User           BTPUser `json:"user"`
	// PreExisting: the user held the collection before credbot sent any
	// assign. credbot assigned nothing and will never unassign it.
	PreExisting bool `json:"pre_existing,omitempty"`
	// AbsentAt is when a read showed the user without the collection, right
	// before credbot's first assign was sent: from then on the collection at
	// BTP is credbot's to remove.
	AbsentAt time.Time `json:"absent_at,omitempty"`
	// Held is the user's role collections in the scope as BTP answered the
	// assign (or the read that found it there); HeldAfter as it answered the
	// unassign.
	Held      []string `json:"held,omitempty"`
	HeldAfter []string `json:"held_after,omitempty"`
	Confirmed bool     `json:"confirmed,omitempty"` // the requester got the confirmation DM
	EndedBy   string   `json:"ended_by,omitempty"`  // who ended it early; "" at its time
	Unknown   bool     `json:"unknown,omitempty"`   // the assign's outcome stayed unknown: ended at once
}

// AssignConfig configures just-in-time role collections.
type AssignConfig struct {
	// MaxFor is the longest --for (CREDBOT_ASSIGN_MAX_FOR, default 8h).
	MaxFor time.Duration
	// Warning is how long before the end the requester is told (at most a
	// tenth of the assignment's length).
	Warning time.Duration
}

// DefaultAssignMaxFor is the longest assignment unless configured.
const DefaultAssignMaxFor = 8 * time.Hour

func (c AssignConfig) withDefaults() AssignConfig {
	if c.MaxFor <= 0 {
		c.MaxFor = DefaultAssignMaxFor
	}
	if c.Warning <= 0 {
		c.Warning = 15 * time.Minute
	}
	return c
}

// AssignmentSubmission is a new assignment as typed by the requester. User is
// the requester's own BTP user, which the caller derives from their Slack
// profile e-mail and the configured origin: nobody names anyone else.
type AssignmentSubmission struct {
	User, Team     string
	Scope          Scope
	RoleCollection string
	BTPUser        BTPUser
	For            time.Duration
	Reason         string
	Key            string // as Submission.Key
}

// assignmentName is the name an assignment reserves in its scope: one per
// (origin, user, collection), so that two requests never share one grant.
func assignmentName(a Assignment) string {
	sum := sha256.Sum256([]byte("credbot assignment\x00" + NormalizeOrigin(a.User.Origin) + "\x00" +
		strings.ToLower(a.User.Name) + "\x00" + a.RoleCollection))
	return "jit-" + hex.EncodeToString(sum[:8])
}

// IsAssignmentName reports whether a reserved name belongs to an assignment.
func IsAssignmentName(name string) bool { return strings.HasPrefix(name, "jit-") }

// Subject is what a request is for, in words: a credential's name or a role
// collection.
func (r *Request) Subject() string {
	if r.Assignment != nil {
		return fmt.Sprintf("role collection %q", r.Assignment.RoleCollection)
	}
	return fmt.Sprintf("%q", r.Name)
}

// SubmitAssignment validates and authorizes an assignment request, stores it
// as PENDING and posts it to the approvers.
func (s *Service) SubmitAssignment(ctx context.Context, in AssignmentSubmission) (*Request, error) {
	if s.cfg.Roles == nil {
		return nil, userErr(ErrInvalid, "just-in-time role collections are not available: this credbot has no BTP role assigner configured")
	}
	if err := in.Scope.Validate(); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if err := ValidateRoleCollection(in.RoleCollection); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if err := in.BTPUser.Validate(); err != nil {
		return nil, &UserError{Msg: "your BTP user: " + err.Error(), Err: ErrInvalid}
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Reason == "" {
		return nil, userErr(ErrInvalid, "a --reason is required")
	}
	if len(in.Reason) > maxReason {
		return nil, userErr(ErrInvalid, "the reason is longer than %d characters", maxReason)
	}
	max := s.cfg.Assign.MaxFor
	switch {
	case in.For <= 0:
		return nil, userErr(ErrInvalid, "--for is required and must be positive, e.g. --for 4h or --for 90m")
	case in.For < time.Second:
		return nil, userErr(ErrInvalid, "--for must be at least 1s")
	case in.For > max:
		return nil, userErr(ErrInvalid, "--for may be at most %s", humanDuration(max))
	}
	id := newID()
	if in.Key != "" {
		id = idFor(in.User, in.Key)
		if r, err := s.store.Get(ctx, id); err == nil {
			return s.resume(ctx, r)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	act := AssignAction(in.RoleCollection)
	d, err := s.auth.Authorize(ctx, in.User, act, in.Scope, "")
	if err != nil {
		return nil, fmt.Errorf("authorize assign: %w", err)
	}
	asg := Assignment{RoleCollection: in.RoleCollection, User: in.BTPUser}
	name := assignmentName(asg)
	if !d.Allowed {
		s.refused(ctx, in.User, act, in.Scope, "", name, d, "not allowed"+because(d))
		return nil, userErr(ErrForbidden, "you may not ask for role collection %q in %s%s", in.RoleCollection, in.Scope, because(d))
	}
	if err := s.checkPending(ctx, in.User, act, in.Scope, "", name, d); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	r := &Request{
		ID: id, Requester: in.User, Team: in.Team, Scope: in.Scope, Name: name,
		Reason: in.Reason, State: StatePending, Version: 1, CreatedAt: now, UpdatedAt: now, Lifetime: in.For,
		PendingUntil: now.Add(s.cfg.PendingTTL), NextReminder: now.Add(s.cfg.RemindAfter),
		Action: AssignAction(in.RoleCollection), Assignment: &asg, // its quorum is assign's (quorum.yaml)
	}
	a := AuditEntry{RequestID: id, To: StatePending, Actor: in.User, At: now, Rule: d.Rule, PolicyHash: d.PolicyHash,
		Note: fmt.Sprintf("asks for role collection %q for %s as %s", in.RoleCollection, humanDuration(in.For), in.BTPUser)}
	if err := s.create(ctx, r, a, s.nextDeadline(r)); err != nil {
		if errors.Is(err, ErrConflict) && in.Key != "" {
			if r, err := s.store.Get(ctx, id); err == nil {
				return s.resume(ctx, r)
			}
		}
		if errors.Is(err, ErrNameHeld) {
			holder, _ := s.store.NameHolder(ctx, in.Scope, name)
			s.refused(ctx, in.User, act, in.Scope, holder, name, d, "another request holds this assignment")
			return nil, userErr(ErrNameHeld, "request %s already asks for (or holds) role collection %q in %s for you; /credbot assignments shows it", holder, in.RoleCollection, in.Scope)
		}
		return nil, fmt.Errorf("store request: %w", err)
	}
	s.mirror(a)
	s.observe(r, a)
	s.logMove(ctx, a, r.Version)
	return s.post(ctx, r)
}

// assign runs one mint job of an assignment: APPROVED → MINTING → ASSIGNED
// (or FAILED). Like Mint it is safe to run twice and after a worker died.
func (s *Service) assign(ctx context.Context, r *Request, job MintJob) (bool, error) {
	switch r.State {
	case StateApproved:
		var err error
		r, err = s.transition(ctx, r.ID, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateApproved {
				return nil, Effects{}, errNoop
			}
			cur.State = StateMinting
			return &AuditEntry{Note: "assigning " + cur.Subject()}, Effects{}, nil
		})
		if errors.Is(err, errNoop) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		call(s.cfg.Hooks.AfterClaim, r.ID)
	case StateMinting:
		// Resumed after a worker died: the read below decides.
	case StateAssigned:
		if !r.Assignment.Confirmed {
			s.confirmAssigned(ctx, r) // died after ASSIGNED, before the DM
		}
		return true, nil
	default:
		return true, nil
	}
	asg := *r.Assignment
	u, err := s.cfg.Roles.User(ctx, r.Scope, asg.User)
	if errors.Is(err, ErrNotFound) {
		u, err = UserRoles{RoleCollections: []string{}}, nil // no shadow user yet: holds nothing
	}
	if err != nil {
		return s.assignRetryOrFail(ctx, r, job, err)
	}
	if u.Has(asg.RoleCollection) {
		// Someone's grant is there: credbot's own if it had sent an assign
		// (AbsentAt), someone else's if not.
		return s.assigned(ctx, r, u, asg.AbsentAt.IsZero(), "")
	}
	if asg.AbsentAt.IsZero() {
		// The intent, durable before anything changes at BTP.
		r, err = s.transition(ctx, r.ID, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateMinting || !cur.Assignment.AbsentAt.IsZero() {
				return nil, Effects{}, errNoop
			}
			cur.Assignment.AbsentAt = s.clock.Now().UTC()
			return &AuditEntry{Note: fmt.Sprintf("%s does not hold %q at BTP; assigning it", asg.User, asg.RoleCollection)}, Effects{}, nil
		})
		if errors.Is(err, errNoop) {
			return false, nil // another worker moved it on; the job comes back if anything is left
		}
		if err != nil {
			return false, err
		}
	}
	call(s.cfg.Hooks.AfterIntent, r.ID)
	u, err = s.cfg.Roles.Assign(ctx, r.Scope, asg.RoleCollection, asg.User)
	if err != nil {
		return s.assignRetryOrFail(ctx, r, job, err)
	}
	call(s.cfg.Hooks.AfterAssign, r.ID)
	return s.assigned(ctx, r, u, false, "")
}

// assigned records ASSIGNED from BTP's account of the user and confirms it
// to the requester.
func (s *Service) assigned(ctx context.Context, r *Request, u UserRoles, preExisting bool, unknown string) (bool, error) {
	r, err := s.transition(ctx, r.ID, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateMinting {
			return nil, Effects{}, errNoop
		}
		now := s.clock.Now().UTC()
		cur.State = StateAssigned
		cur.Assignment.PreExisting = preExisting
		cur.Assignment.Held = slices.Clone(u.RoleCollections)
		cur.ExpiresAt = now.Add(cur.Lifetime)
		note := fmt.Sprintf("assigned at BTP; %s now holds %s in %s", cur.Assignment.User, quoteList(u.RoleCollections), cur.Scope)
		switch {
		case unknown != "":
			cur.Assignment.Unknown, cur.ExpiresAt, cur.Failure = true, now, unknown
			note = "assign outcome unknown after every retry; ending it at once so that nothing stays assigned: " + unknown
		case preExisting:
			note = fmt.Sprintf("%s already held %q before credbot assigned anything: credbot will not unassign it", cur.Assignment.User, cur.Assignment.RoleCollection)
		}
		return &AuditEntry{Note: note}, Effects{Deadline: s.nextDeadline(cur)}, nil
	})
	if errors.Is(err, errNoop) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", r.ID, "error", err)
	}
	s.confirmAssigned(ctx, r)
	return true, nil
}

// confirmAssigned DMs the requester what they have, where and until when,
// from BTP's answer, and records that it did.
func (s *Service) confirmAssigned(ctx context.Context, r *Request) {
	a := r.Assignment
	var text string
	switch {
	case a.Unknown:
		text = fmt.Sprintf("Your request %s for role collection %q in %s could not be confirmed at BTP (%s). credbot is removing whatever may have been assigned; you will be told when BTP confirms. Please ask again later.",
			r.ID, a.RoleCollection, r.Scope, r.Failure)
	case a.PreExisting:
		text = fmt.Sprintf("You already hold role collection %q in %s as %s: someone assigned it to you outside this request, so credbot assigned nothing and will not remove it at %s (credbot never removes access it did not grant). Your role collections there, as BTP lists them: %s.",
			a.RoleCollection, r.Scope, a.User, stamp(r.ExpiresAt), quoteList(a.Held))
	default:
		text = fmt.Sprintf("You now hold role collection %q in %s as %s until %s (%s). Your role collections there, as BTP lists them after the assignment: %s. credbot removes it then and tells you; `/credbot assignments` shows it, and new tokens carry it from your next login.",
			a.RoleCollection, r.Scope, a.User, stamp(r.ExpiresAt), humanDuration(r.Lifetime), quoteList(a.Held))
	}
	if err := s.notify.Tell(ctx, r, text); err != nil {
		s.log.WarnContext(ctx, "confirm assignment", "request_id", r.ID, "error", err)
		return
	}
	if _, err := s.transition(ctx, r.ID, "system", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.Assignment == nil || cur.Assignment.Confirmed || cur.State != StateAssigned {
			return nil, Effects{}, errNoop
		}
		cur.Assignment.Confirmed = true
		return &AuditEntry{Note: "requester told"}, Effects{}, nil
	}); err != nil && !errors.Is(err, errNoop) {
		s.log.WarnContext(ctx, "record assignment confirmation", "request_id", r.ID, "error", err)
	}
}

// assignRetryOrFail leaves the job queued after a temporary failure, and
// otherwise ends the request: FAILED when BTP refused (nothing was assigned,
// or the read before any assign failed), or — when an assign may have
// happened and its outcome stays unknown — ASSIGNED with its end now, so that
// the unassign path makes sure nothing stays.
func (s *Service) assignRetryOrFail(ctx context.Context, r *Request, job MintJob, cause error) (bool, error) {
	var t Temporary
	temporary := errors.As(cause, &t) && t.Temporary()
	if temporary && job.Deliveries < s.cfg.MaxMintDeliveries {
		return false, cause
	}
	if temporary && !r.Assignment.AbsentAt.IsZero() {
		return s.assigned(ctx, r, UserRoles{}, false, "BTP could not be reached ("+errMessage(cause)+")")
	}
	msg := "BTP refused to assign it: " + errMessage(cause)
	if temporary {
		msg = "BTP could not be reached (" + errMessage(cause) + "); please ask again later"
	}
	return s.failMint(ctx, r.ID, msg, func(r *Request) string {
		return fmt.Sprintf("Your request %s for role collection %q in %s failed: %s", r.ID, r.Assignment.RoleCollection, r.Scope, msg)
	})
}

// assignmentDeadline is what is next due for an ASSIGNED request: the
// warning, then the end.
func (s *Service) assignmentDeadline(r *Request) time.Time {
	if r.ExpiresAt.IsZero() {
		return time.Time{}
	}
	if !r.ExpiryWarned && !r.Revoking {
		lead := min(s.cfg.Assign.Warning, r.Lifetime/10)
		if w := r.ExpiresAt.Add(-lead); w.After(r.UpdatedAt) {
			return w
		}
	}
	return r.ExpiresAt
}

// assignmentDue handles the deadline of an ASSIGNED request.
func (s *Service) assignmentDue(ctx context.Context, r *Request) error {
	now := s.clock.Now()
	if r.Revoking || !now.Before(r.ExpiresAt) {
		_, err := s.EndAssignmentAt(ctx, r.ID, "deadline", Decision{}, "")
		return err
	}
	if r.ExpiryWarned || now.Before(s.assignmentDeadline(r)) {
		return s.store.DropDeadline(ctx, r.ID, s.assignmentDeadline(r)) // stale entry; the right one is in place
	}
	r, err := s.transition(ctx, r.ID, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateAssigned || cur.ExpiryWarned || cur.Revoking {
			return nil, Effects{}, errNoop
		}
		cur.ExpiryWarned = true
		return &AuditEntry{Note: "requester warned of the end"}, Effects{Deadline: cur.ExpiresAt}, nil
	})
	if err != nil {
		return err
	}
	a := r.Assignment
	what := "credbot removes it then"
	if a.PreExisting {
		what = "credbot did not grant it and will not remove it"
	}
	s.tell(ctx, r, fmt.Sprintf("Your role collection %q in %s ends at %s (in %s); %s.", a.RoleCollection, r.Scope, stamp(r.ExpiresAt),
		humanDuration(r.ExpiresAt.Sub(now).Round(time.Second)), what))
	return nil
}

// EndAssignment ends an assignment before its time: its requester may, and so
// may an admin (delete in its scope).
func (s *Service) EndAssignment(ctx context.Context, id, user string) (*Request, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	if r.Assignment == nil {
		return nil, userErr(ErrInvalid, "request %s is not a role collection assignment", id)
	}
	d := Decision{Allowed: true, Rule: ownerOnlyRule}
	if user != r.Requester {
		d, err = s.auth.Authorize(ctx, user, ActionDelete, r.Scope, "")
		if err != nil {
			return nil, fmt.Errorf("authorize end: %w", err)
		}
		if !d.Allowed {
			s.refused(ctx, user, ActionDelete, r.Scope, r.ID, r.Name, d, "may not end someone else's assignment"+because(d))
			return nil, userErr(ErrForbidden, "only its requester or an admin (delete in %s) can end assignment %s%s", r.Scope, id, because(d))
		}
	}
	if r.State != StateAssigned {
		return r, userErr(ErrConflict, "assignment %s is %s, not active", id, strings.ToLower(string(r.State)))
	}
	return s.EndAssignmentAt(ctx, id, user, d, user)
}

// EndAssignmentAt unassigns the role collection at BTP and ends the request,
// under the revocation lease: mark it Revoking (pushing its deadline out to
// the lease), unassign, confirm from BTP's answer, then end. A worker that
// dies in between is replaced when the lease lapses, and the unassign is
// repeated until BTP confirms. A pre-existing collection is never unassigned.
// early names who ended it before its time ("" at its time).
func (s *Service) EndAssignmentAt(ctx context.Context, id, actor string, d Decision, early string) (*Request, error) {
	r, err := s.transition(ctx, id, actor, func(cur *Request) (*AuditEntry, Effects, error) {
		now := s.clock.Now()
		if cur.State != StateAssigned || cur.Assignment == nil || s.leaseHeld(ctx, cur, now) {
			return nil, Effects{}, errNoop
		}
		if early == "" && !cur.Revoking && now.Before(cur.ExpiresAt) {
			return nil, Effects{}, errNoop
		}
		if early != "" && cur.Assignment.EndedBy == "" {
			cur.Assignment.EndedBy = early
		}
		note := "unassigning at BTP"
		if cur.Assignment.PreExisting {
			note = "ending; not unassigning: credbot did not grant it"
		}
		if cur.Revoking {
			note = fmt.Sprintf("taking over from replica %s: %s", cur.LeaseHolder, note)
		}
		cur.Revoking, cur.LeaseUntil, cur.LeaseHolder = true, now.Add(s.cfg.RevokeLease), s.cfg.Replica
		recheck := now.Add(revokeRecheck)
		if cur.LeaseUntil.Before(recheck) {
			recheck = cur.LeaseUntil
		}
		return &AuditEntry{Note: note, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{Deadline: recheck}, nil
	})
	if err != nil {
		return r, err
	}
	call(s.cfg.Hooks.AfterLease, id)
	a := *r.Assignment
	var after []string
	if !a.PreExisting {
		u, err := s.cfg.Roles.Unassign(ctx, r.Scope, a.RoleCollection, a.User)
		if err == nil && u.Has(a.RoleCollection) {
			err = fmt.Errorf("BTP still lists %q for %s after the unassign", a.RoleCollection, a.User)
		}
		if err != nil {
			s.log.ErrorContext(ctx, "could not unassign a role collection at BTP; credbot tries again when the lease ends",
				"request_id", id, "scope", r.Scope.String(), "role_collection", a.RoleCollection, "btp_user", a.User.Name,
				"origin", a.User.Origin, "retry_after", s.cfg.RevokeLease.String(), "error", errMessage(err))
			return r, fmt.Errorf("unassign %q at BTP (retried when the lease ends): %w", a.RoleCollection, err)
		}
		after = u.RoleCollections
	}
	r, err = s.transition(ctx, id, actor, func(cur *Request) (*AuditEntry, Effects, error) {
		if !cur.Revoking || cur.State != StateAssigned {
			return nil, Effects{}, errNoop
		}
		cur.Revoking, cur.LeaseUntil, cur.LeaseHolder, cur.State = false, time.Time{}, "", StateEnded
		cur.Assignment.HeldAfter = slices.Clone(after)
		note := fmt.Sprintf("unassigned at BTP; %s now holds %s in %s", cur.Assignment.User, quoteList(after), cur.Scope)
		if cur.Assignment.PreExisting {
			note = "ended; the pre-existing role collection was left in place"
		}
		return &AuditEntry{Note: note, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{ClearDeadline: true, ReleaseName: true}, nil
	})
	if err != nil {
		return r, err
	}
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
	}
	s.tell(ctx, r, endText(r))
	return r, nil
}

func endText(r *Request) string {
	a := r.Assignment
	why := "reached its end"
	if a.EndedBy != "" {
		why = fmt.Sprintf("was ended early by <@%s>", a.EndedBy)
	}
	switch {
	case a.Unknown:
		return fmt.Sprintf("BTP confirms that role collection %q in %s is not assigned to %s (request %s could not be confirmed earlier). Your role collections there: %s. Please ask again.",
			a.RoleCollection, r.Scope, a.User, r.ID, quoteList(a.HeldAfter))
	case a.PreExisting:
		return fmt.Sprintf("Your request %s for role collection %q in %s %s. You still hold it: it was assigned outside credbot, and credbot never removes access it did not grant.",
			r.ID, a.RoleCollection, r.Scope, why)
	}
	return fmt.Sprintf("Your role collection %q in %s %s: credbot unassigned it, and BTP confirms %s no longer holds it. Your role collections there now: %s.",
		a.RoleCollection, r.Scope, why, a.User, quoteList(a.HeldAfter))
}

// Assignments lists assignments that are waiting or active: the user's own,
// or with all every one credbot tracks (admins).
func (s *Service) Assignments(ctx context.Context, user string, all bool) ([]*Request, error) {
	var reqs []*Request
	if all {
		rl, ok := s.store.(interface {
			Reservations(ctx context.Context) (map[Scope]map[string]string, error)
		})
		if !ok {
			return nil, errors.New("this store cannot list every reservation")
		}
		res, err := rl.Reservations(ctx)
		if err != nil {
			return nil, err
		}
		for _, byName := range res {
			for name, id := range byName {
				if !IsAssignmentName(name) {
					continue
				}
				r, err := s.store.Get(ctx, id)
				if err == nil {
					reqs = append(reqs, r)
				}
			}
		}
	} else {
		mine, err := s.store.ListByRequester(ctx, user, 200)
		if err != nil {
			return nil, err
		}
		reqs = mine
	}
	out := reqs[:0]
	for _, r := range reqs {
		if r.Assignment != nil && !r.State.Terminal() {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func quoteList(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
