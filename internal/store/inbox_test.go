package store

import (
	"context"
	"testing"
	"time"
)

func TestInboxRecordsOnceAndAWorkIsTakenOverFromADeadReplica(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if ok, err := s.Record(ctx, "slack:command:T1", time.Minute, []byte(`{"kind":"command"}`)); err != nil || !ok {
		t.Fatalf("first Record = %v, %v", ok, err)
	}
	if ok, err := s.Record(ctx, "slack:command:T1", time.Minute, []byte(`{"kind":"command"}`)); err != nil || ok {
		t.Fatalf("replayed Record = %v, %v; want a repeat, not stored", ok, err)
	}
	// A replica takes the entry and dies without finishing it.
	if err := s.Heartbeat(ctx, "dead", time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimInbox(ctx, "dead/inbox-0", 10*time.Millisecond)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	if err := s.Heartbeat(ctx, "live", time.Minute); err != nil {
		t.Fatal(err)
	}
	// While its lease holds, nobody else takes its entry.
	if again, err := s.ClaimInbox(ctx, "live/inbox-0", 10*time.Millisecond); err != nil || len(again) != 0 {
		t.Fatalf("a live replica's entry was taken: %v, %v", again, err)
	}
	if err := s.Resign(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	s.takeover = takeoverClock{} // do not wait for the next look
	taken, err := s.ClaimInbox(ctx, "live/inbox-0", 10*time.Millisecond)
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
