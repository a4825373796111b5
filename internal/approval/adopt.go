package approval

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Adoption puts a credential that credbot did not create — one the inventory
// reported, or one made in the cockpit or by Terraform — under credbot's
// management, by an admin's explicit decision:
//
//	(new) ──admin adopts──▶ DELIVERED (owned by the named user, with an expiry)
//
// From then on it is a delivered credential like any other: its owner is
// warned before it expires, and at the end of its lifetime credbot deletes it
// at BTP. Its secret is never touched: credbot never had it, and BTP shows it
// to nobody again.
//
// Who may adopt: whoever the policy lets delete in the scope. Adopting is a
// deletion with a date, an owner and a warning, so it needs no more and no
// less than deleting now; the owner must be allowed to request credentials
// there (to hold them).
type Adoption struct {
	Admin     string // who adopts (Slack user id)
	Scope     Scope
	Name      string
	Owner     string        // the credential's owner from now on (Slack user id)
	ExpiresIn time.Duration // its lifetime from now; zero means the maximum
	// Key, when set, identifies the command (its Slack trigger id), so that
	// running it twice finds the request it made.
	Key string
}

var slackUserRE = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// adoptRule names the decision behind an adoption in the audit trail.
const adoptRule = "built-in: adopting needs delete in the scope"

// Adopt records an existing credential as a DELIVERED request owned by
// in.Owner, reserving its name, and tells the owner.
func (s *Service) Adopt(ctx context.Context, in Adoption) (*Request, error) {
	if err := in.Scope.Validate(); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if err := ValidateName(in.Name); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	if !slackUserRE.MatchString(in.Owner) {
		return nil, userErr(ErrInvalid, "--owner must name a person: pick them from Slack's list as you type @, or give their member ID (U…)")
	}
	var err error
	if in.ExpiresIn, err = s.lifetimeOf(in.ExpiresIn); err != nil {
		return nil, err
	}
	d, err := s.auth.Authorize(ctx, in.Admin, ActionDelete, in.Scope, "")
	if err != nil {
		return nil, fmt.Errorf("authorize adopt: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, in.Admin, "adopt", in.Scope, "", in.Name, d, "not allowed to delete there"+because(d))
		return nil, userErr(ErrForbidden, "you may not adopt API credentials in %s: adopting needs delete there%s", in.Scope, because(d))
	}
	od, err := s.auth.Authorize(ctx, in.Owner, ActionCreate, in.Scope, "")
	if err != nil {
		return nil, fmt.Errorf("authorize the owner: %w", err)
	}
	if !od.Allowed {
		s.refused(ctx, in.Admin, "adopt", in.Scope, "", in.Name, od, "the owner "+in.Owner+" may not hold credentials there"+because(od))
		return nil, userErr(ErrForbidden, "<@%s> may not hold API credentials in %s%s, so cannot own this one", in.Owner, in.Scope, because(od))
	}
	id := newID()
	if in.Key != "" {
		id = idFor(in.Admin, "adopt\x00"+in.Key)
		if r, err := s.store.Get(ctx, id); err == nil {
			return r, nil // this command ran before
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	switch holder, err := s.store.NameHolder(ctx, in.Scope, in.Name); {
	case err == nil:
		if strings.HasPrefix(holder, adminHoldPrefix) {
			return nil, userErr(ErrNameHeld, "%q in %s is held by %s", in.Name, in.Scope, describeHolder(holder))
		}
		return nil, userErr(ErrNameHeld, "%q in %s is credbot's already: request %s holds its name", in.Name, in.Scope, holder)
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("look up the reservation of %q: %w", in.Name, err)
	}
	cred, err := s.issuer.Get(ctx, in.Scope, in.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, userErr(ErrNotFound, "there is no API credential %q in %s at BTP", in.Name, in.Scope)
	case err != nil:
		return nil, fmt.Errorf("look it up at BTP: %w", err)
	}
	if cred.Name == "" {
		cred.Name = in.Name
	}
	now := s.clock.Now().UTC()
	r := &Request{
		ID: id, Requester: in.Owner, Scope: in.Scope, Name: in.Name, ReadOnly: cred.ReadOnly,
		Reason: "adopted: created outside credbot", State: StateDelivered, Version: 1,
		CreatedAt: now, UpdatedAt: now, DecidedBy: in.Admin, AdoptedBy: in.Admin, Credential: &cred,
		Lifetime: in.ExpiresIn, ExpiresAt: now.Add(in.ExpiresIn),
	}
	a := AuditEntry{RequestID: id, To: StateDelivered, Actor: in.Admin, At: now, Rule: d.Rule, PolicyHash: d.PolicyHash,
		Note: fmt.Sprintf("adopted: a credential created outside credbot, now owned by %s and deleted at BTP at the end of its lifetime (%s); credbot never had its secret and did not touch it",
			in.Owner, r.ExpiresAt.Format(time.RFC3339))}
	if err := s.store.Create(ctx, r, a, s.nextDeadline(r)); err != nil {
		switch {
		case errors.Is(err, ErrNameHeld):
			return nil, userErr(ErrNameHeld, "another request has just reserved %q in %s", in.Name, in.Scope)
		case errors.Is(err, ErrConflict) && in.Key != "":
			if r, err := s.store.Get(ctx, id); err == nil {
				return r, nil // the same command, run twice at once
			}
		}
		return nil, fmt.Errorf("store the adoption: %w", err)
	}
	// Not observed: the time-to-deliver histogram is about requests.
	s.mirror(a)
	s.logMove(ctx, a, r.Version)
	if st, ok := s.store.(InventoryStore); ok {
		if err := st.ForgetUnmanaged(ctx, in.Scope, in.Name); err != nil {
			s.log.WarnContext(ctx, "adopt: forget the unmanaged credential; the next inventory sweep does", "request_id", id, "error", err)
		}
	}
	s.tell(ctx, r, fmt.Sprintf("<@%s> put the API credential %q in %s under credbot's management, with you as its owner (request %s). "+
		"credbot never had its secret and did not touch it. credbot deletes it at BTP on %s, at the end of its lifetime, and warns you before.",
		in.Admin, r.Name, r.Scope, r.ID, r.ExpiresAt.Format("2006-01-02 15:04 MST")))
	return r, nil
}
