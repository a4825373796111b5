package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
)

func TestClusterPrefixIsOneHashTag(t *testing.T) {
	for _, c := range []struct{ prefix, want, tag string }{
		{"credbot", "{credbot}", "credbot"},
		{"{credbot}", "{credbot}", "credbot"},
		{"team-a:{credbot}", "team-a:{credbot}", "credbot"},
		{"a{b", "{a{b}", "a{b"},     // an unclosed brace would pair with the {id} of a key
		{"a{}b", "{a{}b}", "a{"},    // an empty tag hashes the whole key
		{"a}b{", "{a}b{}", "a"},     // whatever Redis makes of it, one tag
		{"x{y}{z}", "x{y}{z}", "y"}, // only the first {…} counts
	} {
		got, err := ClusterPrefix(c.prefix)
		if err != nil || got != c.want {
			t.Errorf("ClusterPrefix(%q) = %q, %v; want %q", c.prefix, got, err, c.want)
			continue
		}
		// Every key starts with the prefix, and ids, users and names may
		// hold braces of their own: the prefix's tag must win.
		for _, key := range []string{got + ":audit", got + ":req:{r0000000001}:secret", got + ":user:U}{1:reqs", got + ":cred:sub/{x}"} {
			if tag := hashTag(key); tag != c.tag {
				t.Errorf("%s hashes by %q, want %q", key, tag, c.tag)
			}
		}
	}
	if _, err := ClusterPrefix("}x"); err == nil {
		t.Error(`"}x" in braces is an empty tag; want an error`)
	}
}

func TestASingleServerKeepsTheKeyNamesItHad(t *testing.T) {
	r := redistest.New(t)
	s, err := New(context.Background(), r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix() != r.Prefix {
		t.Fatalf("prefix %q, want %q: a running deployment would lose its keys", s.Prefix(), r.Prefix)
	}
}

// startCluster starts a Redis Cluster for one test, or skips without redis-cli.
func startCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	c, err := redistest.StartCluster(t.TempDir())
	if errors.Is(err, redistest.ErrNoRedisCLI) {
		t.Skipf("no Redis Cluster to test against: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// TestEveryScriptAndKeyStaysInOneClusterSlot runs every store operation on a
// real Redis Cluster (a script given keys of two slots fails with CROSSSLOT)
// and then checks that every key it left is in the slot of its prefix.
func TestEveryScriptAndKeyStaysInOneClusterSlot(t *testing.T) {
	t.Parallel()
	r := redistest.AttachCluster(t, startCluster(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix() != "{"+r.Prefix+"}" {
		t.Fatalf("prefix %q, want {%s}", s.Prefix(), r.Prefix)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	now := time.Now()
	r1, r2 := pending("r00000000c001"), pending("r00000000c002")
	r2.Requester = "U{2}"
	must("create", s.Create(ctx, r1, approval.AuditEntry{To: approval.StatePending}, now.Add(-time.Second)))
	must("create", s.Create(ctx, r2, approval.AuditEntry{To: approval.StatePending}, now.Add(time.Hour)))
	if _, err := s.ListPending(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if l, err := s.ListByRequester(ctx, r2.Requester, 10); err != nil || len(l) != 1 {
		t.Fatalf("list by requester = %v, %v", l, err)
	}
	if id, err := s.NameHolder(ctx, r1.Scope, r1.Name); err != nil || id != r1.ID {
		t.Fatalf("name holder = %q, %v", id, err)
	}
	due, err := s.DueDeadlines(ctx, now, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due = %v, %v", due, err)
	}
	must("drop deadline", s.DropDeadline(ctx, due[0].ID, due[0].At))

	approved := *r1
	approved.State = approval.StateApproved
	must("approve", s.Apply(ctx, &approved, approval.StatePending, 1, approval.AuditEntry{To: approval.StateApproved},
		approval.Effects{EnqueueMint: true, Deadline: now.Add(time.Hour)}))
	jobs, err := s.ClaimMintJobs(ctx, "replica-1/mint-0", 10*time.Millisecond, time.Hour)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("mint jobs = %v, %v", jobs, err)
	}
	must("ack mint job", s.AckMintJob(ctx, jobs[0]))
	if _, err := s.TrimMintQueue(ctx); err != nil {
		t.Fatalf("trim the mint queue: %v", err)
	}
	issued := approved
	issued.State = approval.StateIssued
	must("issue", s.Apply(ctx, &issued, approval.StateApproved, 2, approval.AuditEntry{To: approval.StateIssued},
		approval.Effects{SealedSecret: []byte("sealed"), SecretTTL: time.Minute}))
	delivered := issued
	delivered.State = approval.StateDelivered
	if b, err := s.Take(ctx, &delivered, 3, approval.AuditEntry{To: approval.StateDelivered}, now.Add(time.Hour)); err != nil || string(b) != "sealed" {
		t.Fatalf("take = %q, %v", b, err)
	}
	deleted := delivered
	deleted.State = approval.StateDeleted
	must("delete", s.Apply(ctx, &deleted, approval.StateDelivered, 4, approval.AuditEntry{To: approval.StateDeleted},
		approval.Effects{DropSecret: true, ClearDeadline: true, ReleaseName: true}))

	for _, key := range []string{"slack:command:T1", "slack:command:T1", ""} {
		if _, _, err := s.Record(ctx, key, time.Minute, []byte(`{"kind":"command"}`), Quota{Key: "commands:U0ALICE", Limit: 100, Window: time.Minute}); err != nil {
			t.Fatalf("record %q: %v", key, err)
		}
	}
	must("heartbeat", s.Heartbeat(ctx, "replica-1", time.Minute))
	entries, err := s.ClaimInbox(ctx, "replica-1/inbox-0", InboxRead{Block: 10 * time.Millisecond, StuckAfter: time.Hour})
	if err != nil || len(entries) != 1 {
		t.Fatalf("inbox = %v, %v", entries, err)
	}
	// The next read forgets the entry done, in one pipeline on the slot's node.
	next, err := s.ClaimInbox(ctx, "replica-1/inbox-0", InboxRead{Block: 10 * time.Millisecond, Done: entries[0].ID})
	if err != nil || len(next) != 1 || next[0].ID == entries[0].ID {
		t.Fatalf("inbox after the first = %v, %v", next, err)
	}
	must("done", s.DoneInbox(ctx, next[0].ID))
	if _, err := s.Once(ctx, "event:Ev1", time.Minute); err != nil {
		t.Fatal(err)
	}
	rep, err := s.VerifyAudit(ctx)
	if err != nil || len(rep.Problems) > 0 || rep.Entries < 6 {
		t.Fatalf("audit = %+v, %v", rep, err)
	}

	want, err := r.Client.ClusterKeySlot(ctx, r.Prefix).Result()
	if err != nil {
		t.Fatal(err)
	}
	dump := r.Dump(t)
	if len(dump) < 8 {
		t.Fatalf("only %d keys found: %v", len(dump), dump)
	}
	for k := range dump {
		if !strings.HasPrefix(k, s.Prefix()+":") {
			t.Errorf("key %s is not under %s", k, s.Prefix())
		}
		if slot, err := r.Client.ClusterKeySlot(ctx, k).Result(); err != nil || slot != want {
			t.Errorf("key %s in slot %d (%v), want %d", k, slot, err, want)
		}
	}
}
