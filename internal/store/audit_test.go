package store

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

// Every attack here is what someone who can write to Redis, but does not
// hold CREDBOT_AUDIT_KEY, can do: raw commands on a real redis-server.

// history writes a few transitions so that the audit stream has a chain.
func history(t *testing.T, s *Store) {
	t.Helper()
	for _, id := range []string{"r0000000000a1", "r0000000000a2", "r0000000000a3"} {
		createAndDeny(t, s, id)
	}
}

func createAndDeny(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	r := pending(id)
	if err := s.Create(ctx, r, approval.AuditEntry{RequestID: id, To: approval.StatePending, Actor: "U1"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	next := *r
	next.State = approval.StateDenied
	if err := s.Apply(ctx, &next, approval.StatePending, 1, approval.AuditEntry{RequestID: id, From: approval.StatePending, To: approval.StateDenied, Actor: "U2"}, approval.Effects{ClearDeadline: true, ReleaseName: true}); err != nil {
		t.Fatal(err)
	}
}

// verify runs VerifyAudit and returns its problems in one string.
func verify(t *testing.T, s *Store, expect string) (AuditReport, string) {
	t.Helper()
	rep, err := s.VerifyAuditExpecting(context.Background(), expect)
	if err != nil {
		t.Fatal(err)
	}
	return rep, strings.Join(rep.Problems, "\n")
}

func mustVerify(t *testing.T, s *Store) AuditReport {
	t.Helper()
	rep, problems := verify(t, s, "")
	if problems != "" {
		t.Fatalf("a trail nobody touched does not verify:\n%s", problems)
	}
	return rep
}

// reported fails the test unless verify reports a problem that mentions want.
func reported(t *testing.T, s *Store, expect, want string) {
	t.Helper()
	_, problems := verify(t, s, expect)
	if !strings.Contains(problems, want) {
		t.Fatalf("verify does not report %q; it says:\n%s", want, problems)
	}
}

func TestAuditChainVerifies(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rep := mustVerify(t, s)
	if rep.Entries != 6 || rep.First != 1 || rep.Head.Seq != 6 || rep.Started.IsZero() {
		t.Fatalf("report %+v", rep)
	}
	var out bytes.Buffer
	n, err := s.ExportAudit(context.Background(), &out)
	if err != nil || n != 6 || strings.Count(out.String(), "\n") != 6 || !strings.Contains(out.String(), `"to":"DENIED"`) {
		t.Fatalf("export %d %v:\n%s", n, err, out.String())
	}
	var last AuditRecord
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[5]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Seq != 6 || last.MAC != rep.Head.MAC || last.Chain != rep.Head.Chain || !strings.HasPrefix(last.MAC, s.audit.keys.KeyID()+":") {
		t.Fatalf("last exported entry %+v, head %v", last, rep.Head)
	}
}

// rewrite replaces the stream with its entries passed through edit (nil
// drops), keeping their ids: DEL and XADD with explicit ids.
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

func auditIDs(t *testing.T, s *Store) []string {
	t.Helper()
	msgs, err := s.rdb.XRange(context.Background(), s.auditKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func TestAuditReportsAnEditedEntry(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		if i == 3 {
			m.Values["entry"] = strings.Replace(m.Values["entry"].(string), `"U2"`, `"U9"`, 1)
		}
		return &m
	})
	rep, problems := verify(t, s, "")
	if len(rep.Problems) != 1 || !strings.Contains(problems, "seq 4): the MAC does not verify: the entry was edited") {
		t.Fatalf("edit not reported:\n%s", problems)
	}
}

func TestAuditReportsADeletedEntry(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	r.Client.XDel(ctx, s.auditKey(), auditIDs(t, s)[2])
	reported(t, s, "", "seq 4 comes after seq 2: 1 entries were deleted")
}

func TestAuditReportsTheOldestEntryDeleted(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	ids := auditIDs(t, s)
	r.Client.XDel(ctx, s.auditKey(), ids[0])
	reported(t, s, "", "the trail starts at seq 2, but no checkpoint says that the entries through seq 1 were trimmed")
	r.Client.XDel(ctx, s.auditKey(), ids[1], ids[2])
	reported(t, s, "", "the trail starts at seq 4")
}

func TestAuditReportsTheNewestEntryDeleted(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	ids := auditIDs(t, s)
	r.Client.XDel(ctx, s.auditKey(), ids[5])
	reported(t, s, "", "the audit head names seq 6, but the last entry is seq 5: entries were deleted from the end")
	// Pointing the head at the entry before takes a MAC'd head: one made up
	// is reported, and so is a head copied from another seq.
	prev, _ := r.Client.XRange(ctx, s.auditKey(), ids[4], ids[4]).Result()
	chain, mac := prev[0].Values["chain"].(string), prev[0].Values["mac"].(string)
	r.Client.Set(ctx, s.auditHeadKey(), "v1 "+chain+" 5 "+mac+" "+mac, 0)
	reported(t, s, "", "the audit head (seq 5) does not verify: it was forged")
}

func TestAuditReportsAnInsertedEntry(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	msgs, err := r.Client.XRange(ctx, s.auditKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1]
	chain, prev := last.Values["chain"].(string), last.Values["mac"].(string)
	// Appended after the last entry, linked to it, with a made-up MAC under
	// credbot's key id.
	forged := s.audit.keys.KeyID() + ":" + strings.Repeat("ab", 32)
	r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), Values: []any{
		"entry", `{"request_id":"r0000000000a1","from":"PENDING","to":"APPROVED","actor":"U9"}`,
		"seq", "7", "chain", chain, "prev", prev, "mac", forged}})
	reported(t, s, "", "(seq 7): the MAC does not verify")
	// A copy of a genuine entry slipped in between two others: a replay.
	r.Client.Del(ctx, s.auditKey())
	for i, m := range msgs {
		r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), ID: m.ID, Values: m.Values})
		if i == 3 {
			ms, _, _ := strings.Cut(m.ID, "-")
			r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), ID: ms + "-999999", Values: msgs[1].Values})
		}
	}
	reported(t, s, "", "seq 2 comes after seq 4: entries were reordered or replayed")
}

func TestAuditReportsAnOverwrittenHeadOrGenesisMarker(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{"head", "genesis"} {
		t.Run(key, func(t *testing.T) {
			s, r := newStore(t)
			history(t, s)
			k := map[string]string{"head": s.auditHeadKey(), "genesis": s.auditGenesisKey()}[key]
			r.Client.Set(ctx, k, "garbage", 0)
			reported(t, s, "", map[string]string{"head": "is not a credbot audit head: overwritten", "genesis": "is not a credbot genesis marker: overwritten"}[key])
			r.Client.Del(ctx, k)
			reported(t, s, "", "is missing: it was deleted")
		})
	}
}

func TestAuditReportsReorderedEntries(t *testing.T) {
	s, _ := newStore(t)
	history(t, s)
	msgs, err := s.rdb.XRange(context.Background(), s.auditKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Entries 3 and 4 swap places (each under the other's id).
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		switch i {
		case 2:
			m.Values = msgs[3].Values
		case 3:
			m.Values = msgs[2].Values
		}
		return &m
	})
	reported(t, s, "", "seq 3 comes after seq 4: entries were reordered or replayed")
}

func TestAuditReportsTheStreamAndItsHeadDeleted(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	r.Client.Del(ctx, s.auditKey(), s.auditHeadKey())
	reported(t, s, "", "the genesis marker says a trail (chain")
	reported(t, s, "", "began at")
	// credbot carries on with a new chain; the genesis marker keeps saying
	// that it is not the first.
	createAndDeny(t, s, "r0000000000b1")
	reported(t, s, "", "but the trail is chain")
}

func TestAuditDeletingEverythingIsSeenOnlyAgainstAHeadKeptElsewhere(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	history(t, s)
	kept := mustVerify(t, s).Head.String()
	r.Client.Del(ctx, s.auditKey(), s.auditHeadKey(), s.auditGenesisKey())
	if rep, problems := verify(t, s, ""); problems != "" || rep.Entries != 0 {
		t.Fatalf("an empty Redis: %+v", rep)
	}
	reported(t, s, kept, "expected the trail to reach")
	createAndDeny(t, s, "r0000000000b1")
	mustVerify(t, s) // the documented limit: a new trail verifies on its own
	reported(t, s, kept, "it was deleted and begun again")
}

func TestAuditRollbackIsSeenOnlyAgainstAHeadKeptElsewhere(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	createAndDeny(t, s, "r0000000000x1")
	// The attacker keeps a copy of Redis as it is now…
	oldHead, _ := r.Client.Get(ctx, s.auditHeadKey()).Result()
	history(t, s)
	kept := mustVerify(t, s).Head.String()
	// …and later puts it back: the entries since, and the head.
	ids := auditIDs(t, s)
	r.Client.XDel(ctx, s.auditKey(), ids[2:]...)
	r.Client.Set(ctx, s.auditHeadKey(), oldHead, 0)
	mustVerify(t, s)
	reported(t, s, kept, "expected the trail to reach seq 8, but it ends at seq 2: it was rolled back")
}

func TestAuditReportsAChainRebuiltUnderAnotherKey(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		forgeID    bool
	}{
		{"own key id", "MAC'd under a key this verifier does not hold", false},
		{"credbot's key id", "the MAC does not verify", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, r := newStore(t)
			history(t, s)
			theirs := RandomAuditKeys()
			sign := func(label string, fields ...string) string {
				m := theirs.sign(label, fields...)
				if tc.forgeID {
					_, sum, _ := strings.Cut(m, ":")
					m = s.audit.keys.KeyID() + ":" + sum
				}
				return m
			}
			// Drop entry 3 and rebuild everything after it: seq, prev, MAC,
			// head and genesis marker.
			prev, seq, chain := "", int64(0), ""
			rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
				if i == 2 {
					return nil
				}
				seq++
				chain = m.Values["chain"].(string)
				e := m.Values["entry"].(string)
				mac := sign(labelEntry, chain, strconv.FormatInt(seq, 10), prev, e)
				m.Values["seq"], m.Values["prev"], m.Values["mac"] = strconv.FormatInt(seq, 10), prev, mac
				prev = mac
				return &m
			})
			sq := strconv.FormatInt(seq, 10)
			r.Client.Set(ctx, s.auditHeadKey(), "v1 "+chain+" "+sq+" "+prev+" "+sign(labelHead, chain, sq, prev), 0)
			r.Client.Set(ctx, s.auditGenesisKey(), "v1 "+chain+" 1 "+sign(labelGenesis, chain, "1"), 0)
			rep, problems := verify(t, s, "")
			if len(rep.Problems) < 7 || !strings.Contains(problems, tc.want) {
				t.Fatalf("rebuilt chain: %d problems:\n%s", len(rep.Problems), problems)
			}
		})
	}
}

func TestAuditTrimsThroughACheckpoint(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	for i := range 10 {
		createAndDeny(t, s, fmt.Sprintf("r00000000%04d", i))
	}
	tr, err := s.TrimAudit(ctx, 5, 0)
	if err != nil || tr.Checkpoints != 1 || tr.ThroughSeq != 16 || tr.Len != 5 {
		t.Fatalf("trim %+v %v", tr, err)
	}
	rep := mustVerify(t, s)
	if rep.First != 17 || rep.Checkpoints != 1 || rep.Head.Seq != 21 || rep.Entries != 5 {
		t.Fatalf("after the trim: %+v", rep)
	}
	// Within the slack, nothing happens.
	if tr, err := s.TrimAudit(ctx, 4, 2); err != nil || tr.Checkpoints != 0 {
		t.Fatalf("trim within the slack: %+v %v", tr, err)
	}
	// Trimming further is not deleting: the oldest entry past the checkpoint…
	ids := auditIDs(t, s)
	r.Client.XDel(ctx, s.auditKey(), ids[0])
	reported(t, s, "", "the trail starts at seq 18, but no checkpoint says that the entries through seq 17 were trimmed")
	// …nor is deleting the checkpoint itself.
	r.Client.XDel(ctx, s.auditKey(), ids[4])
	reported(t, s, "", "entries were deleted from the end")
}

func TestAuditTrimIsSafeAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	other, err := New(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	other.UseAuditKeys(s.auditKeysForTest())
	for i := range 20 {
		createAndDeny(t, s, fmt.Sprintf("r00000000%04d", i))
	}
	var wg sync.WaitGroup
	for _, st := range []*Store{s, other, s, other} {
		wg.Go(func() {
			if _, err := st.TrimAudit(ctx, 10, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() { createAndDeny(t, other, "r0000000000z1") })
	wg.Wait()
	rep := mustVerify(t, s)
	if rep.Entries > 16 {
		t.Fatalf("%d entries after trimming to 10: %+v", rep.Entries, rep)
	}
}

func (s *Store) auditKeysForTest() *AuditKeys {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.auditKeysLocked()
}

func TestAuditKeyRotates(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	old := RandomAuditKeys()
	s.UseAuditKeys(old)
	history(t, s)
	next := RandomAuditKeys()
	both, err := NewAuditKeys(next.keys[0].key, old.keys[0].key)
	if err != nil {
		t.Fatal(err)
	}
	s.UseAuditKeys(both)
	createAndDeny(t, s, "r0000000000b1")
	rep := mustVerify(t, s)
	if !strings.HasPrefix(rep.Head.MAC, next.KeyID()+":") {
		t.Fatalf("new entries are not MAC'd under the new key: %v", rep.Head)
	}
	// Without the old key, its entries cannot be vouched for.
	reader, _ := New(ctx, r.Client, r.Prefix)
	reader.UseAuditKeys(next)
	reported(t, reader, "", "MAC'd under a key this verifier does not hold: key id "+old.KeyID())
}

func TestParseAuditKey(t *testing.T) {
	k1, k2 := approval.NewRandomKey(), approval.NewRandomKey()
	k, err := ParseAuditKey(k1 + ", " + k2)
	if err != nil || len(k.keys) != 2 || len(k.KeyID()) != 8 {
		t.Fatalf("%v %v", k, err)
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ=", k1 + ",", k1 + ",c2hvcnQ="} {
		if _, err := ParseAuditKey(bad); !errors.Is(err, ErrAuditKey) {
			t.Errorf("ParseAuditKey(%q) = %v, want ErrAuditKey", bad, err)
		}
	}
}

func TestAuditWritersOnTwoReplicasShareOneChain(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	other, err := New(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	other.UseAuditKeys(s.auditKeysForTest())
	var wg sync.WaitGroup
	for i := range 40 {
		st := s
		if i%2 == 1 {
			st = other
		}
		wg.Go(func() { createAndDeny(t, st, fmt.Sprintf("r00000000%04d", i)) })
	}
	wg.Wait()
	rep := mustVerify(t, s)
	if rep.Entries != 80 || rep.Head.Seq != 80 {
		t.Fatalf("%+v", rep)
	}
}

// Under load, the replica that just wrote learns the new head first and so
// tends to win the next race too: the others must still get their turn.
func TestAuditWritersOnManyBusyReplicasAllGetTheirTurn(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	stores := []*Store{s}
	for range 3 {
		other, err := New(ctx, r.Client, r.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		other.UseAuditKeys(s.auditKeysForTest())
		stores = append(stores, other)
	}
	const n = 3000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("r%012d", i)
			req := pending(id)
			if err := stores[i%len(stores)].Create(ctx, req, approval.AuditEntry{RequestID: id, To: approval.StatePending}, time.Now().Add(time.Hour)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if rep := mustVerify(t, s); rep.Entries != n {
		t.Fatalf("%d entries, want %d", rep.Entries, n)
	}
}

func TestOnAuditGetsEveryEntryAsWritten(t *testing.T) {
	s, _ := newStore(t)
	var (
		mu  sync.Mutex
		got []AuditRecord
	)
	s.OnAudit(func(r AuditRecord) { mu.Lock(); got = append(got, r); mu.Unlock() })
	history(t, s)
	var out bytes.Buffer
	if _, err := s.ExportAudit(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	for _, r := range got {
		_ = enc.Encode(r)
	}
	if want.String() != out.String() {
		t.Fatalf("hook saw:\n%s\nexport:\n%s", want.String(), out.String())
	}
}

// TestOnAuditSeesConcurrentWritersInOrder: writers of one process take
// turns, and the hook (the SIEM's copy) gets their entries in sequence
// order, not in the order the writers happen to wake up.
func TestOnAuditSeesConcurrentWritersInOrder(t *testing.T) {
	s, _ := newStore(t)
	var (
		mu   sync.Mutex
		seqs []int64
	)
	s.OnAudit(func(r AuditRecord) { mu.Lock(); seqs = append(seqs, r.Seq); mu.Unlock() })
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 25 {
				if err := s.Note(context.Background(), approval.AuditEntry{RequestID: fmt.Sprintf("r%012d", w*100+i), Actor: "U1", Note: "concurrent"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seqs) != 16*25 {
		t.Fatalf("hook saw %d entries, want %d", len(seqs), 16*25)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("hook saw seq %d after %d", seqs[i], seqs[i-1])
		}
	}
}

func TestAuditExportSince(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	history(t, s)
	ids := auditIDs(t, s)
	var out bytes.Buffer
	if n, err := s.ExportAuditSince(ctx, &out, ids[3]); err != nil || n != 2 || strings.Contains(out.String(), ids[3]) || !strings.Contains(out.String(), ids[4]) {
		t.Fatalf("since id: %d %v\n%s", n, err, out.String())
	}
	out.Reset()
	if n, err := s.ExportAuditSince(ctx, &out, time.Now().Add(-time.Hour).Format(time.RFC3339)); err != nil || n != 6 {
		t.Fatalf("since an hour ago: %d %v", n, err)
	}
	if n, err := s.ExportAuditSince(ctx, &out, time.Now().Add(time.Hour).Format(time.RFC3339)); err != nil || n != 0 {
		t.Fatalf("since an hour ahead: %d %v", n, err)
	}
	for _, bad := range []string{"yesterday", "1-2-3", "+", "-"} {
		if _, err := s.ExportAuditSince(ctx, &out, bad); err == nil {
			t.Errorf("--since %q accepted", bad)
		}
	}
}

func TestAuditTrailWrittenBeforeMACsVerifiesAsLegacy(t *testing.T) {
	ctx := context.Background()
	s, r := newStore(t)
	// What earlier versions wrote: an unkeyed SHA-1 chain.
	prev := ""
	for _, e := range []string{`{"request_id":"old1"}`, `{"request_id":"old2"}`} {
		sum := sha1.Sum([]byte(prev + "\n" + e))
		h := hex.EncodeToString(sum[:])
		r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), Values: []any{"entry", e, "prev", prev, "hash", h}})
		prev = h
	}
	r.Client.Set(ctx, s.auditHeadKey(), prev, 0)
	if rep := mustVerify(t, s); rep.Legacy != 2 {
		t.Fatalf("%+v", rep)
	}
	history(t, s)
	rep := mustVerify(t, s)
	if rep.Legacy != 2 || rep.Entries != 8 || rep.First != 1 {
		t.Fatalf("%+v", rep)
	}
	rewrite(t, s, func(i int, m redis.XMessage) *redis.XMessage {
		if i == 0 {
			m.Values["entry"] = `{"request_id":"forged"}`
		}
		return &m
	})
	reported(t, s, "", "unkeyed entry does not match its hash")
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

func TestSubmitFailsClosedWhenAuditCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	s.rdb.Set(ctx, s.auditKey(), "not a stream", 0)
	r := pending("r0000000000f2")
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("request stored without its audit entry")
	}
	if _, err := s.NameHolder(ctx, r.Scope, r.Name); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("the name is held by a request that was never stored: %v", err)
	}
}

func TestRevealFailsClosedWhenAuditCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := pending("r0000000000f3")
	if err := s.Create(ctx, r, approval.AuditEntry{}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	issued := *r
	issued.State = approval.StateIssued
	if err := s.Apply(ctx, &issued, approval.StatePending, 1, approval.AuditEntry{}, approval.Effects{SealedSecret: []byte("sealed"), SecretTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s.rdb.Del(ctx, s.auditKey())
	s.rdb.Set(ctx, s.auditKey(), "not a stream", 0)
	delivered := issued
	delivered.State = approval.StateDelivered
	if _, err := s.Take(ctx, &delivered, 2, approval.AuditEntry{}, time.Time{}); err == nil {
		t.Fatal("revealed without its audit entry")
	}
	if v, err := s.rdb.Get(ctx, s.secretKey(r.ID)).Result(); err != nil || v != "sealed" {
		t.Fatalf("the sealed secret went without its audit entry: %q %v", v, err)
	}
}
