package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// backends runs f against a real redis-server and against miniredis (local
// mode's in-process Redis): the limits' scripts must run on both.
func backends(t *testing.T, f func(t *testing.T, s *Store, ttl func(key string) time.Duration)) {
	t.Run("redis", func(t *testing.T) {
		s, r := newStore(t)
		f(t, s, func(key string) time.Duration { return r.Client.PTTL(context.Background(), key).Val() })
	})
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		s, err := New(context.Background(), c, "mini")
		if err != nil {
			t.Fatal(err)
		}
		f(t, s, func(key string) time.Duration { return mr.TTL(key) })
	})
}

func TestPendingOfCountsOnlyTheRequestersPendingRequests(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ func(string) time.Duration) {
		ctx := context.Background()
		now := time.Now()
		for i, id := range []string{"r0000000000a1", "r0000000000a2", "r0000000000a3", "r0000000000b1"} {
			r := pending(id)
			r.CreatedAt = now.Add(time.Duration(i) * time.Second)
			if id == "r0000000000b1" {
				r.Requester = "U2"
			}
			if err := s.Create(ctx, r, approval.AuditEntry{}, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		// One of U1's is decided: it no longer counts.
		done := pending("r0000000000a2")
		done.State = approval.StateDenied
		if err := s.Apply(ctx, done, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{ReleaseName: true}); err != nil {
			t.Fatal(err)
		}
		ids, err := s.PendingOf(ctx, "U1", 5)
		slices.Sort(ids)
		if err != nil || !slices.Equal(ids, []string{"r0000000000a1", "r0000000000a3"}) {
			t.Fatalf("PendingOf(U1) = %v, %v", ids, err)
		}
		if ids, err := s.PendingOf(ctx, "U1", 1); err != nil || len(ids) != 1 {
			t.Fatalf("PendingOf(U1, 1) = %v, %v; want one id", ids, err)
		}
		if ids, err := s.PendingOf(ctx, "U3", 5); err != nil || len(ids) != 0 {
			t.Fatalf("PendingOf(nobody's) = %v, %v", ids, err)
		}
	})
}

func TestARequestersLockIsHeldByOneAndFreedOnlyByItsHolder(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		unlock, ok, err := s.LockRequester(ctx, "U1", 10*time.Second)
		if err != nil || !ok {
			t.Fatalf("first lock: %v %v", ok, err)
		}
		if d := ttl(s.submitLockKey("U1")); d <= 0 || d > 10*time.Second {
			t.Fatalf("the lock's TTL is %s", d)
		}
		if _, ok, err := s.LockRequester(ctx, "U1", 10*time.Second); err != nil || ok {
			t.Fatalf("second lock while held: %v %v", ok, err)
		}
		if _, ok, _ := s.LockRequester(ctx, "U2", 10*time.Second); !ok {
			t.Fatal("another requester's lock is not separate")
		}
		// A lapsed holder's unlock must not free the next holder's lock.
		s.rdb.Del(ctx, s.submitLockKey("U1"))
		_, ok, _ = s.LockRequester(ctx, "U1", 10*time.Second)
		if !ok {
			t.Fatal("no lock after the first lapsed")
		}
		unlock()
		if _, ok, _ := s.LockRequester(ctx, "U1", 10*time.Second); ok {
			t.Fatal("a stale unlock freed the current holder's lock")
		}
	})
}

func TestCountInWindowCountsAndAlwaysExpires(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		for want := int64(1); want <= 3; want++ {
			n, left, err := s.CountInWindow(ctx, "commands:U1", time.Minute)
			if err != nil || n != want || left <= 0 || left > time.Minute {
				t.Fatalf("hit %d: n=%d left=%s err=%v", want, n, left, err)
			}
		}
		if d := ttl(s.rateKey("commands:U1")); d <= 0 || d > time.Minute {
			t.Fatalf("the counter's TTL is %s", d)
		}
		// A counter that somehow lost its expiry gets one back.
		s.rdb.Persist(ctx, s.rateKey("commands:U1"))
		if n, left, err := s.CountInWindow(ctx, "commands:U1", time.Minute); err != nil || n != 4 || left != time.Minute {
			t.Fatalf("after PERSIST: n=%d left=%s err=%v", n, left, err)
		}
		if d := ttl(s.rateKey("commands:U1")); d <= 0 {
			t.Fatalf("the counter has no TTL again: %s", d)
		}
		if n, _, _ := s.CountInWindow(ctx, "commands:U2", time.Minute); n != 1 {
			t.Fatalf("another user's count starts at %d", n)
		}
	})
}

func TestLookupsAreCachedForTheirTTLAndForgotten(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		if _, err := s.CachedLookup(ctx, "list:x"); !errors.Is(err, approval.ErrNotFound) {
			t.Fatalf("miss: %v", err)
		}
		if err := s.CacheLookup(ctx, "list:x", []byte(`[]`), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.CacheLookup(ctx, "get:x/a", []byte(`{}`), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if b, err := s.CachedLookup(ctx, "list:x"); err != nil || string(b) != "[]" {
			t.Fatalf("hit: %q %v", b, err)
		}
		if d := ttl(s.lookupKey("list:x")); d <= 0 || d > 30*time.Second {
			t.Fatalf("the entry's TTL is %s", d)
		}
		if err := s.ForgetLookups(ctx, "list:x", "get:x/a"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"list:x", "get:x/a"} {
			if _, err := s.CachedLookup(ctx, k); !errors.Is(err, approval.ErrNotFound) {
				t.Fatalf("%s after forget: %v", k, err)
			}
		}
	})
}

// TestTheLimitsStayInOneClusterSlot: on Redis Cluster every script and key of
// the limits is in the prefix's slot (a script over two slots fails).
func TestTheLimitsStayInOneClusterSlot(t *testing.T) {
	t.Parallel()
	r := redistest.AttachCluster(t, startCluster(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	req := pending("r00000000d001")
	if err := s.Create(ctx, req, approval.AuditEntry{To: approval.StatePending}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.PendingOf(ctx, req.Requester, 5); err != nil || len(ids) != 1 {
		t.Fatalf("PendingOf = %v, %v", ids, err)
	}
	unlock, ok, err := s.LockRequester(ctx, req.Requester, time.Minute)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	unlock()
	if _, _, err := s.CountInWindow(ctx, "commands:U1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.CacheLookup(ctx, "list:x", []byte("[]"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CachedLookup(ctx, "list:x"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetLookups(ctx, "list:x", "get:x/a"); err != nil {
		t.Fatal(err)
	}
	want, err := r.Client.ClusterKeySlot(ctx, r.Prefix).Result()
	if err != nil {
		t.Fatal(err)
	}
	for k := range r.Dump(t) {
		if slot, err := r.Client.ClusterKeySlot(ctx, k).Result(); err != nil || slot != want {
			t.Errorf("key %s in slot %d (%v), want %d", k, slot, err, want)
		}
	}
}
