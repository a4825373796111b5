package store

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

// history writes a few transitions so that the audit stream has a chain.
func history(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"r0000000000a1", "r0000000000a2", "r0000000000a3"} {
		r := pending(id)
		if err := s.Create(ctx, r, approval.AuditEntry{RequestID: id, To: approval.StatePending, Actor: "U1"}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		next := *r
		next.State = approval.StateDenied
		if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{RequestID: id, From: approval.StatePending, To: approval.StateDenied, Actor: "U2"}, approval.Effects{ClearDeadline: true}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditChainVerifies(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rep, err := s.VerifyAudit(context.Background())
	if err != nil || len(rep.Problems) != 0 || rep.Entries != 6 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	var out bytes.Buffer
	n, err := s.ExportAudit(context.Background(), &out)
	if err != nil || n != 6 || strings.Count(out.String(), "\n") != 6 || !strings.Contains(out.String(), `"to":"DENIED"`) {
		t.Fatalf("export %d %v:\n%s", n, err, out.String())
	}
}

// rewrite replaces the stream with its entries passed through edit (nil drops).
func rewrite(t *testing.T, s *Store, edit func(i int, m redis.XMessage) *redis.XMessage) {
	t.Helper()
	ctx := context.Background()
	msgs, err := s.rdb.XRange(ctx, s.auditKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	s.rdb.Del(ctx, s.auditKey())
	for i, m := range msgs {
		if e := edit(i, m); e != nil {
			if err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), ID: e.ID, Values: e.Values}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestAuditDetectsEditedEntry(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		if i == 3 {
			m.Values["entry"] = strings.Replace(m.Values["entry"].(string), `"U2"`, `"U9"`, 1)
		}
		return &m
	})
	rep, _ := s.VerifyAudit(context.Background())
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "edited") {
		t.Fatalf("edit not detected: %+v", rep)
	}
}

func TestAuditDetectsDeletedEntry(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		if i == 2 {
			return nil
		}
		return &m
	})
	rep, _ := s.VerifyAudit(context.Background())
	if len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "removed") {
		t.Fatalf("deletion not detected: %+v", rep)
	}
}

func TestAuditDetectsTruncatedTail(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		if i == 5 {
			return nil
		}
		return &m
	})
	rep, _ := s.VerifyAudit(context.Background())
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "head") {
		t.Fatalf("truncation not detected: %+v", rep)
	}
}

func TestTransitionFailsClosedWhenAuditCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r0000000000f1")
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Make the audit key something XADD cannot append to.
	s.rdb.Del(ctx, s.auditKey())
	s.rdb.Set(ctx, s.auditKey(), "not a stream", 0)
	next := *r
	next.State = approval.StateApproved
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{EnqueueMint: true}); err == nil {
		t.Fatal("transition succeeded without its audit entry")
	}
	got, _ := s.Get(ctx, r.ID)
	if got.State != approval.StatePending || got.Version != 1 {
		t.Fatalf("state changed without audit: %+v", got)
	}
	if n, _ := s.rdb.XLen(ctx, s.mintKey()).Result(); n != 0 {
		t.Fatal("mint queued without audit")
	}
}
