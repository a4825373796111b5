package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits keep one person from crowding out everyone else. Each request pings
// its approvers (and reminds them), and the approvers' Home tab shows only
// the oldest 200 pending requests, so a requester may have at most
// Config.MaxPendingPerUser requests waiting at a time. Every list and get
// spends the bot's one BTP rate budget, shared by all users and replicas, so
// their answers are kept for Config.LookupCache (in Redis, for every
// replica); credbot forgets a scope's entries whenever it creates or deletes
// a credential there.

// ErrLimit: the caller reached a limit; the message says which and what to do.
var ErrLimit = errors.New("limit reached")

// Quotas is what the limits need from the store. Implemented by internal/store.
type Quotas interface {
	// PendingOf returns the ids of up to limit of user's PENDING requests.
	PendingOf(ctx context.Context, user string, limit int) ([]string, error)
	// LockRequester takes a short lock on user's submissions (lapsing after
	// ttl); ok is false while another holder has it. unlock gives it up.
	LockRequester(ctx context.Context, user string, ttl time.Duration) (unlock func(), ok bool, err error)
	// CachedLookup returns a cached lookup, or ErrNotFound.
	CachedLookup(ctx context.Context, key string) ([]byte, error)
	// CacheLookup keeps a lookup for ttl.
	CacheLookup(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// ForgetLookups drops cached lookups.
	ForgetLookups(ctx context.Context, keys ...string) error
}

const (
	// submitLock bounds how long one requester's count-and-store may hold
	// the lock (two Redis calls; the TTL is only for a holder that died).
	submitLock = 10 * time.Second
	// submitLockWait is how long a submission waits for the requester's
	// other submission to finish storing before it gives up.
	submitLockWait = 5 * time.Second
)

// checkPending refuses a submission when the requester already has the most
// pending requests allowed, and records the refusal in the audit trail: the
// attempt (act on name in scope; requestID is the request it acts on, if
// any), the limit as its rule and the hash of the policy in force from d.
func (s *Service) checkPending(ctx context.Context, user string, act Action, scope Scope, requestID, name string, d Decision) error {
	limit := s.cfg.MaxPendingPerUser
	if limit <= 0 {
		return nil
	}
	ids, err := s.store.PendingOf(ctx, user, limit)
	if err != nil {
		return err
	}
	if len(ids) < limit {
		return nil
	}
	for i, id := range ids {
		ids[i] = "`" + id + "`"
	}
	err = userErr(ErrLimit, "you have %d requests waiting for approval (the most allowed): %s. Cancel one with `/credbot cancel <id>` or wait for a decision.",
		len(ids), strings.Join(ids, ", "))
	s.refused(ctx, user, act, scope, requestID, name, Decision{Rule: pendingLimitRule(limit), PolicyHash: d.PolicyHash},
		fmt.Sprintf("%d requests waiting for approval (the most allowed): %s", len(ids), strings.Join(ids, ", ")))
	return err
}

// pendingLimitRule names the limit in the audit entry of a refusal.
func pendingLimitRule(limit int) string {
	return fmt.Sprintf("limit: at most %d pending requests per requester (CREDBOT_MAX_PENDING_PER_USER)", limit)
}

// create stores a new request unless its requester reached the limit of
// pending requests. The count and the store happen under the requester's
// lock, so a burst of submissions from one person (many workers, many
// replicas) cannot all pass the count before any is stored.
func (s *Service) create(ctx context.Context, r *Request, a AuditEntry, deadline time.Time) error {
	if s.cfg.MaxPendingPerUser <= 0 {
		return s.store.Create(ctx, r, a, deadline)
	}
	unlock, err := s.lockRequester(ctx, r.Requester)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.store.Get(ctx, r.ID); err == nil {
		// The same submission, run twice at once, stored while we waited:
		// Create says so (ErrConflict) and Submit carries on with it.
		return s.store.Create(ctx, r, a, deadline)
	}
	if err := s.checkPending(ctx, r.Requester, r.action(), r.Scope, r.Rotates, r.Name, Decision{PolicyHash: a.PolicyHash}); err != nil {
		return err
	}
	return s.store.Create(ctx, r, a, deadline)
}

// lockRequester waits, briefly, for the requester's submission lock: it is
// held only while another submission of theirs counts and stores.
func (s *Service) lockRequester(ctx context.Context, user string) (func(), error) {
	wctx, cancel := context.WithTimeout(ctx, submitLockWait)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 100*time.Millisecond) {
		unlock, ok, err := s.store.LockRequester(ctx, user, submitLock)
		if err != nil {
			return nil, fmt.Errorf("lock the submissions of %s: %w", user, err)
		}
		if ok {
			return unlock, nil
		}
		sleep(wctx, wait)
		if wctx.Err() != nil {
			return nil, userErr(ErrConflict, "another request of yours is being submitted right now; please try again in a moment")
		}
	}
}

// Lookup cache keys: one for a scope's list, one per name for get.
func listKey(scope Scope) string             { return "list:" + scope.String() }
func getKey(scope Scope, name string) string { return "get:" + scope.String() + "/" + name }

// cachedGet is a get answer as cached: the credential's metadata (never a
// secret: Issuer.Get returns none), or that there is none.
type cachedGet struct {
	Credential *Credential `json:"credential,omitempty"`
}

// listAtBTP is Issuer.List through the lookup cache.
func (s *Service) listAtBTP(ctx context.Context, scope Scope) ([]Credential, error) {
	key := listKey(scope)
	var creds []Credential
	if s.cachedLookup(ctx, key, &creds) {
		return creds, nil
	}
	creds, err := s.issuer.List(ctx, scope)
	if err != nil {
		return nil, err
	}
	s.cacheLookup(ctx, key, creds)
	return creds, nil
}

// getAtBTP is Issuer.Get through the lookup cache, which also remembers
// that there is no such credential.
func (s *Service) getAtBTP(ctx context.Context, scope Scope, name string) (Credential, error) {
	key := getKey(scope, name)
	var got cachedGet
	if !s.cachedLookup(ctx, key, &got) {
		c, err := s.issuer.Get(ctx, scope, name)
		switch {
		case err == nil:
			got.Credential = &c
		case !errors.Is(err, ErrNotFound):
			return Credential{}, err
		}
		s.cacheLookup(ctx, key, got)
	}
	if got.Credential == nil {
		return Credential{}, fmt.Errorf("credential %s in %s: %w", name, scope, ErrNotFound)
	}
	return *got.Credential, nil
}

// cachedLookup decodes a cached lookup into v; false on a miss or when the
// cache cannot answer (then BTP does).
func (s *Service) cachedLookup(ctx context.Context, key string, v any) bool {
	if s.cfg.LookupCache <= 0 {
		return false
	}
	b, err := s.store.CachedLookup(ctx, key)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "read the lookup cache", "key", key, "error", err)
		}
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func (s *Service) cacheLookup(ctx context.Context, key string, v any) {
	if s.cfg.LookupCache <= 0 {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = s.store.CacheLookup(ctx, key, b, s.cfg.LookupCache)
	}
	if err != nil {
		s.log.WarnContext(ctx, "fill the lookup cache", "key", key, "error", err)
	}
}

// forgetful is the Issuer as the lifecycle uses it: whatever credbot creates
// or deletes at BTP drops the cached lookups it makes stale, so that the next
// list or get shows it.
type forgetful struct {
	Issuer
	s *Service
}

func (f forgetful) Create(ctx context.Context, spec CredentialSpec) (Issued, error) {
	defer f.forget(ctx, spec.Scope, spec.Name)
	return f.Issuer.Create(ctx, spec)
}

func (f forgetful) Delete(ctx context.Context, scope Scope, name string) error {
	defer f.forget(ctx, scope, name)
	return f.Issuer.Delete(ctx, scope, name)
}

func (f forgetful) forget(ctx context.Context, scope Scope, name string) {
	if f.s.cfg.LookupCache <= 0 {
		return
	}
	if err := f.s.store.ForgetLookups(context.WithoutCancel(ctx), listKey(scope), getKey(scope, name)); err != nil {
		f.s.log.WarnContext(ctx, "forget cached lookups; they lapse on their own", "scope", scope.String(), "name", name, "error", err,
			"within", f.s.cfg.LookupCache)
	}
}
