package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

func TestAnAdoptedRequestIsStoredDeliveredAndNeverPending(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r0000000000a1")
	r.State = approval.StateDelivered
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingCount(ctx); err != nil || n != 0 {
		t.Fatalf("pending count %d %v, want 0", n, err)
	}
	if ids, _ := s.PendingOf(ctx, r.Requester, 5); len(ids) != 0 {
		t.Fatalf("counted as the owner's pending request: %v", ids)
	}
	if id, err := s.NameHolder(ctx, r.Scope, r.Name); err != nil || id != r.ID {
		t.Fatalf("name holder %q %v", id, err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil || got.State != approval.StateDelivered {
		t.Fatalf("stored %+v %v", got, err)
	}
}

func TestUnmanagedCredentialsAreNewOnceAndForgottenWhenGone(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	sc := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	u := func(names ...string) []approval.UnmanagedCredential {
		var out []approval.UnmanagedCredential
		for _, n := range names {
			out = append(out, approval.UnmanagedCredential{Scope: sc, Name: n, FirstSeen: time.Now()})
		}
		return out
	}
	record := func(most int, names ...string) []string {
		t.Helper()
		fresh, err := s.RecordUnmanaged(ctx, sc, u(names...), len(names), most, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(fresh)
		return fresh
	}
	if got := record(10, "a", "b"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first: %v", got)
	}
	if got := record(10, "a", "b", "c"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("second: %v", got)
	}
	// b is gone: forgotten, and new again when it comes back.
	if got := record(10, "a", "c"); len(got) != 0 {
		t.Fatalf("third: %v", got)
	}
	if got := record(10, "a", "b", "c"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("fourth: %v", got)
	}
	// At most `most` are remembered; all are counted.
	if got := record(4, "a", "b", "c", "d", "e", "f"); len(got) != 1 {
		t.Fatalf("capped: %v", got)
	}
	list, err := s.Unmanaged(ctx, []approval.Scope{sc})
	if err != nil || len(list) != 4 {
		t.Fatalf("remembered %d %v, want 4", len(list), err)
	}
	if c, _ := s.UnmanagedCounts(ctx); c[sc.String()] != 6 {
		t.Fatalf("counts %v", c)
	}
	if err := s.ForgetUnmanaged(ctx, sc, "a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.UnmanagedCounts(ctx); c[sc.String()] != 5 {
		t.Fatalf("counts after forgetting one %v", c)
	}
	for _, k := range []string{s.unmanagedKey(sc), s.unmanagedCountKey()} {
		if d := r.Client.PTTL(ctx, k).Val(); d <= 0 || d > time.Hour {
			t.Fatalf("%s has TTL %s", k, d)
		}
	}
	// A scope that left the hierarchy is forgotten.
	if err := s.PruneInventory(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.UnmanagedCounts(ctx); len(c) != 0 {
		t.Fatalf("counts after pruning %v", c)
	}
}

func TestALeaseHasOneHolderAndOnlyItKeepsIt(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if ok, err := s.TakeLease(ctx, "inventory", "a", time.Minute); err != nil || !ok {
		t.Fatalf("take: %v %v", ok, err)
	}
	if ok, _ := s.TakeLease(ctx, "inventory", "b", time.Minute); ok {
		t.Fatal("two holders")
	}
	if ok, _ := s.KeepLease(ctx, "inventory", "b", time.Hour); ok {
		t.Fatal("a non-holder kept the lease")
	}
	if ok, err := s.KeepLease(ctx, "inventory", "a", time.Millisecond); err != nil || !ok {
		t.Fatalf("keep: %v %v", ok, err)
	}
	// Once it lapses, another may take it.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if ok, err := s.TakeLease(wait, "inventory", "b", time.Minute); err != nil {
			t.Fatalf("the lapsed lease never became free: %v", err)
		} else if ok {
			break
		}
	}
}
