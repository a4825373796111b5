package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func newStore(t *testing.T) (*Store, *redistest.Redis) {
	t.Helper()
	r := redistest.New(t)
	s, err := New(context.Background(), r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func pending(id string) *approval.Request {
	return &approval.Request{ID: id, Requester: "U1", State: approval.StatePending, Version: 1,
		Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}, Name: "n-" + id}
}

func TestANameIsHeldByOneRequestUntilItIsReleased(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	first, second := pending("r0000000000c1"), pending("r0000000000c2")
	second.Name = first.Name
	if err := s.Create(ctx, first, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, second, approval.AuditEntry{}, time.Now().Add(time.Hour)); !errors.Is(err, approval.ErrNameHeld) {
		t.Fatalf("second request for the same name: %v, want ErrNameHeld", err)
	}
	if _, err := s.Get(ctx, second.ID); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("the refused request was stored: %v", err)
	}
	if id, err := s.NameHolder(ctx, first.Scope, first.Name); err != nil || id != first.ID {
		t.Fatalf("holder = %q, %v; want %s", id, err, first.ID)
	}
	// A transition that does not release keeps it; one that does frees it.
	next := *first
	next.Reminders = 1
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NameHolder(ctx, first.Scope, first.Name); err != nil {
		t.Fatalf("reservation lost on an ordinary transition: %v", err)
	}
	next.State = approval.StateDenied
	if err := s.Apply(ctx, &next, approval.StatePending, 2, approval.AuditEntry{}, approval.Effects{ReleaseName: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NameHolder(ctx, first.Scope, first.Name); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("reservation kept after release: %v", err)
	}
	if err := s.Create(ctx, second, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("the released name cannot be asked for again: %v", err)
	}
	// A stale release by the first request does not free the second's hold.
	if err := s.Apply(ctx, &next, approval.StateDenied, 3, approval.AuditEntry{}, approval.Effects{ReleaseName: true}); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.NameHolder(ctx, second.Scope, second.Name); id != second.ID {
		t.Fatalf("holder = %q after another request's release, want %s", id, second.ID)
	}
}

func TestApplyIsCompareAndSetOnStateAndVersion(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r000000000001")
	if err := s.Create(ctx, r, approval.AuditEntry{To: approval.StatePending}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now()); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("second Create: %v, want ErrConflict", err)
	}
	next := *r
	next.State = approval.StateApproved
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{To: approval.StateApproved}, approval.Effects{EnqueueMint: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{EnqueueMint: true}); !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("stale Apply: %v, want ErrConflict", err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil || got.State != approval.StateApproved || got.Version != 2 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	jobs, err := s.ClaimMintJobs(ctx, "c1", 10*time.Millisecond, time.Hour)
	if err != nil || len(jobs) != 1 || jobs[0].RequestID != r.ID {
		t.Fatalf("jobs = %+v, %v; want exactly one", jobs, err)
	}
}

func TestConcurrentApplyFromSameVersionHasOneWinner(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r000000000002")
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := *r
			next.State = approval.StateApproved
			if s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{EnqueueMint: true}) == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners, want 1", wins.Load())
	}
	n, _ := s.rdb.XLen(ctx, s.mintKey()).Result()
	if n != 1 {
		t.Fatalf("%d mint jobs queued, want 1", n)
	}
}

func TestTakeRevealsSealedSecretOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r000000000003")
	_ = s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour))
	issued := *r
	issued.State = approval.StateIssued
	if err := s.Apply(ctx, &issued, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{SealedSecret: []byte("sealed\x00bytes"), SecretTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := issued
			next.State = approval.StateDelivered
			b, err := s.Take(ctx, &next, 2, approval.AuditEntry{}, time.Time{})
			if err == nil {
				if string(b) != "sealed\x00bytes" {
					t.Errorf("took %q", b)
				}
				got.Add(1)
			} else if !errors.Is(err, approval.ErrConflict) && !errors.Is(err, approval.ErrAlreadyTaken) {
				t.Errorf("Take: %v", err)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Fatalf("%d reveals, want 1", got.Load())
	}
	if n, _ := s.rdb.Exists(ctx, s.secretKey(r.ID)).Result(); n != 0 {
		t.Fatal("sealed secret still stored after reveal")
	}
}

func TestDueDeadlines(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	now := time.Now()
	_ = s.Create(ctx, pending("r00000000000a"), approval.AuditEntry{}, now.Add(-time.Second))
	_ = s.Create(ctx, pending("r00000000000b"), approval.AuditEntry{}, now.Add(time.Hour))
	due, err := s.DueDeadlines(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].ID != "r00000000000a" {
		t.Fatalf("due = %v, %v", due, err)
	}
	// A deadline that moved in the meantime is kept.
	s.rdb.ZAdd(ctx, s.deadlineKey(), redis.Z{Score: float64(now.Add(time.Minute).UnixMilli()), Member: "r00000000000a"})
	if err := s.DropDeadline(ctx, due[0].ID, due[0].At); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.ZCard(ctx, s.deadlineKey()).Result(); n != 2 {
		t.Fatalf("moved deadline dropped: %d left", n)
	}
	moved, _ := s.rdb.ZScore(ctx, s.deadlineKey(), "r00000000000a").Result()
	if err := s.DropDeadline(ctx, "r00000000000a", time.UnixMilli(int64(moved))); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.ZCard(ctx, s.deadlineKey()).Result(); n != 1 {
		t.Fatalf("deadline not dropped: %d left", n)
	}
}

func TestMintJobIsRescuedAfterIdle(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r000000000004")
	_ = s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour))
	next := *r
	next.State = approval.StateApproved
	_ = s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{EnqueueMint: true})
	first, err := s.ClaimMintJobs(ctx, "dead-worker", 10*time.Millisecond, time.Hour)
	if err != nil || len(first) != 1 {
		t.Fatalf("first claim = %v, %v", first, err)
	}
	// The worker dies without acking. The look for stuck jobs is made at
	// most every takeoverEvery, not at every claim: the first claim made it.
	if soon, err := s.ClaimMintJobs(ctx, "rescuer", 10*time.Millisecond, 0); err != nil || len(soon) != 0 {
		t.Fatalf("a claim right after the last look for stuck jobs = %+v, %v; want nothing", soon, err)
	}
	// At the next look, another worker with min-idle 0 rescues it.
	s.takeover = takeoverClock{}
	again, err := s.ClaimMintJobs(ctx, "rescuer", 10*time.Millisecond, 0)
	if err != nil || len(again) != 1 || again[0].RequestID != r.ID || again[0].Deliveries < 2 {
		t.Fatalf("rescued = %+v, %v", again, err)
	}
	if err := s.AckMintJob(ctx, again[0]); err != nil {
		t.Fatal(err)
	}
	s.takeover = takeoverClock{}
	left, _ := s.ClaimMintJobs(ctx, "rescuer", 10*time.Millisecond, 0)
	if len(left) != 0 {
		t.Fatalf("acked job delivered again: %+v", left)
	}
}

// An admin's hold of a name: only a free name is held, only its holder's
// token releases it, and it lapses by itself.
func TestHoldNameHoldsOnlyAFreeNameAndOnlyItsTokenReleasesIt(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	sc := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	if ok, err := s.HoldName(ctx, sc, "x", "admin-delete:U1:a", time.Minute); err != nil || !ok {
		t.Fatalf("hold a free name = %v, %v", ok, err)
	}
	if ok, err := s.HoldName(ctx, sc, "x", "admin-delete:U2:b", time.Minute); err != nil || ok {
		t.Fatalf("hold a held name = %v, %v; want refused", ok, err)
	}
	if err := s.ReleaseName(ctx, sc, "x", "admin-delete:U2:b"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.NameHolder(ctx, sc, "x"); err != nil || h != "admin-delete:U1:a" {
		t.Fatalf("holder after another token's release = %q, %v", h, err)
	}
	if ttl, _ := s.rdb.PTTL(ctx, s.nameKey(sc, "x")).Result(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the hold's TTL is %s", ttl)
	}
	if err := s.ReleaseName(ctx, sc, "x", "admin-delete:U1:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NameHolder(ctx, sc, "x"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("holder after release: %v", err)
	}
}
