package store

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The audit trail is a Redis stream of entries, each MAC'd (HMAC-SHA-256,
// under AuditKeys that Redis never sees) over its chain id, its sequence
// number, the previous entry's MAC and the entry itself:
//
//	<prefix>:audit          the stream: seq, chain, prev, mac, entry (JSON)
//	<prefix>:audit:head     "v1 <chain> <seq> <mac> <head MAC>": the last entry
//	<prefix>:audit:genesis  "v1 <chain> <unix ms> <MAC>": when the chain began
//
// The MACs are computed here, in Go, because the key must not reach Redis: a
// writer reads the head, MACs its entry as the next one and hands entry, MAC
// and the head it expects to its transition's script, which compares and sets
// the head in the same atomic step as the transition (AUDITHEAD when another
// writer got there first; then the writer MACs again and retries). Writers in
// one process queue their entries and one of them sends the queue chained in
// one pipeline (auditbatch.go), so they do not race each other for the head;
// only replicas do. There the replica that just wrote hears of the
// new head first and would win the next race too, starving the others; so a
// writer that lost a race claims the turn (<prefix>:audit:turn, for at most
// 250 ms): until it has written, every other writer is told AUDITTURN and
// waits a little.
//
// A chain starts at sequence number 1, when no head is found, and writes the
// genesis marker unless one exists; the oldest entries are only ever removed
// by TrimAudit, through a checkpoint entry. See VerifyAudit for what that
// detects.

var (
	//go:embed trim.lua
	trimSrc    string
	trimScript = redis.NewScript(trimSrc)
)

// AuditRecord is one audit entry as stored: what ExportAudit writes, one JSON
// line each, and what OnAudit hands on.
type AuditRecord struct {
	ID    string          `json:"id"`              // stream entry id
	Seq   int64           `json:"seq,omitempty"`   // 1, 2, … within the chain
	Chain string          `json:"chain,omitempty"` // random id of the chain
	Prev  string          `json:"prev"`            // MAC of the entry before ("" for seq 1)
	MAC   string          `json:"mac,omitempty"`   // "<key id>:<hex HMAC-SHA-256>"
	Hash  string          `json:"hash,omitempty"`  // legacy (unkeyed SHA-1) entries only
	Entry json.RawMessage `json:"entry"`
}

// AuditHead names the last entry of a chain; its String form is what
// `bot audit verify` prints and takes back as --expect-head.
type AuditHead struct {
	Chain string
	Seq   int64
	MAC   string
}

func (h AuditHead) String() string {
	if h.Chain == "" {
		return ""
	}
	return h.Chain + "/" + strconv.FormatInt(h.Seq, 10) + "/" + h.MAC
}

// ParseAuditHead reads AuditHead.String's form: chain/seq/mac.
func ParseAuditHead(v string) (AuditHead, error) {
	parts := strings.Split(v, "/")
	if len(parts) != 3 {
		return AuditHead{}, fmt.Errorf("audit head %q is not chain/seq/mac", v)
	}
	seq, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || seq < 1 || !isHex(parts[0]) || !strings.Contains(parts[2], ":") {
		return AuditHead{}, fmt.Errorf("audit head %q is not chain/seq/mac", v)
	}
	return AuditHead{Chain: parts[0], Seq: seq, MAC: parts[2]}, nil
}

// auditChain is a store's side of the chain: its keys, the head it last saw,
// the turn it claimed, and the queue of entries waiting to be written
// (auditbatch.go).
type auditChain struct {
	mu    sync.Mutex // held by the one writer that leads (and by setters)
	keys  *AuditKeys
	sink  func(AuditRecord)
	head  string // the head's value in Redis as last seen
	known bool   // head is current as far as this process knows
	token string // the turn this process claims after losing a race ("" none)

	qmu     sync.Mutex // guards queue, leading and each queued call's state
	queue   []*auditCall
	leading bool
	rounds  atomic.Int64 // pipelines sent (tests)
}

// UseAuditKeys sets the keys that MAC the trail. A store without them MACs
// under a throw-away key, which only that store can verify (tests); the bot
// and its admin commands always set CREDBOT_AUDIT_KEY's.
func (s *Store) UseAuditKeys(k *AuditKeys) {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	s.audit.keys = k
}

// OnAudit has f called with every audit entry this store wrote, right after
// it was written, one at a time and in the order of the entries' sequence
// numbers (it is called under the lock that orders this store's writers).
// f must not block or call the store: it is on the path of every transition.
func (s *Store) OnAudit(f func(AuditRecord)) {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	s.audit.sink = f
}

func (s *Store) auditGenesisKey() string { return s.prefix + ":audit:genesis" }
func (s *Store) auditTurnKey() string    { return s.prefix + ":audit:turn" }

// auditKeysLocked returns the keys, making throw-away ones if none were set.
func (s *Store) auditKeysLocked() *AuditKeys {
	if s.audit.keys == nil {
		s.audit.keys = RandomAuditKeys()
	}
	return s.audit.keys
}

// auditWrite is one entry as a script appends it: the head it expects and
// the values it writes.
type auditWrite struct {
	expect, head, seq, chain, prev, mac, genesis, turn string
}

// args are the script's trailing ARGV, in the scripts' order.
func (w auditWrite) args() []any {
	return []any{w.expect, w.head, w.seq, w.chain, w.prev, w.mac, w.genesis, w.turn}
}

// auditTries bounds the retries of one entry when other replicas keep moving
// the head; in one process the writers' entries are chained in one queue and
// retry only behind an entry of theirs that was refused.
const auditTries = 500

// releaseTurnScript gives the turn up if the caller still holds it.
var releaseTurnScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// errNothingToTrim is how trim's run says its script wrote nothing.
var errNothingToTrim = errors.New("nothing to trim")

func isAuditRace(err error) bool {
	return strings.HasPrefix(err.Error(), "AUDITHEAD") || strings.HasPrefix(err.Error(), "AUDITTURN")
}

func newChainID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func encodeHead(k *AuditKeys, h AuditHead) string {
	seq := strconv.FormatInt(h.Seq, 10)
	return "v1 " + h.Chain + " " + seq + " " + h.MAC + " " + k.sign(labelHead, h.Chain, seq, h.MAC)
}

// decodeHead parses a head value; ok is false for anything else (no head, a
// legacy SHA-1 head, garbage).
func decodeHead(v string) (h AuditHead, headMAC string, ok bool) {
	f := strings.Split(v, " ")
	if len(f) != 5 || f[0] != "v1" || !isHex(f[1]) {
		return AuditHead{}, "", false
	}
	seq, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || seq < 1 {
		return AuditHead{}, "", false
	}
	return AuditHead{Chain: f[1], Seq: seq, MAC: f[3]}, f[4], true
}

func encodeGenesis(k *AuditKeys, chain string, at time.Time) string {
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	return "v1 " + chain + " " + ms + " " + k.sign(labelGenesis, chain, ms)
}

type genesis struct {
	chain string
	at    time.Time
	ms    string
	mac   string
}

func decodeGenesis(v string) (genesis, bool) {
	f := strings.Split(v, " ")
	if len(f) != 4 || f[0] != "v1" || !isHex(f[1]) {
		return genesis{}, false
	}
	ms, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return genesis{}, false
	}
	return genesis{chain: f[1], at: time.UnixMilli(ms).UTC(), ms: f[2], mac: f[3]}, true
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkpoint is the entry a trim writes: the entries through ThroughSeq
// (whose MAC was ThroughMAC) were removed on purpose.
type checkpoint struct {
	Checkpoint struct {
		ThroughSeq int64  `json:"through_seq"`
		ThroughMAC string `json:"through_mac"`
		ThroughID  string `json:"through_id"`
	} `json:"checkpoint"`
	Actor string    `json:"actor"`
	At    time.Time `json:"at"`
	Note  string    `json:"note"`
}

// AuditReport is what VerifyAudit found.
type AuditReport struct {
	Entries     int       // entries in the stream
	Legacy      int       // unkeyed entries from before the trail was MAC'd: not tamper-evident
	Checkpoints int       // trims recorded in the stream
	First       int64     // sequence number of the oldest keyed entry (1 until a trim)
	Head        AuditHead // the last entry: keep it outside Redis, pass it back as --expect-head
	Started     time.Time // when the chain began (its genesis marker), if known
	// Problems lists everything that shows tampering; empty means it verifies.
	Problems []string
}

// maxProblems bounds a report over a stream shuffled end to end.
const maxProblems = 200

// VerifyAudit checks the trail: every entry's MAC, that each follows the
// one before it (chain, sequence number, previous MAC), that the oldest entry
// is sequence number 1 or the first after a checkpoint, that the head (MAC'd
// too) names an entry that is there, and that the genesis marker names this
// chain. It reports an edited, inserted, deleted (the oldest and newest
// included) or reordered entry, a chain rebuilt under another key, and a
// stream deleted while its head or genesis marker remains.
//
// What it cannot see without more: a trail deleted with its head and genesis
// marker (a new one then verifies), or rolled back to an earlier copy of all
// three. VerifyAuditExpecting with a head kept outside Redis catches both.
func (s *Store) VerifyAudit(ctx context.Context) (AuditReport, error) {
	return s.VerifyAuditExpecting(ctx, "")
}

// VerifyAuditExpecting is VerifyAudit that also checks that the trail still
// holds expect (an AuditHead.String seen by an earlier verify): the same
// chain, reaching at least that far, with that MAC at that sequence number.
func (s *Store) VerifyAuditExpecting(ctx context.Context, expect string) (AuditReport, error) {
	var want AuditHead
	if expect != "" {
		var err error
		if want, err = ParseAuditHead(expect); err != nil {
			return AuditReport{}, err
		}
	}
	s.audit.mu.Lock()
	keys := s.auditKeysLocked()
	s.audit.mu.Unlock()

	// Head and genesis first: entries appended while the stream is read come
	// after the head read here, and are checked like any other.
	headVal, err := s.getOrEmpty(ctx, s.auditHeadKey())
	if err != nil {
		return AuditReport{}, err
	}
	genVal, err := s.getOrEmpty(ctx, s.auditGenesisKey())
	if err != nil {
		return AuditReport{}, err
	}

	v := verifier{keys: keys, want: want, checkpoints: map[string]string{}}
	v.head, _, _ = decodeHead(headVal)
	err = s.scanAudit(ctx, "-", func(m redis.XMessage) error {
		v.entry(m)
		return nil
	})
	if err != nil {
		return v.rep, err
	}
	v.finish(headVal, genVal)
	return v.rep, nil
}

type verifier struct {
	keys *AuditKeys
	want AuditHead
	rep  AuditReport
	more int // problems beyond maxProblems

	first, last *AuditRecord
	// checkpoints maps "<chain>/<through seq>" to the MAC of the last entry
	// that trim removed, for every checkpoint whose MAC verified.
	checkpoints map[string]string
	maxThrough  map[string]int64 // per chain
	breaks      []auditBreak     // forward gaps, excused by a checkpoint
	legacyPrev  string
	wantMAC     string    // the MAC seen at want.Seq in want.Chain
	head        AuditHead // as read before the stream
	headMAC     string    // the MAC seen at head.Seq in head.Chain
}

// auditBreak is an entry that does not follow the one before it because
// entries are missing before it: fine only if a checkpoint says they were
// trimmed.
type auditBreak struct {
	rec   AuditRecord
	after int64 // seq of the entry before it in the stream (0: none)
}

func (v *verifier) problem(format string, args ...any) {
	if len(v.rep.Problems) >= maxProblems {
		v.more++
		return
	}
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
}

func (v *verifier) entry(m redis.XMessage) {
	v.rep.Entries++
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	if _, keyed := m.Values["seq"]; !keyed {
		v.legacy(m.ID, str("prev"), str("hash"), str("entry"))
		return
	}
	seq, err := strconv.ParseInt(str("seq"), 10, 64)
	rec := AuditRecord{ID: m.ID, Seq: seq, Chain: str("chain"), Prev: str("prev"), MAC: str("mac"), Entry: json.RawMessage(str("entry"))}
	if err != nil || seq < 1 || !isHex(rec.Chain) || !json.Valid(rec.Entry) {
		v.problem("%s: not a credbot audit entry (seq %q): inserted or edited", m.ID, str("seq"))
		return
	}
	ok, err := v.keys.check(rec.MAC, labelEntry, rec.Chain, strconv.FormatInt(seq, 10), rec.Prev, string(rec.Entry))
	switch {
	case err != nil:
		v.problem("%s (seq %d): %v: written by someone else, or the key was rotated away", m.ID, seq, err)
	case !ok:
		v.problem("%s (seq %d): the MAC does not verify: the entry was edited, or written without the audit key", m.ID, seq)
	}
	prev := v.last
	switch {
	case prev == nil:
		v.first = &rec
		if seq == 1 && rec.Prev != "" {
			v.problem("%s (seq 1): the first entry of a chain names a previous entry", m.ID)
		} else if seq > 1 {
			v.breaks = append(v.breaks, auditBreak{rec: rec})
		}
	case rec.Chain != prev.Chain:
		v.problem("%s: a new chain %s starts here (seq %d) after seq %d of chain %s: the audit head was deleted or overwritten, and entries of the old chain after it may be missing",
			m.ID, rec.Chain, seq, prev.Seq, prev.Chain)
	case seq <= prev.Seq:
		v.problem("%s: seq %d comes after seq %d: entries were reordered or replayed", m.ID, seq, prev.Seq)
	case seq > prev.Seq+1:
		v.breaks = append(v.breaks, auditBreak{rec: rec, after: prev.Seq})
	case rec.Prev != prev.MAC:
		v.problem("%s (seq %d): does not follow the entry before it (its previous MAC differs): an entry was replaced", m.ID, seq)
	}
	if ok {
		var cp checkpoint
		if json.Unmarshal(rec.Entry, &cp) == nil && cp.Checkpoint.ThroughSeq > 0 {
			v.rep.Checkpoints++
			v.checkpoints[rec.Chain+"/"+strconv.FormatInt(cp.Checkpoint.ThroughSeq, 10)] = cp.Checkpoint.ThroughMAC
			if v.maxThrough == nil {
				v.maxThrough = map[string]int64{}
			}
			v.maxThrough[rec.Chain] = max(v.maxThrough[rec.Chain], cp.Checkpoint.ThroughSeq)
		}
	}
	if v.want.Chain == rec.Chain && v.want.Seq == seq {
		v.wantMAC = rec.MAC
	}
	if v.head.Chain == rec.Chain && v.head.Seq == seq {
		v.headMAC = rec.MAC
	}
	v.last = &rec
}

// legacy checks an entry of the unkeyed SHA-1 chain that earlier versions
// wrote; they may only come before the keyed trail.
func (v *verifier) legacy(id, prev, hash, entry string) {
	v.rep.Legacy++
	if v.last != nil {
		v.problem("%s: an unkeyed entry after the MAC'd trail began: inserted", id)
		return
	}
	if v.rep.Legacy > 1 && prev != v.legacyPrev {
		v.problem("%s: unkeyed entry does not follow the one before it: an entry was removed or inserted", id)
	}
	if sum := sha1.Sum([]byte(prev + "\n" + entry)); hex.EncodeToString(sum[:]) != hash {
		v.problem("%s: unkeyed entry does not match its hash: edited", id)
	}
	v.legacyPrev = hash
}

func (v *verifier) finish(headVal, genVal string) {
	// Gaps: only a checkpoint (an entry only the key holder can write) says
	// that entries were removed on purpose.
	for _, b := range v.breaks {
		missing := b.rec.Seq - 1
		mac, named := v.checkpoints[b.rec.Chain+"/"+strconv.FormatInt(missing, 10)]
		switch {
		case named && mac == b.rec.Prev:
		case !named && v.maxThrough[b.rec.Chain] >= b.rec.Seq:
			// A trim removed this entry too (it was read while the trim ran).
		case b.after == 0:
			v.problem("%s: the trail starts at seq %d, but no checkpoint says that the entries through seq %d were trimmed: the oldest entries were deleted",
				b.rec.ID, b.rec.Seq, missing)
		default:
			v.problem("%s: seq %d comes after seq %d: %d entries were deleted", b.rec.ID, b.rec.Seq, b.after, b.rec.Seq-b.after-1)
		}
	}
	if v.first != nil {
		v.rep.First = v.first.Seq
	}
	if v.last != nil {
		v.rep.Head = AuditHead{Chain: v.last.Chain, Seq: v.last.Seq, MAC: v.last.MAC}
	}

	// The head, read before the stream: it must name an entry the stream
	// holds (later entries are ones written since).
	switch h, hmac, ok := decodeHead(headVal); {
	case headVal == "" && v.last != nil:
		v.problem("the audit head is missing: it was deleted")
	case headVal == "":
	case !ok && v.last == nil && v.rep.Legacy > 0:
		if headVal != v.legacyPrev {
			v.problem("the unkeyed head is not the last entry's hash: entries were removed from the end")
		}
	case !ok:
		v.problem("the audit head %.40q is not a credbot audit head: overwritten", headVal)
	default:
		good, err := v.keys.check(hmac, labelHead, h.Chain, strconv.FormatInt(h.Seq, 10), h.MAC)
		if err != nil || !good {
			v.problem("the audit head (seq %d) does not verify: it was forged", h.Seq)
		}
		switch {
		case v.last == nil:
			v.problem("the audit head names seq %d of chain %s, but the stream holds no entry of it: the trail was deleted", h.Seq, h.Chain)
		case h.Chain != v.last.Chain:
			v.problem("the audit head names chain %s, but the stream ends with chain %s", h.Chain, v.last.Chain)
		case h.Seq > v.last.Seq:
			v.problem("the audit head names seq %d, but the last entry is seq %d: entries were deleted from the end", h.Seq, v.last.Seq)
		case v.headMAC != h.MAC && (v.first == nil || v.first.Seq <= h.Seq):
			v.problem("the audit head names seq %d, but the entry there is not the one it names: replaced or deleted", h.Seq)
		}
	}

	// The genesis marker, written with a chain's first entry and never
	// replaced, ties the trail to the chain it began with.
	switch g, ok := decodeGenesis(genVal); {
	case genVal == "":
		if v.last != nil {
			v.problem("the genesis marker is missing: it was deleted")
		}
	case !ok:
		v.problem("the genesis marker %.40q is not a credbot genesis marker: overwritten", genVal)
	default:
		if good, err := v.keys.check(g.mac, labelGenesis, g.chain, g.ms); err != nil || !good {
			v.problem("the genesis marker does not verify: it was forged")
		}
		v.rep.Started = g.at
		switch {
		case v.first == nil:
			v.problem("the genesis marker says a trail (chain %s) began at %s, but the stream holds none of it: the trail was deleted", g.chain, g.at.Format(time.RFC3339))
		case g.chain != v.first.Chain:
			v.problem("the genesis marker names chain %s, begun at %s, but the trail is chain %s: the trail was deleted and begun again", g.chain, g.at.Format(time.RFC3339), v.first.Chain)
		}
	}

	// A head kept outside Redis: the trail must be the same chain and reach
	// at least as far, with the same entry there if it is still kept.
	if w := v.want; w.Chain != "" {
		switch {
		case v.last == nil:
			v.problem("expected the trail to reach %s, but it is empty: it was deleted", w)
		case v.last.Chain != w.Chain:
			v.problem("expected chain %s, but the trail is chain %s: it was deleted and begun again", w.Chain, v.last.Chain)
		case v.last.Seq < w.Seq:
			v.problem("expected the trail to reach seq %d, but it ends at seq %d: it was rolled back", w.Seq, v.last.Seq)
		case v.wantMAC != "" && v.wantMAC != w.MAC:
			v.problem("seq %d has another MAC than expected: the trail was rewritten", w.Seq)
		case v.wantMAC == "" && (v.first == nil || v.first.Seq <= w.Seq):
			v.problem("seq %d, expected in the trail, is not there", w.Seq)
		}
	}
	if v.more > 0 {
		v.rep.Problems = append(v.rep.Problems, fmt.Sprintf("… and %d more", v.more))
	}
}

func (s *Store) getOrEmpty(ctx context.Context, key string) (string, error) {
	v, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// ExportAudit writes the whole audit trail as JSON lines (AuditRecord).
func (s *Store) ExportAudit(ctx context.Context, w io.Writer) (int, error) {
	return s.ExportAuditSince(ctx, w, "")
}

// streamID matches a Redis stream entry id.
var streamID = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?$`)

// ExportAuditSince writes the entries from since on as JSON lines: since is
// an RFC 3339 time (entries the stream recorded at or after it, by Redis's
// clock) or a stream entry id (entries after it: pass the last id you have);
// "" exports everything.
func (s *Store) ExportAuditSince(ctx context.Context, w io.Writer, since string) (int, error) {
	start := "-"
	if since != "" {
		if t, err := time.Parse(time.RFC3339, since); err == nil {
			if t.UnixMilli() > 0 {
				start = strconv.FormatInt(t.UnixMilli(), 10)
			}
		} else if streamID.MatchString(since) {
			start = "(" + since
		} else {
			return 0, fmt.Errorf("--since %q is neither an RFC 3339 time nor a stream entry id", since)
		}
	}
	n := 0
	enc := json.NewEncoder(w)
	err := s.scanAudit(ctx, start, func(m redis.XMessage) error {
		n++
		return enc.Encode(record(m))
	})
	return n, err
}

func record(m redis.XMessage) AuditRecord {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	r := AuditRecord{ID: m.ID, Chain: str("chain"), Prev: str("prev"), MAC: str("mac"), Hash: str("hash")}
	r.Seq, _ = strconv.ParseInt(str("seq"), 10, 64)
	if e := str("entry"); json.Valid([]byte(e)) {
		r.Entry = json.RawMessage(e)
	} else {
		b, _ := json.Marshal(e) // keep what is there, as a string
		r.Entry = b
	}
	return r
}

func (s *Store) scanAudit(ctx context.Context, start string, f func(redis.XMessage) error) error {
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.auditKey(), start, "+", 500).Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := f(m); err != nil {
				return err
			}
		}
		if len(msgs) < 500 {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// AuditTrim is what one TrimAudit did.
type AuditTrim struct {
	Checkpoints int   // checkpoint entries written (one per batch)
	ThroughSeq  int64 // the last entry removed
	Len         int64 // entries left
}

// trimBatch bounds the entries one checkpoint's script removes, so that a
// trim never blocks Redis for long.
const trimBatch = 10_000

// TrimAudit removes the oldest entries once the stream holds more than
// keep+slack of them, down to about keep (checkpoints count as entries), in
// batches of at most trimBatch. Each batch is one atomic step that first
// appends a checkpoint entry naming the last entry it removes (sequence
// number, MAC, stream id), then removes the entries before the first one
// kept: VerifyAudit accepts a trail that starts right after a checkpoint,
// and nothing else. The slack spares a checkpoint for every few entries.
func (s *Store) TrimAudit(ctx context.Context, keep, slack int64) (AuditTrim, error) {
	var out AuditTrim
	if keep < 2 {
		return out, fmt.Errorf("keep %d: at least 2 entries must be kept (one of them the checkpoint)", keep)
	}
	n, err := s.rdb.XLen(ctx, s.auditKey()).Result()
	out.Len = n
	if err != nil || n <= keep+max(slack, 0) {
		return out, err
	}
	// Batches enough for the entries there are now: writers that keep
	// adding entries meanwhile wait for the next trim.
	for batches := (n-keep)/trimBatch + 1; n > keep && batches > 0; batches-- {
		first, last, err := s.auditEnds(ctx)
		if err != nil || first == nil {
			return out, err
		}
		// Keep keep-1 entries: the checkpoint is the keep-th.
		target := min(seqOf(*last)-keep+2, seqOf(*first)+trimBatch)
		keepFrom, err := s.firstWithSeq(ctx, *first, *last, target)
		if err != nil || keepFrom == nil {
			return out, err
		}
		removed, err := s.rdb.XRevRangeN(ctx, s.auditKey(), "("+keepFrom.ID, "-", 1).Result()
		if err != nil || len(removed) == 0 {
			return out, err
		}
		var cp checkpoint
		cp.Checkpoint.ThroughSeq = seqOf(removed[0])
		cp.Checkpoint.ThroughMAC, _ = removed[0].Values["mac"].(string)
		cp.Checkpoint.ThroughID = removed[0].ID
		cp.Actor, cp.At, cp.Note = "credbot", time.Now().UTC(), "older entries removed by retention"
		if cp.Checkpoint.ThroughMAC == "" { // a legacy entry
			cp.Checkpoint.ThroughMAC, _ = removed[0].Values["hash"].(string)
		}
		entry, err := json.Marshal(cp)
		if err != nil {
			return out, err
		}
		err = s.appendAudit(ctx, string(entry), auditOp{
			script: trimScript,
			keys:   []string{s.auditKey(), s.auditHeadKey(), s.auditGenesisKey(), s.auditTurnKey()},
			args:   []any{keepFrom.ID, string(entry)},
			read: func(c *redis.Cmd) (string, error) {
				res, err := c.Text()
				if err == nil && res == "" {
					return "", errNothingToTrim
				}
				return res, err
			},
		})
		if errors.Is(err, errNothingToTrim) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("trim the audit trail: %w", err)
		}
		out.Checkpoints++
		out.ThroughSeq = cp.Checkpoint.ThroughSeq
		if n, err = s.rdb.XLen(ctx, s.auditKey()).Result(); err != nil {
			return out, err
		}
		out.Len = n
	}
	return out, nil
}

func (s *Store) auditEnds(ctx context.Context) (first, last *redis.XMessage, err error) {
	f, err := s.rdb.XRangeN(ctx, s.auditKey(), "-", "+", 1).Result()
	if err != nil || len(f) == 0 {
		return nil, nil, err
	}
	l, err := s.rdb.XRevRangeN(ctx, s.auditKey(), "+", "-", 1).Result()
	if err != nil || len(l) == 0 {
		return nil, nil, err
	}
	return &f[0], &l[0], nil
}

// seqOf is an entry's sequence number; 0 for legacy or malformed entries.
func seqOf(m redis.XMessage) int64 {
	s, _ := m.Values["seq"].(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func msOf(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// firstWithSeq finds the oldest entry whose sequence number is at least
// target, without reading the entries before it: sequence numbers grow with
// stream ids, so it bisects the ids' milliseconds (a few dozen one-entry
// reads), then walks the entries of that one millisecond. (In a stream whose
// sequence numbers do not grow — a chain begun again — it finds some entry;
// any boundary is safe, as the checkpoint names what was removed.)
func (s *Store) firstWithSeq(ctx context.Context, first, last redis.XMessage, target int64) (*redis.XMessage, error) {
	if seqOf(first) >= target {
		return &first, nil
	}
	at := func(ms int64) (*redis.XMessage, error) {
		m, err := s.rdb.XRangeN(ctx, s.auditKey(), strconv.FormatInt(ms, 10), "+", 1).Result()
		if err != nil || len(m) == 0 {
			return nil, err
		}
		return &m[0], nil
	}
	// The smallest ms in (lo, hi] whose first entry has seq ≥ target; hi+1
	// stands for "none".
	lo, hi := msOf(first.ID), msOf(last.ID)+1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		m, err := at(mid)
		if err != nil {
			return nil, err
		}
		if m == nil || seqOf(*m) >= target {
			hi = mid
		} else {
			lo = mid
		}
	}
	// Every entry before the boundary has ms ≤ lo; walk those of ms lo.
	start := strconv.FormatInt(lo, 10)
	for {
		msgs, err := s.rdb.XRangeN(ctx, s.auditKey(), start, "+", 200).Result()
		if err != nil {
			return nil, err
		}
		for i := range msgs {
			if seqOf(msgs[i]) >= target {
				return &msgs[i], nil
			}
		}
		if len(msgs) < 200 {
			return nil, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
