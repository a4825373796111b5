package approval

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rotating a credential: its owner gets a new credential under a new name,
// and the old one is deleted once the new one is in their hands and a grace
// period (Config.RotationGrace, or the owner's "Retire the old one") is over.
//
// A rotation is a request of its own (Action rotate, Rotates = the old
// request's id) for the derived name <name>-r2 (then -r3, …), reserved like
// any name. It runs the whole create lifecycle, with the rotate quorum
// (which may need nobody), and then:
//
//	new ISSUED ──owner reveals──▶ new DELIVERED, GraceUntil = now + grace   (one CAS: Take)
//	new DELIVERED ──GraceUntil passed, or owner retires the old one──▶
//	    old DELIVERED ──▶ old DELETED (deleted at BTP under the old request's lease, note names the rotation)
//	    new RotationDone = true                                              (one CAS on new)
//
// The old credential is credbot's own: its request issued it and holds its
// name, and only that request's lease deletes it. Two requests are two keys,
// so the steps are ordered such that a crash anywhere leaves one of three
// states at BTP, each of which finishes by itself:
//
//   - old only: until the new secret is revealed. A new credential created
//     but never revealed is revoked by its claim window; one whose create
//     was interrupted is resolved by name like any mint (NameFreeAt).
//   - both, within grace: from the reveal (GraceUntil is written in the same
//     step) until GraceUntil. The new request's deadline is GraceUntil.
//   - new only: once the old request's retire finished. A crash after it
//     and before RotationDone is harmless: the next sweep finds the old one
//     gone and marks the rotation done. A crash during the retire is taken
//     over through the old request's lease, for the same reason (RevokeWhy).
//
// A credential is rotated by one rotation at a time: the derived name is held
// by the first, and a second finds it and is told.

// rotatedRE splits a name made by an earlier rotation into base and number.
var rotatedRE = regexp.MustCompile(`^(.+)-r([0-9]{1,6})$`)

// RotatedName derives the name of a rotation's credential: foo → foo-r2,
// foo-r2 → foo-r3. The base is shortened when the result would be too long.
func RotatedName(name string) string {
	base, n := name, 2
	if m := rotatedRE.FindStringSubmatch(name); m != nil {
		if k, err := strconv.Atoi(m[2]); err == nil && k >= 2 {
			base, n = m[1], k+1
		}
	}
	suffix := "-r" + strconv.Itoa(n)
	if len(base)+len(suffix) > 64 {
		base = strings.TrimRight(base[:64-len(suffix)], "-")
	}
	return base + suffix
}

// Rotation is an owner's ask to rotate the credential of request ID (or, when
// ID is empty, the one credbot issued under Name in Scope).
type Rotation struct {
	User  string
	Team  string
	ID    string
	Scope Scope
	Name  string
	// Key identifies the ask (a Slack trigger id): asking again with it
	// returns the rotation it started.
	Key string
}

// Rotate starts a rotation: a new request for a new credential that replaces
// the old one. Only the owner may rotate, where the policy allows rotate;
// when the rotate quorum needs nobody it goes straight to minting.
func (s *Service) Rotate(ctx context.Context, in Rotation) (*Request, error) {
	id := in.ID
	if id == "" {
		if err := in.Scope.Validate(); err != nil {
			return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
		}
		if err := ValidateName(in.Name); err != nil {
			return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
		}
		holder, err := s.store.NameHolder(ctx, in.Scope, in.Name)
		if errors.Is(err, ErrNotFound) {
			return nil, userErr(ErrNotFound, "credbot holds no credential named %q in %s; it rotates only credentials it issued", in.Name, in.Scope)
		}
		if err != nil {
			return nil, err
		}
		id = holder
	}
	rid := ""
	if in.Key != "" {
		rid = idFor(in.User, "rotate\x00"+in.Key)
		if r, err := s.store.Get(ctx, rid); err == nil {
			return s.resume(ctx, r) // asked before: carry on with it
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	old, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	if old.Requester != in.User {
		s.refused(ctx, in.User, ActionRotate, old.Scope, old.ID, old.Name, Decision{Rule: ownerOnlyRule}, "not the owner")
		return nil, userErr(ErrForbidden, "only the owner of %q can rotate it", old.Name)
	}
	if old.State != StateDelivered || old.Revoking || old.Credential == nil {
		return nil, userErr(ErrConflict, "%q is not a live credential (%s); only a delivered credential can be rotated", old.Name, stateWord(old))
	}
	if old.Breakglass {
		return nil, userErr(ErrInvalid, "%q is a break-glass credential, which is not rotated: ask for a normal credential with /credbot create", old.Name)
	}
	if old.Certificate != "" {
		// Its new credential needs a new certificate, which only the owner has
		// (credbot never sees a private key).
		return nil, userErr(ErrInvalid, "%q is a certificate credential: rotate it by asking for a new one with your new certificate (/credbot create --certificate), then delete this one", old.Name)
	}
	d, err := s.auth.Authorize(ctx, in.User, ActionRotate, old.Scope, old.Requester)
	if err != nil {
		return nil, fmt.Errorf("authorize rotate: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, in.User, ActionRotate, old.Scope, old.ID, old.Name, d, "not allowed"+because(d))
		return nil, userErr(ErrForbidden, "you may not rotate credentials in %s%s", old.Scope, because(d))
	}
	name := RotatedName(old.Name)
	if err := ValidateName(name); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if holder, err := s.store.NameHolder(ctx, old.Scope, name); err == nil {
		if h, err := s.store.Get(ctx, holder); err == nil && h.Rotates == old.ID {
			return nil, userErr(ErrConflict, "%q is already being rotated: request %s (%s) replaces it with %q", old.Name, h.ID, stateWord(h), name)
		}
	}
	if err := s.checkPending(ctx, in.User, ActionRotate, old.Scope, old.ID, name, d); err != nil {
		return nil, err
	}
	if err := s.checkName(ctx, old.Scope, name); err != nil {
		var ue *UserError
		if errors.As(err, &ue) {
			s.refused(ctx, in.User, ActionRotate, old.Scope, old.ID, name, d, ue.Msg)
		}
		return nil, err
	}
	if rid == "" {
		rid = newID()
	}
	lifetime := old.Lifetime
	if lifetime <= 0 || lifetime > s.cfg.MaxLifetime {
		lifetime = s.cfg.MaxLifetime
	}
	now := s.clock.Now().UTC()
	r := &Request{
		ID: rid, Requester: in.User, Team: in.Team, Scope: old.Scope, Name: name, ReadOnly: old.ReadOnly,
		Reason: fmt.Sprintf("rotation of %s (request %s)", old.Name, old.ID), State: StatePending, Version: 1,
		CreatedAt: now, UpdatedAt: now, Lifetime: lifetime,
		PendingUntil: now.Add(s.cfg.PendingTTL), NextReminder: now.Add(s.cfg.RemindAfter),
		Action: ActionRotate, Rotates: old.ID,
	}
	a := AuditEntry{RequestID: rid, To: StatePending, Actor: in.User, At: now, Rule: d.Rule, PolicyHash: d.PolicyHash,
		Note: fmt.Sprintf("rotation of %s (request %s) as %s", old.Name, old.ID, name)}
	if err := s.create(ctx, r, a, s.nextDeadline(r)); err != nil {
		if errors.Is(err, ErrConflict) && in.Key != "" {
			if r, err := s.store.Get(ctx, rid); err == nil {
				return s.resume(ctx, r)
			}
		}
		if errors.Is(err, ErrNameHeld) {
			return nil, userErr(ErrNameHeld, "%q is already being rotated (another request has just reserved %q)", old.Name, name)
		}
		return nil, fmt.Errorf("store rotation: %w", err)
	}
	s.mirror(a)
	s.observe(r, a)
	s.logMove(ctx, a, r.Version)
	return s.resume(ctx, r)
}

// approveUnneeded approves a pending request whose quorum needs nobody (a
// rotation where the owner rotates freely) and queues its mint, in one step.
// It reports whether it did.
func (s *Service) approveUnneeded(ctx context.Context, r *Request) (*Request, bool, error) {
	if r.State != StatePending || r.action() == ActionCreate {
		return r, false, nil
	}
	q, err := s.quorum(ctx, r.action(), r.Scope, nil)
	if err != nil || !q.Met {
		return r, false, err
	}
	r, err = s.transition(ctx, r.ID, "policy", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StatePending {
			return nil, Effects{}, errNoop
		}
		cur.State, cur.DecidedBy = StateApproved, "policy"
		return &AuditEntry{Note: fmt.Sprintf("no approval needed: the %s quorum in %s needs nobody", cur.action(), cur.Scope)},
			Effects{EnqueueMint: true, ClearDeadline: true}, nil
	})
	if errors.Is(err, errNoop) {
		return r, true, nil
	}
	return r, err == nil, err
}

// RetireOld deletes, now, the credential that the owner's rotation id
// replaces, instead of at the end of the grace period.
func (s *Service) RetireOld(ctx context.Context, id, user string) (*Request, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	if r.Requester != user {
		s.refused(ctx, user, ActionRotate, r.Scope, r.ID, r.Name, Decision{Rule: ownerOnlyRule}, "not the owner")
		return nil, userErr(ErrForbidden, "only the owner can retire the credential this one replaces")
	}
	if r.Rotates == "" {
		return r, userErr(ErrInvalid, "%q replaces no other credential", r.Name)
	}
	if r.RotationDone {
		return r, userErr(ErrConflict, "the credential %q replaces is already deleted", r.Name)
	}
	if r.State != StateDelivered {
		return r, userErr(ErrConflict, "reveal %q first; the old credential is kept until you have the new one", r.Name)
	}
	return r, s.finishRotation(ctx, r, user, ownerRetire())
}

func ownerRetire() Decision {
	return Decision{Allowed: true, Rule: "built-in: the owner may retire the credential their rotation replaces"}
}

// finishRotation deletes the credential rotation r replaces (through the old
// request: its lease, its audit entries) and then marks r done. Safe to run
// again at any point: a retire that already happened is a no-op.
func (s *Service) finishRotation(ctx context.Context, r *Request, actor string, d Decision) error {
	why := fmt.Sprintf("replaced by %s (request %s), rotated", r.Name, r.ID)
	old, err := s.retire(ctx, r.Rotates, actor, d, StateDeleted, why, func(cur *Request) bool {
		return cur.State == StateDelivered
	})
	switch {
	case err == nil:
		s.tell(ctx, old, fmt.Sprintf("Your old API credential %q in %s was deleted at BTP; %q replaces it.", old.Name, old.Scope, r.Name))
	case errors.Is(err, ErrNotFound), errors.Is(err, errNoop) && old != nil && old.State.Terminal():
		// Gone already: retired earlier (a crash before the mark below),
		// expired, or deleted by its owner or an admin.
	case errors.Is(err, errNoop):
		return nil // another worker holds the old one's lease; looked at again on the next sweep
	default:
		return fmt.Errorf("retire %s, replaced by %s: %w", r.Rotates, r.ID, err)
	}
	call(s.cfg.Hooks.AfterRetireOld, r.ID)
	oldName := r.Rotates
	if old != nil {
		oldName = old.Name
	}
	_, err = s.transition(ctx, r.ID, actor, func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.RotationDone {
			return nil, Effects{}, errNoop
		}
		cur.RotationDone = true
		return &AuditEntry{Note: fmt.Sprintf("rotation complete: the old credential %s (request %s) is deleted", oldName, cur.Rotates),
			Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{Deadline: s.nextDeadline(cur), ClearDeadline: s.nextDeadline(cur).IsZero()}, nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}

// graceFor is when the credential a rotation replaces goes, counted from
// the reveal of the new one.
func (s *Service) graceFor(now time.Time) time.Time {
	return now.Add(s.cfg.RotationGrace)
}
