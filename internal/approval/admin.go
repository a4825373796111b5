package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	if v.Managed {
		result = "found, issued by credbot in request " + v.Request.ID
	}
	if err := s.looked(ctx, EventGet, user, scope, name, d, result); err != nil {
		return CredentialView{}, err
	}
	return v, nil
}

// DeleteCredential deletes a credential at BTP for an admin. A credential
// credbot issued is retired through its request (so its record, deadlines and
// any unrevealed secret go with it); any other is deleted directly.
func (s *Service) DeleteCredential(ctx context.Context, user string, scope Scope, name string) error {
	if err := ValidateName(name); err != nil {
		return &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	d, err := s.allow(ctx, user, ActionDelete, scope, name)
	if err != nil {
		return err
	}
	id, err := s.store.NameHolder(ctx, scope, name)
	if err == nil {
		r, err := s.retire(ctx, id, user, d, StateDeleted, "deleted by an admin", func(cur *Request) bool {
			return cur.State == StateIssued || cur.State == StateDelivered
		})
		if err == nil {
			s.tell(ctx, r, fmt.Sprintf("Your API credential %q in %s was deleted by <@%s>.", r.Name, r.Scope, user))
			return nil
		}
		if !errors.Is(err, errNoop) {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
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
		// what BTP holds under it is not credbot's.
		return v, nil
	}
	v.Managed, v.Request, v.Owner, v.ExpiresAt = true, r, r.Requester, r.ExpiresAt
	return v, nil
}
