package store

import (
	"context"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestInboxRecordsOnceAndAWorkIsTakenOverFromADeadReplica(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if r, _, err := s.Record(ctx, "slack:command:T1", time.Minute, []byte(`{"kind":"command"}`), Quota{}); err != nil || r != RecordedNew {
		t.Fatalf("first Record = %v, %v", r, err)
	}
	if r, _, err := s.Record(ctx, "slack:command:T1", time.Minute, []byte(`{"kind":"command"}`), Quota{}); err != nil || r != RecordedRepeat {
		t.Fatalf("replayed Record = %v, %v; want a repeat, not stored", r, err)
	}
	// A replica takes the entry and dies without finishing it.
	if err := s.Heartbeat(ctx, "dead", time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimInbox(ctx, "dead/inbox-0", InboxRead{Block: 10 * time.Millisecond})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	if err := s.Heartbeat(ctx, "live", time.Minute); err != nil {
		t.Fatal(err)
	}
	// While its lease holds, nobody else takes its entry.
	if again, err := s.ClaimInbox(ctx, "live/inbox-0", InboxRead{Block: 10 * time.Millisecond}); err != nil || len(again) != 0 {
		t.Fatalf("a live replica's entry was taken: %v, %v", again, err)
	}
	if err := s.Resign(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	s.takeover = takeoverClock{} // do not wait for the next look
	taken, err := s.ClaimInbox(ctx, "live/inbox-0", InboxRead{Block: 10 * time.Millisecond})
	if err != nil || len(taken) != 1 || taken[0].ID != got[0].ID || taken[0].Deliveries < 2 {
		t.Fatalf("taken over = %+v, %v; want the dead replica's entry", taken, err)
	}
	if err := s.DoneInbox(ctx, taken[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.XLen(ctx, s.inboxKey()).Result(); n != 0 {
		t.Fatalf("%d entries left after done", n)
	}
	consumers, _ := s.rdb.XInfoConsumers(ctx, s.inboxKey(), inboxGroup).Result()
	for _, c := range consumers {
		if c.Name == "dead/inbox-0" {
			t.Fatal("the dead consumer is still in the group")
		}
	}
}

// The per-user command quota is counted in the same script as the record, so
// that an ack costs one round trip: a delivery past it is neither stored nor
// remembered as seen, and a repeat is not counted.
func TestRecordCountsTheQuotaInTheSameStep(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	q := Quota{Key: "commands:U0ALICE", Limit: 2, Window: time.Minute}
	rec := func(key string, q Quota) (Recorded, time.Duration) {
		t.Helper()
		r, left, err := s.Record(ctx, key, time.Minute, []byte(`{"kind":"command"}`), q)
		if err != nil {
			t.Fatal(err)
		}
		return r, left
	}
	if r, _ := rec("slack:command:T1", q); r != RecordedNew {
		t.Fatalf("first: %v", r)
	}
	// Slack delivering the same command again costs nothing.
	if r, _ := rec("slack:command:T1", q); r != RecordedRepeat {
		t.Fatalf("repeat: %v", r)
	}
	if r, _ := rec("slack:command:T2", q); r != RecordedNew {
		t.Fatalf("second: %v", r)
	}
	r, left := rec("slack:command:T3", q)
	if r != RecordedOver || left <= 50*time.Second || left > time.Minute {
		t.Fatalf("third: %v, %s left; want refused with most of the minute left", r, left)
	}
	if n, _ := s.rdb.XLen(ctx, s.inboxKey()).Result(); n != 2 {
		t.Fatalf("%d entries in the inbox, want the 2 within the quota", n)
	}
	// The refused delivery was not remembered: were the window over, the
	// same command would be taken.
	if n, _ := s.rdb.Exists(ctx, s.prefix+":once:slack:command:T3").Result(); n != 0 {
		t.Fatal("the refused delivery's replay key was written")
	}
	// The quota is the same counter as CountInWindow's, per key.
	if n, _, err := s.CountInWindow(ctx, "commands:U0ALICE", time.Minute); err != nil || n != 4 {
		t.Fatalf("CountInWindow after 3 counted deliveries = %d, %v; want 4", n, err)
	}
	if r, _ := rec("slack:command:T4", Quota{Key: "commands:U0BOB", Limit: 2, Window: time.Minute}); r != RecordedNew {
		t.Fatalf("another person's command: %v", r)
	}
	// Without a quota nothing is counted.
	if r, _ := rec("slack:action:A1", Quota{}); r != RecordedNew {
		t.Fatalf("a click: %v", r)
	}
	if _, _, err := s.Record(ctx, "k", time.Minute, nil, Quota{Limit: 1, Window: time.Minute}); err == nil {
		t.Fatal("a quota without a key was taken")
	}
	if ttl, _ := s.rdb.PTTL(ctx, s.rateKey("commands:U0BOB")).Result(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the quota's counter has TTL %s; every counter must expire", ttl)
	}
}

// A worker's next read forgets the entry it finished, in the same round trip:
// the entry leaves the stream and the group's pending list, and the read
// still blocks and returns what came.
func TestTheNextReadForgetsTheEntryDone(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, k := range []string{"slack:command:A", "slack:command:B"} {
		if r, _, err := s.Record(ctx, k, time.Minute, []byte(`{"kind":"command"}`), Quota{}); err != nil || r != RecordedNew {
			t.Fatalf("record %s = %v, %v", k, r, err)
		}
	}
	const consumer = "r/inbox-0"
	a, err := s.ClaimInbox(ctx, consumer, InboxRead{Block: 10 * time.Millisecond})
	if err != nil || len(a) != 1 {
		t.Fatalf("first claim = %v, %v", a, err)
	}
	b, err := s.ClaimInbox(ctx, consumer, InboxRead{Block: 10 * time.Millisecond, Done: a[0].ID})
	if err != nil || len(b) != 1 || b[0].ID == a[0].ID {
		t.Fatalf("second claim = %v, %v", b, err)
	}
	pending, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.inboxKey(), Group: inboxGroup, Start: "-", End: "+", Count: 10}).Result()
	if err != nil || len(pending) != 1 || pending[0].ID != b[0].ID {
		t.Fatalf("pending = %+v, %v; want only the entry not done yet", pending, err)
	}
	if n, _ := s.rdb.XLen(ctx, s.inboxKey()).Result(); n != 1 {
		t.Fatalf("%d entries in the stream, want 1", n)
	}
	// Nothing new: the read times out, and still forgets the entry done.
	if c, err := s.ClaimInbox(ctx, consumer, InboxRead{Block: 10 * time.Millisecond, Done: b[0].ID}); err != nil || len(c) != 0 {
		t.Fatalf("third claim = %v, %v", c, err)
	}
	if n, _ := s.rdb.XLen(ctx, s.inboxKey()).Result(); n != 0 {
		t.Fatalf("%d entries in the stream after both were done", n)
	}
}

// An entry a live worker holds without doing it — its read's answer was lost
// on the way, so it never saw the entry — is taken by another worker once it
// has been held for StuckAfter; before that, nobody takes it.
func TestAnEntryStuckWithALiveWorkerIsTakenAfterStuckAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, _ := newStore(t)
	if r, _, err := s.Record(ctx, "slack:command:LOST", time.Minute, []byte(`{"kind":"command"}`), Quota{}); err != nil || r != RecordedNew {
		t.Fatalf("record = %v, %v", r, err)
	}
	if err := s.Heartbeat(ctx, "live", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The read whose answer is lost: Redis delivered the entry to live/inbox-0.
	lost, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: inboxGroup, Consumer: "live/inbox-0", Streams: []string{s.inboxKey(), ">"}, Count: 1}).Result()
	if err != nil || len(lost) != 1 || len(lost[0].Messages) != 1 {
		t.Fatalf("read = %v, %v", lost, err)
	}
	id := lost[0].Messages[0].ID
	// Within StuckAfter it stays where it is.
	s.takeover = takeoverClock{}
	if got, err := s.ClaimInbox(ctx, "live/inbox-1", InboxRead{Block: time.Millisecond, StuckAfter: time.Hour}); err != nil || len(got) != 0 {
		t.Fatalf("claim within StuckAfter = %v, %v; want nothing", got, err)
	}
	// Held longer, it is taken: look again until Redis counts it idle for 1ms.
	for {
		s.takeover = takeoverClock{} // do not wait for the next look
		got, err := s.ClaimInbox(ctx, "live/inbox-1", InboxRead{Block: time.Millisecond, StuckAfter: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			if got[0].ID != id || got[0].Deliveries < 2 || string(got[0].Payload) != `{"kind":"command"}` {
				t.Fatalf("taken = %+v, want the stuck entry", got[0])
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the stuck entry was never taken")
		}
	}
}

// A pipeline reads its answers within the client's read timeout, where a
// lone blocking read gets its block and more. With a read timeout shorter
// than the worker's block, the next read still forgets the entry done and
// waits for new ones without an error.
func TestTheNextReadForgetsTheEntryDoneWithAShortReadTimeout(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.ReadTimeout = 100 * time.Millisecond
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(ctx, c, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Record(ctx, "slack:command:A", time.Minute, []byte(`{"kind":"command"}`), Quota{}); err != nil {
		t.Fatal(err)
	}
	a, err := s.ClaimInbox(ctx, "r/inbox-0", InboxRead{Block: 10 * time.Millisecond})
	if err != nil || len(a) != 1 {
		t.Fatalf("claim = %v, %v", a, err)
	}
	if got, err := s.ClaimInbox(ctx, "r/inbox-0", InboxRead{Block: 300 * time.Millisecond, Done: a[0].ID}); err != nil || len(got) != 0 {
		t.Fatalf("a read blocking past the client's read timeout = %v, %v; want nothing, and no error", got, err)
	}
	if n, _ := s.rdb.XLen(ctx, s.inboxKey()).Result(); n != 0 {
		t.Fatalf("%d entries in the stream; the one done was not forgotten", n)
	}
}
