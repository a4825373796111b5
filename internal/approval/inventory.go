package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/logctx"
)

// The inventory: every so often one replica lists every scope of the
// hierarchy at BTP and compares what it finds with credbot's records.
//
//   - A credential no request of credbot holds the name of is unmanaged: it
//     is reported once (an audit entry, which the audit channel mirrors) and
//     remembered, so that admins see it in their Home tab and the gauge
//     counts it, until it is gone or adopted. Nothing is done to it.
//   - A credential credbot delivered that a successful list no longer shows,
//     and that a get by its name confirms is gone, was deleted outside
//     credbot: its request goes DELIVERED → DELETED (one compare-and-set,
//     audited, with a note saying so) and its owner is told.
//
// A scope whose list fails (refused, rate limited, unreachable) changes
// nothing: neither its remembered unmanaged credentials nor any request.
// The lists run a few at a time; when BTP says to slow down (429), no list
// starts again before its Retry-After, and the throttled scope is tried once
// more at the end.

// EventUnmanaged is the audit event of a credential found at BTP that
// credbot did not issue, written once per credential.
const EventUnmanaged = "unmanaged"

// UnmanagedCredential is a credential at BTP that no request of credbot
// holds: its metadata (never a secret: lists carry none) and when the
// inventory first saw it.
type UnmanagedCredential struct {
	Scope     Scope     `json:"scope"`
	Name      string    `json:"name"`
	ClientID  string    `json:"client_id,omitempty"`
	ReadOnly  bool      `json:"read_only"`
	Type      string    `json:"type,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
}

// InventoryStore is what the inventory keeps in the store: a lease that lets
// one replica sweep at a time, the name reservations to compare with, and
// the unmanaged credentials it found. Implemented by internal/store.
type InventoryStore interface {
	// TakeLease takes the named lease for holder for ttl if nobody holds it.
	TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// KeepLease sets the lease's ttl if holder still holds it.
	KeepLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Reservations returns every name reservation: scope → name → request id.
	Reservations(ctx context.Context) (map[Scope]map[string]string, error)
	// RecordUnmanaged makes found the scope's remembered unmanaged
	// credentials (keeping when each was first seen, at most max of them),
	// sets the scope's count to total, keeps both for keep, and returns the
	// names it had not remembered before.
	RecordUnmanaged(ctx context.Context, scope Scope, found []UnmanagedCredential, total, max int, keep time.Duration) ([]string, error)
	// Unmanaged returns the remembered unmanaged credentials of scopes.
	Unmanaged(ctx context.Context, scopes []Scope) ([]UnmanagedCredential, error)
	// ForgetUnmanaged drops one remembered credential (it was adopted).
	ForgetUnmanaged(ctx context.Context, scope Scope, name string) error
	// PruneInventory forgets what was recorded for scopes not in keep.
	PruneInventory(ctx context.Context, keep []Scope) error
}

// Throttled is implemented by errors that say the server asked for fewer
// calls (HTTP 429); wait is its Retry-After, 0 when it gave none.
type Throttled interface {
	Throttled() (wait time.Duration, ok bool)
}

// InventoryConfig tunes the sweep.
type InventoryConfig struct {
	// Interval is how often the inventory is taken, by one replica.
	Interval time.Duration
	// Concurrency bounds the lists running at once (default 4).
	Concurrency int
	// ScopeTimeout bounds one scope's list (default 2 minutes).
	ScopeTimeout time.Duration
	// Remember bounds the unmanaged credentials remembered per scope
	// (default 1000); more are counted, not listed.
	Remember int
	// Keep is how long what a sweep found is kept without a newer sweep
	// (default: three intervals, at least a week).
	Keep time.Duration
}

// InventoryLease names the lease of the replica that takes the inventory.
const InventoryLease = "inventory"

const (
	// inventoryLeaseTTL is how long the sweeping replica's lease lasts
	// without renewal: if it dies, another sweeps within about this.
	inventoryLeaseTTL = 30 * time.Second
	// minThrottlePause is the least a sweep waits after a 429 that named no
	// Retry-After (the client has already backed off on its own).
	minThrottlePause = time.Second
	// maxThrottlePause caps a Retry-After the sweep honours.
	maxThrottlePause = 5 * time.Minute
)

// Inventory compares BTP with credbot's records. Create it with
// Service.Inventory.
type Inventory struct {
	s      *Service
	st     InventoryStore
	scopes func() []Scope
	cfg    InventoryConfig
}

// Inventory returns the sweep over the scopes that scopes returns (the
// hierarchy's, read at each sweep so that a policy reload takes effect).
func (s *Service) Inventory(st InventoryStore, scopes func() []Scope, cfg InventoryConfig) *Inventory {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.ScopeTimeout <= 0 {
		cfg.ScopeTimeout = 2 * time.Minute
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 1000
	}
	if cfg.Keep <= 0 {
		cfg.Keep = max(3*cfg.Interval, 7*24*time.Hour)
	}
	return &Inventory{s: s, st: st, scopes: scopes, cfg: cfg}
}

// ScopeResult is what a sweep found in one scope.
type ScopeResult struct {
	Scope     Scope
	Err       error    // the list failed: nothing of this scope was changed
	Listed    int      // credentials at BTP
	Unmanaged int      // of which no request of credbot holds
	Reported  []string // unmanaged names reported for the first time
	Deleted   []string // request ids marked DELETED: gone at BTP
}

// InventoryReport is one sweep.
type InventoryReport struct {
	Started time.Time
	Took    time.Duration
	Scopes  []ScopeResult // in the hierarchy's order
}

// Failed counts the scopes whose list failed.
func (r InventoryReport) Failed() int {
	n := 0
	for _, s := range r.Scopes {
		if s.Err != nil {
			n++
		}
	}
	return n
}

// Run takes the inventory every Interval, on whichever replica gets the
// lease first, until ctx ends. replica names this process in the lease.
func (inv *Inventory) Run(ctx context.Context, replica string) {
	// Look more often than the interval: the lease, not this ticker, spaces
	// the sweeps, so that a replica that died mid-way is replaced soon.
	t := time.NewTicker(min(inv.cfg.Interval, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := inv.Tick(ctx, replica); err != nil && ctx.Err() == nil {
				inv.s.log.WarnContext(ctx, "inventory sweep", "error", errMessage(err))
			}
		}
	}
}

// Tick sweeps if no replica has swept within the interval: it takes the
// inventory lease, keeps it while it sweeps, and then leaves it in place for
// the rest of the interval, so that the next sweep, on any replica, comes no
// sooner. swept is false when another replica holds the lease.
func (inv *Inventory) Tick(ctx context.Context, replica string) (report InventoryReport, swept bool, err error) {
	ok, err := inv.st.TakeLease(ctx, InventoryLease, replica, inventoryLeaseTTL)
	if err != nil || !ok {
		return report, false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		t := time.NewTicker(inventoryLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if ok, err := inv.st.KeepLease(sctx, InventoryLease, replica, inventoryLeaseTTL); err == nil && !ok {
					inv.s.log.WarnContext(ctx, "lost the inventory lease mid-sweep; stopping so that one replica sweeps at a time", "replica", replica)
					cancel()
					return
				}
			}
		}
	}()
	report = inv.Sweep(sctx)
	cancel()
	<-kept
	rest := inv.cfg.Interval - inv.s.clock.Now().Sub(report.Started)
	if ctx.Err() != nil {
		// Cut short (this replica is stopping): hand the lease back, so that
		// another replica sweeps within a minute, not an interval.
		rest = 0
	}
	if _, err := inv.st.KeepLease(context.WithoutCancel(ctx), InventoryLease, replica, max(rest, time.Millisecond)); err != nil {
		inv.s.log.WarnContext(ctx, "could not keep the inventory lease for the rest of the interval; another replica may sweep sooner", "error", err)
	}
	return report, true, nil
}

// Sweep takes the inventory now, whatever the lease says (Tick honours it).
func (inv *Inventory) Sweep(ctx context.Context) InventoryReport {
	rep := InventoryReport{Started: inv.s.clock.Now()}
	ctx = logctx.With(ctx, "trigger", "inventory")
	scopes := inv.scopes()
	// Reservations are read before and after the lists: a name reserved at
	// either moment is credbot's (a request that began or ended while BTP
	// answered), never an unmanaged credential.
	before, err := inv.st.Reservations(ctx)
	if err != nil {
		for _, sc := range scopes {
			rep.Scopes = append(rep.Scopes, ScopeResult{Scope: sc, Err: fmt.Errorf("read credbot's records: %w", err)})
		}
		rep.Took = inv.s.clock.Now().Sub(rep.Started)
		inv.logReport(ctx, rep)
		return rep
	}
	lists := inv.listAll(ctx, scopes)
	after, err := inv.st.Reservations(ctx)
	rep.Scopes = make([]ScopeResult, len(scopes))
	for i, sc := range scopes {
		res := ScopeResult{Scope: sc, Err: lists[i].err}
		switch {
		case res.Err != nil:
		case err != nil:
			res.Err = fmt.Errorf("read credbot's records: %w", err)
		default:
			inv.compare(ctx, &res, lists[i].creds, before[sc], after[sc])
		}
		rep.Scopes[i] = res
	}
	if err := inv.st.PruneInventory(ctx, scopes); err != nil {
		inv.s.log.WarnContext(ctx, "inventory: forget scopes no longer in the hierarchy", "error", err)
	}
	rep.Took = inv.s.clock.Now().Sub(rep.Started)
	inv.logReport(ctx, rep)
	return rep
}

type listed struct {
	creds []Credential
	err   error
}

// listAll lists every scope, Concurrency at a time. A 429 holds every list
// back until its Retry-After; the throttled scope is tried once more after
// the others.
func (inv *Inventory) listAll(ctx context.Context, scopes []Scope) []listed {
	out := make([]listed, len(scopes))
	var (
		mu        sync.Mutex
		notBefore time.Time
		again     []int
	)
	wait := func() error {
		mu.Lock()
		d := notBefore.Sub(inv.s.clock.Now())
		mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	list := func(i int) (throttled bool) {
		if err := wait(); err != nil {
			out[i] = listed{err: err}
			return false
		}
		lctx, cancel := context.WithTimeout(ctx, inv.cfg.ScopeTimeout)
		creds, err := inv.s.issuer.List(lctx, scopes[i])
		cancel()
		out[i] = listed{creds: creds, err: err}
		var th Throttled
		if err == nil || !errors.As(err, &th) {
			return false
		}
		pause, ok := th.Throttled()
		if !ok {
			return false
		}
		pause = min(max(pause, minThrottlePause), maxThrottlePause)
		mu.Lock()
		if until := inv.s.clock.Now().Add(pause); until.After(notBefore) {
			notBefore = until
		}
		mu.Unlock()
		inv.s.log.WarnContext(ctx, "BTP asked credbot to slow down; the inventory waits before its next list",
			"scope", scopes[i].String(), "wait", pause.String())
		return true
	}
	run := func(idx []int) {
		work := make(chan int)
		var wg sync.WaitGroup
		for range min(inv.cfg.Concurrency, len(idx)) {
			wg.Go(func() {
				for i := range work {
					if list(i) {
						mu.Lock()
						again = append(again, i)
						mu.Unlock()
					}
				}
			})
		}
		for _, i := range idx {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	all := make([]int, len(scopes))
	for i := range all {
		all[i] = i
	}
	run(all)
	retry := again
	again = nil
	if len(retry) > 0 && ctx.Err() == nil {
		slices.Sort(retry)
		run(retry)
	}
	return out
}

// compare sets res from one scope's successful list: the unmanaged
// credentials are recorded (the new ones reported), and delivered
// credentials the list lacks are marked DELETED once BTP confirms.
func (inv *Inventory) compare(ctx context.Context, res *ScopeResult, creds []Credential, before, after map[string]string) {
	res.Listed = len(creds)
	now := inv.s.clock.Now().UTC()
	atBTP := make(map[string]bool, len(creds))
	var found []UnmanagedCredential
	for _, c := range creds {
		atBTP[c.Name] = true
		if _, ok := before[c.Name]; ok {
			continue
		}
		if _, ok := after[c.Name]; ok {
			continue
		}
		found = append(found, UnmanagedCredential{Scope: res.Scope, Name: c.Name, ClientID: c.ClientID, ReadOnly: c.ReadOnly, Type: c.Type, FirstSeen: now})
	}
	res.Unmanaged = len(found)
	if len(found) > inv.cfg.Remember {
		inv.s.log.WarnContext(ctx, "more unmanaged credentials in a scope than credbot remembers; the rest are counted, not listed",
			"scope", res.Scope.String(), "unmanaged", len(found), "remembered", inv.cfg.Remember)
	}
	fresh, err := inv.st.RecordUnmanaged(ctx, res.Scope, found, len(found), inv.cfg.Remember, inv.cfg.Keep)
	if err != nil {
		res.Err = fmt.Errorf("record unmanaged credentials: %w", err)
		return
	}
	for _, name := range fresh {
		i := slices.IndexFunc(found, func(u UnmanagedCredential) bool { return u.Name == name })
		if i < 0 {
			continue
		}
		if err := inv.report(ctx, found[i]); err != nil {
			// Unreported: forget it, so that the next sweep reports it.
			if ferr := inv.st.ForgetUnmanaged(ctx, res.Scope, name); ferr != nil {
				inv.s.log.WarnContext(ctx, "inventory: an unmanaged credential could not be reported nor forgotten; it is not reported again",
					"scope", res.Scope.String(), "name", name, "error", ferr)
			}
			continue
		}
		res.Reported = append(res.Reported, name)
	}
	for name, id := range after {
		if atBTP[name] {
			continue
		}
		done, err := inv.s.goneAtBTP(ctx, id, res.Scope, name)
		if err != nil {
			inv.s.log.WarnContext(ctx, "inventory: could not check a credential the list lacks; the next sweep looks again",
				"request_id", id, "scope", res.Scope.String(), "name", name, "error", errMessage(err))
			continue
		}
		if done {
			res.Deleted = append(res.Deleted, id)
		}
	}
	slices.Sort(res.Deleted)
}

// report writes the one audit entry of a newly found unmanaged credential;
// the audit channel mirrors it.
func (inv *Inventory) report(ctx context.Context, u UnmanagedCredential) error {
	result := fmt.Sprintf("found at BTP, not issued by credbot (%s, client id %s); credbot does not touch it. "+
		"An admin can put it under management with /credbot adopt --%s %s --name %s --owner @someone, or delete it with /credbot delete",
		accessWord(u.ReadOnly), or(u.ClientID, "unknown"), scopeFlag(u.Scope.Kind), u.Scope.ID, u.Name)
	return inv.s.record(ctx, AuditEntry{Event: EventUnmanaged, Actor: "inventory", Scope: u.Scope.String(), Name: u.Name, Result: result})
}

// goneAtBTP marks a delivered credential that the inventory's list lacked
// DELETED, once a get by name confirms it is gone. The request was DELIVERED
// before the get (so its credential existed at BTP before it), and is
// DELIVERED without a revocation under way when it is marked: credbot did
// not delete it. done is false when there was nothing to do.
func (s *Service) goneAtBTP(ctx context.Context, id string, scope Scope, name string) (done bool, err error) {
	r, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.State != StateDelivered || r.Revoking || r.Credential == nil || r.Scope.String() != scope.String() || r.Name != name {
		return false, nil
	}
	switch _, err := s.issuer.Get(ctx, scope, name); {
	case err == nil:
		return false, nil // there after all: the list was behind
	case !errors.Is(err, ErrNotFound):
		return false, fmt.Errorf("confirm at BTP: %w", err)
	}
	why := "deleted at BTP outside credbot: the inventory no longer finds it there"
	r, err = s.transition(ctx, id, "inventory", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateDelivered || cur.Revoking {
			return nil, Effects{}, errNoop
		}
		cur.State = StateDeleted
		return &AuditEntry{Note: why}, Effects{ClearDeadline: true, DropSecret: true, ReleaseName: true}, nil
	})
	if errors.Is(err, errNoop) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.tell(ctx, r, fmt.Sprintf("Your API credential %q in %s was deleted at BTP, but not through credbot: credbot's inventory no longer finds it there. "+
		"credbot has closed request %s. If you still need a credential, ask again with /credbot create.", r.Name, r.Scope, r.ID))
	return true, nil
}

func (inv *Inventory) logReport(ctx context.Context, rep InventoryReport) {
	var listedN, unmanaged, reported, deleted int
	for _, sc := range rep.Scopes {
		if sc.Err != nil {
			inv.s.log.WarnContext(ctx, "inventory: could not list a scope at BTP; nothing of it was changed, the next sweep tries again",
				"scope", sc.Scope.String(), "error", errMessage(sc.Err))
			continue
		}
		listedN += sc.Listed
		unmanaged += sc.Unmanaged
		reported += len(sc.Reported)
		deleted += len(sc.Deleted)
	}
	inv.s.log.InfoContext(ctx, "inventory sweep done", "scopes", len(rep.Scopes), "failed_scopes", rep.Failed(),
		"credentials", listedN, "unmanaged", unmanaged, "newly_reported", reported, "marked_deleted", deleted, "took", rep.Took.String())
}

func accessWord(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "read-write"
}

// scopeFlag is the command flag that names a scope of kind k.
func scopeFlag(k ScopeKind) string {
	switch k {
	case ScopeDirectory:
		return "directory"
	case ScopeGlobalAccount:
		return "global-account"
	}
	return "subaccount"
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Unmanaged returns the unmanaged credentials the inventory remembers in the
// scopes where user may delete (and so adopt): the admins' list in their
// Home tab. Others get none.
func (inv *Inventory) Unmanaged(ctx context.Context, user string) ([]UnmanagedCredential, error) {
	var mine []Scope
	for _, sc := range inv.scopes() {
		d, err := inv.s.auth.Authorize(ctx, user, ActionDelete, sc, "")
		if err != nil {
			return nil, err
		}
		if d.Allowed {
			mine = append(mine, sc)
		}
	}
	if len(mine) == 0 {
		return nil, nil
	}
	return inv.st.Unmanaged(ctx, mine)
}
