package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Bounded storage: a request that ends keeps its record for the retention and
// nothing else; a person's list of ids is trimmed and expires; done mint jobs
// leave the stream.

func TestAnEndedRequestExpiresAfterTheRetentionAndADeliveredOneNever(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		s.SetRetention(Retention{Ended: 30 * 24 * time.Hour, Lists: 100 * 24 * time.Hour})
		denied, delivered := pending("r0000000000e1"), pending("r0000000000e2")
		for _, r := range []*approval.Request{denied, delivered} {
			if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if d := ttl(s.userKey("U1")); d < 99*24*time.Hour || d > 100*24*time.Hour {
			t.Fatalf("the requester's list has TTL %s after a create, want 100 days", d)
		}
		// The service always clears the deadline and releases the name when a
		// request ends; the store does it even when an effect is forgotten.
		next := *denied
		next.State = approval.StateDenied
		if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{}); err != nil {
			t.Fatal(err)
		}
		if d := ttl(s.reqKey(denied.ID)); d < 29*24*time.Hour || d > 30*24*time.Hour {
			t.Fatalf("the denied request's record has TTL %s, want the retention (30 days)", d)
		}
		if _, err := s.NameHolder(ctx, denied.Scope, denied.Name); !errors.Is(err, approval.ErrNotFound) {
			t.Fatalf("an ended request still holds its name: %v", err)
		}
		if _, err := s.rdb.ZScore(ctx, s.deadlineKey(), denied.ID).Result(); !errors.Is(err, redis.Nil) {
			t.Fatal("an ended request kept its deadline")
		}

		// APPROVED → ISSUED → DELIVERED: live, no TTL at any step.
		r := *delivered
		for i, st := range []approval.State{approval.StateApproved, approval.StateMinting, approval.StateIssued} {
			from := r.State
			r.State = st
			fx := approval.Effects{}
			if st == approval.StateIssued {
				fx = approval.Effects{SealedSecret: []byte("sealed"), SecretTTL: time.Minute}
			}
			if err := s.Apply(ctx, &r, from, int64(i+1), approval.AuditEntry{}, fx); err != nil {
				t.Fatal(err)
			}
		}
		r.State = approval.StateDelivered
		if _, err := s.Take(ctx, &r, 4, approval.AuditEntry{}, time.Now().Add(90*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if d := ttl(s.reqKey(delivered.ID)); d > 0 {
			t.Fatalf("a DELIVERED request's record has TTL %s: it must live until deleted", d)
		}
		if id, err := s.NameHolder(ctx, delivered.Scope, delivered.Name); err != nil || id != delivered.ID {
			t.Fatalf("a delivered credential's name is not held: %q, %v", id, err)
		}
		deleted := r
		deleted.State = approval.StateDeleted
		if err := s.Apply(ctx, &deleted, approval.StateDelivered, 5, approval.AuditEntry{}, approval.Effects{ClearDeadline: true, ReleaseName: true}); err != nil {
			t.Fatal(err)
		}
		if d := ttl(s.reqKey(delivered.ID)); d < 29*24*time.Hour || d > 30*24*time.Hour {
			t.Fatalf("the deleted request's record has TTL %s, want 30 days", d)
		}
	})
}

func TestAnExpiredRecordBreaksNothing(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	s.SetRetention(Retention{Ended: 100 * time.Millisecond, Lists: time.Hour})
	old, live := pending("r0000000000f1"), pending("r0000000000f2")
	for _, q := range []*approval.Request{old, live} {
		if err := s.Create(ctx, q, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	next := *old
	next.State = approval.StateCancelled
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{ClearDeadline: true, ReleaseName: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Client.Exists(ctx, s.reqKey(old.ID)).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled request's record did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Get(ctx, old.ID); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Get of an expired record: %v, want ErrNotFound", err)
	}
	// Its id is still in the requester's list: skipped.
	if l, err := s.ListByRequester(ctx, "U1", 10); err != nil || len(l) != 1 || l[0].ID != live.ID {
		t.Fatalf("list by requester = %v, %v; want only the live one", l, err)
	}
	if ids, err := s.PendingOf(ctx, "U1", 10); err != nil || len(ids) != 1 || ids[0] != live.ID {
		t.Fatalf("pending of = %v, %v", ids, err)
	}
	if due, err := s.DueDeadlines(ctx, time.Now().Add(2*time.Hour), 10); err != nil || len(due) != 1 || due[0].ID != live.ID {
		t.Fatalf("due = %v, %v; want only the live one", due, err)
	}
	// Its name can be asked for again, and so can its id (never reused in
	// practice: ids come from Slack triggers).
	again := pending("r0000000000f3")
	again.Name = old.Name
	if err := s.Create(ctx, again, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.VerifyAudit(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("the audit trail after a record expired: %+v, %v", rep, err)
	}
}

func TestARequestersListKeepsTheNewestAndEveryPendingOne(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ func(string) time.Duration) {
		ctx := context.Background()
		at := time.Now().Add(-time.Hour)
		var oldPending string
		for i := range UserListMax + 10 {
			r := pending(fmt.Sprintf("r%012x", 0xa000+i))
			r.CreatedAt = at.Add(time.Duration(i) * time.Second)
			if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				oldPending = r.ID // stays pending; every other one is denied
				continue
			}
			next := *r
			next.State = approval.StateDenied
			if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{ClearDeadline: true, ReleaseName: true}); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := s.rdb.ZRange(ctx, s.userKey("U1"), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != UserListMax+1 || ids[0] != oldPending {
			t.Fatalf("the list holds %d ids starting with %v, want %d: the old pending one and the %d newest",
				len(ids), ids[:min(len(ids), 2)], UserListMax+1, UserListMax)
		}
		if ids[1] != fmt.Sprintf("r%012x", 0xa000+10) {
			t.Fatalf("the oldest ended id kept is %s, want the 11th", ids[1])
		}
		if got, err := s.PendingOf(ctx, "U1", 5); err != nil || len(got) != 1 || got[0] != oldPending {
			t.Fatalf("pending of = %v, %v; the old pending request must still count", got, err)
		}
	})
}

func TestDoneMintJobsLeaveTheStream(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ func(string) time.Duration) {
		ctx := context.Background()
		// The history an earlier version left: jobs acknowledged but kept.
		add := func() string {
			return s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.mintKey(), Values: []any{"id", "r00000000000a"}}).Val()
		}
		var ids []string
		for range 5 {
			ids = append(ids, add())
		}
		jobs, err := s.ClaimMintJobs(ctx, "r1/mint-0", 10*time.Millisecond, time.Hour)
		if err != nil || len(jobs) != 5 {
			t.Fatalf("claimed %v, %v", jobs, err)
		}
		for _, j := range jobs {
			if j.StreamID != ids[1] { // the second stays delivered, not acknowledged
				if err := s.rdb.XAck(ctx, s.mintKey(), mintGroup, j.StreamID).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		undelivered := add()
		n, err := s.TrimMintQueue(ctx)
		if err != nil || n != 1 {
			t.Fatalf("trimmed %d (%v), want the one done job before the pending one", n, err)
		}
		left := func() []string {
			msgs, err := s.rdb.XRange(ctx, s.mintKey(), "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range msgs {
				out = append(out, m.ID)
			}
			return out
		}
		if got := left(); len(got) != 5 || got[0] != ids[1] || got[4] != undelivered {
			t.Fatalf("left %v, want the pending job and everything after it", got)
		}
		// Acknowledging through the store deletes the job; then the trim
		// removes the rest of the old history but not the undelivered job.
		if err := s.AckMintJob(ctx, approval.MintJob{StreamID: ids[1]}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TrimMintQueue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := left(); len(got) != 1 || got[0] != undelivered {
			t.Fatalf("left %v, want only the undelivered job %s", got, undelivered)
		}
		jobs, err = s.ClaimMintJobs(ctx, "r1/mint-0", 10*time.Millisecond, time.Hour)
		if err != nil || len(jobs) != 1 || jobs[0].StreamID != undelivered {
			t.Fatalf("claimed %v, %v; want the undelivered job", jobs, err)
		}
		if err := s.AckMintJob(ctx, jobs[0]); err != nil {
			t.Fatal(err)
		}
		if got := left(); len(got) != 0 {
			t.Fatalf("left %v after every job was done", got)
		}
		if n, err := s.TrimMintQueue(ctx); err != nil || n != 0 {
			t.Fatalf("trim of an empty queue: %d, %v", n, err)
		}
		if q, err := s.Queues(ctx); err != nil || q["mint"].Depth != 0 {
			t.Fatalf("queues = %+v, %v", q, err)
		}
	})
}

func TestKeysAnEarlierVersionKeptForeverGetTheirTTL(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		s.SetRetention(Retention{Ended: 30 * 24 * time.Hour, Lists: 100 * 24 * time.Hour})
		ended, live := pending("r0000000000b1"), pending("r0000000000b2")
		for _, r := range []*approval.Request{ended, live} {
			if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		next := *ended
		next.State = approval.StateExpired
		if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{ClearDeadline: true, ReleaseName: true}); err != nil {
			t.Fatal(err)
		}
		// As an earlier version left them: no TTL anywhere.
		for _, k := range []string{s.reqKey(ended.ID), s.reqKey(live.ID), s.userKey("U1")} {
			if err := s.rdb.Persist(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.BoundOldKeys(ctx)
		if err != nil || n != 2 {
			t.Fatalf("bounded %d keys (%v), want the ended record and the list", n, err)
		}
		if d := ttl(s.reqKey(ended.ID)); d < 29*24*time.Hour || d > 30*24*time.Hour {
			t.Errorf("the ended record's TTL is %s, want 30 days", d)
		}
		if d := ttl(s.userKey("U1")); d < 99*24*time.Hour || d > 100*24*time.Hour {
			t.Errorf("the list's TTL is %s, want 100 days", d)
		}
		if d := ttl(s.reqKey(live.ID)); d > 0 {
			t.Errorf("a live request's record got TTL %s", d)
		}
		if n, err := s.BoundOldKeys(ctx); err != nil || n != 0 {
			t.Fatalf("a second run bounded %d (%v), want none", n, err)
		}
	})
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f{g}`); got != `a\*b\?c\[d\]e\\f{g}` {
		t.Fatalf("globEscape = %s", got)
	}
}

// A person with thousands of pending requests (no pending limit set) must not
// make every create walk them all: a 20,000-command burst from one person
// slowed to 31 ms a create and stalled at 17,000. Each create looks at no
// more than 20 of the oldest ids, counted with Redis's own command stats.
func TestACreateLooksAtABoundedPartOfTheRequestersList(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), false) // its own stats
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	s, err := New(ctx, rdb, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	for i := range UserListMax + 300 {
		if err := s.Create(ctx, pending(fmt.Sprintf("r%012x", 0xb000+i)), approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, pending("r00000000ffff"), approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_zscore:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no zscore calls at all: %s", info)
	}
	if n, _ := strconv.Atoi(m[1]); n > 20 {
		t.Fatalf("one create made %d ZSCORE calls over %d pending requests, want at most 20", n, UserListMax+300)
	}
}

// TestLiveCredentialsAreIndexedFromIssueToEnd: a person's index of live
// credentials gets a request when it is issued, keeps it while delivered,
// loses it when it ends, has a TTL, and is rebuilt at start for credentials
// an earlier version issued.
func TestLiveCredentialsAreIndexedFromIssueToEnd(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, ttl func(string) time.Duration) {
		ctx := context.Background()
		s.SetRetention(Retention{Ended: 30 * 24 * time.Hour, Lists: 100 * 24 * time.Hour})
		move := func(r *approval.Request, to approval.State) {
			t.Helper()
			from, v := r.State, r.Version
			r.State = to
			if err := s.Apply(ctx, r, from, v, approval.AuditEntry{}, approval.Effects{}); err != nil {
				t.Fatal(err)
			}
			r.Version++
		}
		var reqs []*approval.Request
		for i := range 3 {
			r := pending(fmt.Sprintf("r0000000000d%d", i))
			if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			move(r, approval.StateApproved)
			reqs = append(reqs, r)
		}
		live := func() []string {
			t.Helper()
			got, n, err := s.ListLive(ctx, "U1", 0, 10)
			if err != nil || int(n) != len(got) {
				t.Fatalf("ListLive: %d of %d, %v", len(got), n, err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			return ids
		}
		if got := live(); len(got) != 0 {
			t.Fatalf("approved, not issued: %v", got)
		}
		for _, r := range reqs {
			move(r, approval.StateIssued)
		}
		move(reqs[0], approval.StateDelivered)
		if got := live(); len(got) != 3 {
			t.Fatalf("three issued: %v", got)
		}
		if d := ttl(s.credsKey("U1")); d < 99*24*time.Hour || d > 100*24*time.Hour {
			t.Errorf("the index's TTL is %s, want the lists' 100 days", d)
		}
		if page, n, err := s.ListLive(ctx, "U1", 2, 2); err != nil || n != 3 || len(page) != 1 {
			t.Errorf("the last page: %d of %d, %v", len(page), n, err)
		}
		move(reqs[1], approval.StateRevoked)
		if got := live(); len(got) != 2 || slices.Contains(got, reqs[1].ID) {
			t.Fatalf("after one ended: %v", got)
		}
		// As an earlier version left it: no index at all.
		if err := s.rdb.Del(ctx, s.credsKey("U1")).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BoundOldKeys(ctx); err != nil {
			t.Fatal(err)
		}
		if got := live(); len(got) != 2 || slices.Contains(got, reqs[1].ID) {
			t.Fatalf("rebuilt at start: %v", got)
		}
	})
}
