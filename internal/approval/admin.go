package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Requests returns the user's own recent requests and the pending requests the
// user may approve now, for the App Home tab and /credbot status.
func (s *Service) Requests(ctx context.Context, user string) (mine, awaiting []*Request, err error) {
	if mine, err = s.store.ListByRequester(ctx, user, 25); err != nil {
		return nil, nil, err
	}
	pending, err := s.store.ListPending(ctx, 200)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range pending {
		if r.Requester == user || slices.Contains(approvers(r), user) {
			continue
		}
		d, err := s.auth.Authorize(ctx, user, ActionApprove, r.Scope, r.Requester)
		if err != nil {
			return nil, nil, err
		}
		if d.Allowed {
			awaiting = append(awaiting, r)
		}
	}
	return mine, awaiting, nil
}

// Credentials returns a page of user's live credentials (issued, or
// delivered and not yet deleted), newest first, and how many they have: all
// of them, however many requests came after.
func (s *Service) Credentials(ctx context.Context, user string, offset, limit int) ([]*Request, int, error) {
	if offset < 0 || limit <= 0 {
		return nil, 0, nil
	}
	out, n, err := s.store.ListLive(ctx, user, int64(offset), int64(limit))
	return out, int(n), err
}

// ListCredentials lists a scope's API credentials at BTP, joined with credbot's
// records: owner, request, expiry; those credbot did not issue are flagged.
// The caller is authorized on every call; only then may the answer come from
// the lookup cache (limits.go), which holds BTP's metadata, never a secret,
// while the join with credbot's records is always fresh.
func (s *Service) ListCredentials(ctx context.Context, user string, scope Scope) ([]CredentialView, error) {
	d, err := s.allow(ctx, user, ActionList, scope, "")
	if err != nil {
		return nil, err
	}
	creds, err := s.listAtBTP(ctx, scope)
	if err != nil {
		_ = s.looked(ctx, EventList, user, scope, "", d, "failed at BTP: "+errMessage(err))
		return nil, fmt.Errorf("list at BTP: %w", err)
	}
	if err := s.looked(ctx, EventList, user, scope, "", d, fmt.Sprintf("%d credential(s)", len(creds))); err != nil {
		return nil, err
	}
	out := make([]CredentialView, 0, len(creds))
	for _, c := range creds {
		v, err := s.view(ctx, scope, c)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// GetCredential shows one credential, joined with credbot's record.
func (s *Service) GetCredential(ctx context.Context, user string, scope Scope, name string) (CredentialView, error) {
	if err := ValidateName(name); err != nil {
		return CredentialView{}, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	d, err := s.allow(ctx, user, ActionGet, scope, name)
	if err != nil {
		return CredentialView{}, err
	}
	c, err := s.getAtBTP(ctx, scope, name)
	switch {
	case errors.Is(err, ErrNotFound):
		_ = s.looked(ctx, EventGet, user, scope, name, d, "not found")
		return CredentialView{}, userErr(ErrNotFound, "there is no API credential %q in %s", name, scope)
	case err != nil:
		_ = s.looked(ctx, EventGet, user, scope, name, d, "failed at BTP: "+errMessage(err))
		return CredentialView{}, fmt.Errorf("get at BTP: %w", err)
	}
	v, err := s.view(ctx, scope, c)
	if err != nil {
		return v, err
	}
	result := "found, not issued by credbot"
	switch {
	case v.Managed:
		result = "found, issued by credbot in request " + v.Request.ID
	case v.Held != nil:
		result = fmt.Sprintf("found, name held by request %s (%s), not issued yet", v.Held.ID, v.Held.State)
	}
	if err := s.looked(ctx, EventGet, user, scope, name, d, result); err != nil {
		return CredentialView{}, err
	}
	return v, nil
}

// DeleteCredential deletes a credential at BTP for an admin. Which of three
// cases it is in decides what happens, and the answer and the audit trail say
// which:
//   - a credential request that has not issued yet (PENDING, APPROVED,
//     MINTING) holds the name: refused, recorded, nothing deleted. What is at
//     BTP under the name may be the credential credbot is creating right
//     now; deleting it would hand the requester a dead secret. The admin is
//     told to deny or cancel the request, or to delete it once issued;
//   - a request issued it: it is retired through that request (its record,
//     deadlines and any unrevealed secret go with it, its owner is told);
//   - no request holds the name: it is deleted directly, as a credential
//     credbot did not issue.
func (s *Service) DeleteCredential(ctx context.Context, user string, scope Scope, name string) error {
	if err := ValidateName(name); err != nil {
		return &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	d, err := s.allow(ctx, user, ActionDelete, scope, name)
	if err != nil {
		return err
	}
	holder, err := s.liveHolder(ctx, scope, name)
	if err != nil {
		return err
	}
	if holder != nil {
		if holder.Credential == nil {
			return s.refuseUnissued(ctx, user, holder)
		}
		r, err := s.retire(ctx, holder.ID, user, d, StateDeleted, "deleted by an admin", func(cur *Request) bool {
			return cur.State == StateIssued || cur.State == StateDelivered
		})
		switch {
		case err == nil:
			s.tell(ctx, r, fmt.Sprintf("Your API credential %q in %s was deleted by <@%s>.", r.Name, r.Scope, user))
			return nil
		case !errors.Is(err, errNoop):
			return err
		}
		// Nothing to do through the request now: another worker is deleting
		// it, or it moved on meanwhile. Never fall through to a direct delete
		// of what a request of credbot holds.
		cur, err := s.store.Get(ctx, holder.ID)
		if err != nil {
			return s.notFound(err, holder.ID)
		}
		result := fmt.Sprintf("not deleted: request %s is %s", cur.ID, stateWord(cur))
		_ = s.looked(ctx, EventDelete, user, scope, name, d, result)
		if cur.Revoking {
			return userErr(ErrConflict, "credbot is already deleting %q in %s: request %s (%s) holds it. Nothing more to do; its owner is told when it is gone", name, scope, cur.ID, stateWord(cur))
		}
		return userErr(ErrConflict, "request %s, which holds %q in %s, changed meanwhile (now %s); nothing was deleted. Look again with /credbot get", cur.ID, name, scope, stateWord(cur))
	}
	// No request holds the name: hold it until BTP answered, so that none
	// takes it between that look and the delete (a break-glass is minted
	// within a second), whose credential would be the one deleted.
	release, err := s.holdForDelete(ctx, user, scope, name, d)
	if err != nil {
		return err
	}
	defer release()
	call(s.cfg.Hooks.BeforeAdminDelete, name)
	if err := s.issuer.Delete(ctx, scope, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			_ = s.looked(ctx, EventDelete, user, scope, name, d, "not found at BTP")
			return userErr(ErrNotFound, "there is no API credential %q in %s", name, scope)
		}
		_ = s.looked(ctx, EventDelete, user, scope, name, d, "failed at BTP: "+errMessage(err))
		return fmt.Errorf("delete at BTP: %w", err)
	}
	s.log.InfoContext(ctx, "admin deleted unmanaged credential", "user", user, "scope", scope.String(), "name", name)
	_ = s.looked(ctx, EventDelete, user, scope, name, d, "deleted at BTP (not issued by credbot)")
	return nil
}

// adminHoldPrefix starts the token of a name held by an admin's delete.
const adminHoldPrefix = "admin-delete:"

// adminDeleteHold bounds an admin's hold of a name: past a BTP call's longest
// time (with its retries), so that a hold a crash leaves behind lapses.
const adminDeleteHold = 5 * time.Minute

// describeHolder names the holder of a name reservation for people: a
// request, or an admin's delete in progress.
func describeHolder(holder string) string {
	if strings.HasPrefix(holder, adminHoldPrefix) {
		return "an admin's delete in progress (the name is free again within minutes)"
	}
	return "request " + holder
}

// holdForDelete holds scope/name for an admin's direct delete and returns
// its release. Taken since the admin's look by a request, or held by another
// admin's delete, it refuses: nothing is deleted. Held by what is no live
// credential request (one that ended, a role collection's), no request can
// take it either: the delete goes on without a hold of its own.
func (s *Service) holdForDelete(ctx context.Context, user string, scope Scope, name string, d Decision) (func(), error) {
	token := adminHoldPrefix + user + ":" + newID()
	held, err := s.store.HoldName(ctx, scope, name, token, adminDeleteHold)
	if err != nil {
		return nil, fmt.Errorf("hold the name %q for the delete: %w", name, err)
	}
	if held {
		return func() {
			if err := s.store.ReleaseName(context.WithoutCancel(ctx), scope, name, token); err != nil {
				s.log.WarnContext(ctx, "release the name held for an admin's delete; it lapses by itself",
					"scope", scope.String(), "name", name, "lapses_in", adminDeleteHold, "error", err)
			}
		}, nil
	}
	holder, err := s.store.NameHolder(ctx, scope, name)
	if err == nil && strings.HasPrefix(holder, adminHoldPrefix) {
		_ = s.looked(ctx, EventDelete, user, scope, name, d, "not deleted: another admin's delete holds the name")
		return nil, userErr(ErrConflict, "%q in %s is held by %s; nothing more was done", name, scope, describeHolder(holder))
	}
	live, err := s.liveHolder(ctx, scope, name)
	if err != nil {
		return nil, err
	}
	if live != nil {
		_ = s.looked(ctx, EventDelete, user, scope, name, d, fmt.Sprintf("not deleted: request %s took the name meanwhile", live.ID))
		return nil, userErr(ErrConflict, "request %s took the name %q in %s a moment ago; nothing was deleted. Look again with /credbot get", live.ID, name, scope)
	}
	return func() {}, nil
}

// CheckDelete refuses, and records, an admin's delete that DeleteCredential
// would refuse, before any button is offered: a user who may not delete in
// scope, or a name a request that has not issued holds. The delete prompt
// answers at once instead of offering a button that would be refused, and the
// refusal is in the audit trail either way.
func (s *Service) CheckDelete(ctx context.Context, user string, scope Scope, name string) error {
	if err := ValidateName(name); err != nil {
		return &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	// A user who may not delete here is refused (and recorded) before any
	// request is looked up, and so learns nothing of it.
	if _, err := s.allow(ctx, user, ActionDelete, scope, name); err != nil {
		return err
	}
	holder, err := s.liveHolder(ctx, scope, name)
	if err != nil || holder == nil || holder.Credential != nil {
		return err
	}
	return s.refuseUnissued(ctx, user, holder)
}

// heldNameRule decides an admin's delete of a name a request holds that has
// not issued: the built-in rule named in the audit trail.
const heldNameRule = "built-in: an admin's delete never touches a name held by a credbot request that has not issued yet"

// liveHolder returns the live credential request that holds scope/name, nil
// when none does (no reservation, a reservation of an ended request or of a
// role collection assignment).
func (s *Service) liveHolder(ctx context.Context, scope Scope, name string) (*Request, error) {
	id, err := s.store.NameHolder(ctx, scope, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up the reservation of %q: %w", name, err)
	}
	r, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up request %s: %w", id, err)
	}
	if r.Assignment != nil || r.State.Terminal() {
		return nil, nil
	}
	return r, nil
}

// refuseUnissued records and returns the refusal of an admin's delete of the
// name of r, a request that has not issued, with what the admin can do.
func (s *Service) refuseUnissued(ctx context.Context, user string, r *Request) error {
	s.refused(ctx, user, ActionDelete, r.Scope, r.ID, r.Name, Decision{Rule: heldNameRule, PolicyHash: s.policyHash()},
		fmt.Sprintf("held by request %s (%s), not issued yet", r.ID, r.State))
	return userErr(ErrConflict, "%s", UnissuedRefusal(r))
}

// UnissuedRefusal is what an admin is told whose delete of r's name is
// refused because r has not issued: which request, in which state, and what
// to do instead.
func UnissuedRefusal(r *Request) string {
	what := fmt.Sprintf("%q in %s is credbot's, not issued yet: request %s (%s) holds the name. Nothing was deleted. ",
		r.Name, r.Scope, r.ID, stateWord(r))
	if r.State == StatePending {
		return what + "To stop it, an approver can deny request " + r.ID + " or its requester can cancel it. " +
			"If it is approved, delete the credential once it is issued: that goes through the request and its owner is told."
	}
	return what + "credbot is creating this credential at BTP right now. Wait until it is issued (/credbot status " + r.ID +
		"), then delete it again: that goes through the request and its owner is told."
}

// allow authorizes an admin action; a refusal is recorded.
func (s *Service) allow(ctx context.Context, user string, act Action, scope Scope, name string) (Decision, error) {
	if err := scope.Validate(); err != nil {
		return Decision{}, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	d, err := s.auth.Authorize(ctx, user, act, scope, "")
	if err != nil {
		return d, fmt.Errorf("authorize %s: %w", act, err)
	}
	if !d.Allowed {
		s.refused(ctx, user, act, scope, "", name, d, "not allowed"+because(d))
		return d, userErr(ErrForbidden, "you may not %s API credentials in %s%s", act, scope, because(d))
	}
	return d, nil
}

func (s *Service) view(ctx context.Context, scope Scope, c Credential) (CredentialView, error) {
	v := CredentialView{Credential: c}
	id, err := s.store.NameHolder(ctx, scope, c.Name)
	if errors.Is(err, ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	r, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	if r.Credential == nil {
		// The name is reserved by a request that has not issued anything:
		// what BTP holds under it is not credbot's yet, but may be the
		// credential that request is creating right now.
		if r.Assignment == nil && !r.State.Terminal() {
			v.Held = r
		}
		return v, nil
	}
	v.Managed, v.Request, v.Owner, v.ExpiresAt = true, r, r.Requester, r.ExpiresAt
	return v, nil
}
