package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The inbox and the replica leases.
//
// Every Slack delivery that asks for work is recorded in the inbox stream
// before its ack, and worker pools on every replica consume it through one
// consumer group: at least once, so its handlers are idempotent. A processed
// entry is acknowledged and deleted, so the stream holds only work not done
// yet (capped at InboxMaxLen entries as a last resort).
//
// Each replica holds a liveness lease: a key with a short TTL that its
// heartbeat renews. Consumers are named "<replica>/<worker>", so the pending
// entries of a replica whose lease lapsed — the inbox's and the mint queue's —
// are claimed by a live replica within seconds, also by the dead one's own
// restarted successor (which has a new replica id).

var (
	//go:embed record.lua
	recordSrc    string
	recordScript = redis.NewScript(countInWindowLua + recordSrc) // record.lua counts with count_in_window
)

const (
	inboxGroup = "workers"
	// InboxMaxLen bounds the inbox. It only holds work not yet done, so in
	// practice it is tiny; the cap keeps a stuck deployment from filling Redis.
	InboxMaxLen = 100000
	// takeoverEvery is how often a replica looks for dead replicas' work.
	takeoverEvery = 2 * time.Second
)

func (s *Store) inboxKey() string               { return s.prefix + ":inbox" }
func (s *Store) aliveKey(replica string) string { return s.prefix + ":alive:" + replica }

// InboxEntry is one recorded delivery, claimed by a worker.
type InboxEntry struct {
	ID         string
	Payload    []byte
	Deliveries int64
}

// Quota counts a delivery against a fixed window that starts with its first
// hit: past Limit hits within Window, Record records nothing. A zero Limit
// counts nothing.
type Quota struct {
	Key    string // what is counted, e.g. "commands:<user>" (a rate key, as CountInWindow's)
	Limit  int64
	Window time.Duration
}

// Recorded is what Record did with a delivery.
type Recorded int

const (
	RecordedNew    Recorded = iota // stored in the inbox
	RecordedRepeat                 // seen within the dedupe window: nothing stored, not counted
	RecordedOver                   // past its quota: counted, nothing stored
)

// Record implements handlers.Inbox: it stores payload unless key was recorded
// within ttl, or q's window is full; one script, one round trip. For
// RecordedOver it also returns the time left in q's window. An empty key
// skips the dedupe.
func (s *Store) Record(ctx context.Context, key string, ttl time.Duration, payload []byte, q Quota) (Recorded, time.Duration, error) {
	// Keys not used are still keys of the deployment's (never written): on a
	// cluster every key must be in its slot.
	dk, dedupe := s.prefix+":once:", "0"
	if key != "" {
		dk, dedupe = s.prefix+":once:"+key, "1"
	}
	qk := s.rateKey("")
	if q.Limit > 0 {
		if q.Key == "" || q.Window < time.Millisecond {
			return 0, 0, errors.New("record in the inbox: a quota needs a key and a window of at least 1ms")
		}
		qk = s.rateKey(q.Key)
	}
	vals, err := recordScript.Run(ctx, s.rdb, []string{dk, s.inboxKey(), qk},
		ttl.Milliseconds(), string(payload), InboxMaxLen, dedupe, max(q.Limit, 0), q.Window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("record in the inbox: %w", err)
	}
	if len(vals) != 2 {
		return 0, 0, fmt.Errorf("record in the inbox: unexpected answer %v", vals)
	}
	switch vals[0] {
	case 1:
		return RecordedNew, 0, nil
	case 0:
		return RecordedRepeat, 0, nil
	case -1:
		return RecordedOver, time.Duration(vals[1]) * time.Millisecond, nil
	}
	return 0, 0, fmt.Errorf("record in the inbox: unexpected answer %v", vals)
}

// InboxRead is how a worker reads the inbox (ClaimInbox).
type InboxRead struct {
	Block time.Duration // how long to wait for a new entry
	// Done, unless empty, is the entry the worker finished last: it is
	// acknowledged and deleted in the round trip of the read.
	Done string
	// StuckAfter, unless 0, is how long an entry may stay with a live
	// worker: one held longer is taken from it. A worker holds an entry it
	// never got (the read's answer was lost on the way) until its replica
	// stops; this is how such an entry is still done.
	StuckAfter time.Duration
}

// ClaimInbox implements handlers.Inbox: first entries whose replica died,
// then entries stuck with a live worker for r.StuckAfter (both looked for at
// most every takeoverEvery), then new ones, blocking up to r.Block.
func (s *Store) ClaimInbox(ctx context.Context, consumer string, r InboxRead) ([]InboxEntry, error) {
	msgs, err := s.takeOver(ctx, s.inboxKey(), inboxGroup, consumer)
	if err == nil && len(msgs) == 0 && r.StuckAfter > 0 && s.takeover.due(s.inboxKey()+" stuck") {
		msgs, _, err = s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.inboxKey(), Group: inboxGroup, Consumer: consumer, MinIdle: r.StuckAfter, Start: "0-0", Count: 10,
		}).Result()
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "NOGROUP"):
			err = s.ensureGroups(ctx) // Redis lost the stream: nothing is stuck
		case err != nil:
			err = fmt.Errorf("take stuck entries of the inbox: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	claimed := len(msgs) > 0
	if claimed && r.Done != "" {
		err = s.DoneInbox(ctx, r.Done)
	} else if !claimed {
		msgs, err = s.readNew(ctx, s.inboxKey(), inboxGroup, consumer, 1, r.Block, r.Done)
	}
	if err != nil {
		return nil, err
	}
	out := make([]InboxEntry, 0, len(msgs))
	for _, m := range msgs {
		job, _ := m.Values["job"].(string)
		e := InboxEntry{ID: m.ID, Payload: []byte(job), Deliveries: 1}
		if claimed {
			e.Deliveries = 2
		}
		out = append(out, e)
	}
	return out, nil
}

// readNew reads entries never delivered to group, blocking up to block. A
// missing group (Redis restarted without persistence) is made again. done,
// unless empty, is an entry of stream to acknowledge and delete first, in
// the same round trip: a pipeline, not a transaction, as a blocking read
// cannot block inside MULTI.
func (s *Store) readNew(ctx context.Context, stream, group, consumer string, count int64, block time.Duration, done string) ([]redis.XMessage, error) {
	args := &redis.XReadGroupArgs{Group: group, Consumer: consumer, Streams: []string{stream, ">"}, Count: count, Block: block}
	if done != "" && !s.pipelineWaits(block) {
		if err := s.forget(ctx, stream, group, done); err != nil {
			return nil, fmt.Errorf("mark %s done in %s: %w", done, stream, err)
		}
		done = ""
	}
	var read *redis.XStreamSliceCmd
	if done == "" {
		read = s.rdb.XReadGroup(ctx, args)
	} else {
		pipe := s.rdb.Pipeline()
		ack, del := pipe.XAck(ctx, stream, group, done), pipe.XDel(ctx, stream, done)
		read = pipe.XReadGroup(ctx, args)
		_, _ = pipe.Exec(ctx) // each command's error is its own
		if err := errors.Join(ack.Err(), del.Err()); err != nil {
			return nil, fmt.Errorf("mark %s done in %s: %w", done, stream, err)
		}
	}
	streams, err := read.Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			return nil, s.ensureGroups(ctx)
		}
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	var out []redis.XMessage
	for _, st := range streams {
		out = append(out, st.Messages...)
	}
	return out, nil
}

// pipelineWaits reports whether a pipeline whose last command blocks up to
// block gets its answers within the client's read timeout: a lone blocking
// command is given its block and more, a pipeline only the read timeout.
func (s *Store) pipelineWaits(block time.Duration) bool {
	return s.readTimeout == 0 || s.readTimeout > block+time.Second
}

// DoneInbox implements handlers.Inbox: the entry is acknowledged and deleted.
func (s *Store) DoneInbox(ctx context.Context, id string) error {
	return s.forget(ctx, s.inboxKey(), inboxGroup, id)
}

// forget acknowledges and deletes an entry of stream, in one step.
func (s *Store) forget(ctx context.Context, stream, group, id string) error {
	pipe := s.rdb.TxPipeline()
	pipe.XAck(ctx, stream, group, id)
	pipe.XDel(ctx, stream, id)
	_, err := pipe.Exec(ctx)
	return err
}

// Heartbeat renews this replica's liveness lease for ttl.
func (s *Store) Heartbeat(ctx context.Context, replica string, ttl time.Duration) error {
	return s.rdb.Set(ctx, s.aliveKey(replica), time.Now().UTC().Format(time.RFC3339), ttl).Err()
}

// Resign ends this replica's lease at once (after a drain), so that whatever
// it hands back is taken over without waiting for the lease to lapse.
func (s *Store) Resign(ctx context.Context, replica string) error {
	return s.rdb.Del(ctx, s.aliveKey(replica)).Err()
}

// Alive reports whether a replica's lease is current.
func (s *Store) Alive(ctx context.Context, replica string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.aliveKey(replica)).Result()
	return n == 1, err
}

// ReplicaOf is the replica a consumer name belongs to.
func ReplicaOf(consumer string) string {
	if i := strings.LastIndexByte(consumer, '/'); i >= 0 {
		return consumer[:i]
	}
	return consumer
}

// takeoverClock throttles the look for dead replicas' work per stream.
type takeoverClock struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (t *takeoverClock) due(stream string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	if time.Since(t.last[stream]) < takeoverEvery {
		return false
	}
	t.last[stream] = time.Now()
	return true
}

// takeOver claims, for consumer, the pending entries of every consumer of
// group whose replica's lease lapsed, and forgets such consumers once they
// hold nothing. It looks at most every takeoverEvery per stream.
func (s *Store) takeOver(ctx context.Context, stream, group, consumer string) ([]redis.XMessage, error) {
	if !s.takeover.due(stream) {
		return nil, nil
	}
	consumers, err := s.rdb.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key") {
			return nil, s.ensureGroups(ctx)
		}
		return nil, fmt.Errorf("list consumers of %s: %w", stream, err)
	}
	self := ReplicaOf(consumer)
	var out []redis.XMessage
	for _, c := range consumers {
		replica := ReplicaOf(c.Name)
		if replica == self {
			continue
		}
		alive, err := s.Alive(ctx, replica)
		if err != nil {
			return out, err
		}
		if alive {
			continue
		}
		if c.Pending > 0 {
			pend, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: stream, Group: group, Consumer: c.Name, Start: "-", End: "+", Count: 100,
			}).Result()
			if err != nil {
				return out, fmt.Errorf("pending of dead consumer %s: %w", c.Name, err)
			}
			ids := make([]string, 0, len(pend))
			for _, p := range pend {
				ids = append(ids, p.ID)
			}
			if len(ids) > 0 {
				msgs, err := s.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: group, Consumer: consumer, MinIdle: 0, Messages: ids}).Result()
				if err != nil {
					return out, fmt.Errorf("take over from %s: %w", c.Name, err)
				}
				out = append(out, msgs...)
			}
			if int64(len(pend)) < c.Pending {
				continue // more next time; keep the consumer until it is empty
			}
		}
		if err := s.rdb.XGroupDelConsumer(ctx, stream, group, c.Name).Err(); err != nil {
			return out, fmt.Errorf("forget dead consumer %s: %w", c.Name, err)
		}
	}
	return out, nil
}

// Writable proves Redis takes writes (a replica's read-only copy, a full
// memory, a wrong password all fail here), for readiness.
func (s *Store) Writable(ctx context.Context, replica string) error {
	return s.rdb.Set(ctx, s.prefix+":health:"+replica, "1", time.Minute).Err()
}

// AOF reports whether Redis appends every write to its log: without it a
// restart loses what was acknowledged since the last snapshot.
func (s *Store) AOF(ctx context.Context) (bool, error) {
	node := redis.Cmdable(s.rdb)
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		// On a cluster, the primary that holds credbot's slot is the one whose
		// persistence matters.
		m, err := cc.MasterForKey(ctx, s.inboxKey())
		if err != nil {
			return false, err
		}
		node = m
	}
	info, err := node.Info(ctx, "persistence").Result()
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
			return v == "1", nil
		}
	}
	return false, errors.New("INFO persistence did not say whether AOF is on")
}

// QueueStats are a queue's depth (entries not yet done) and the age of its
// oldest one, for metrics.
type QueueStats struct {
	Depth  int64
	Oldest time.Duration
}

// Queues reports the inbox and the mint queue. Both hold only work not done
// (done entries are deleted), and a queue's depth is what its consumer group
// has not acknowledged, counting entries not yet delivered; when Redis cannot
// tell how many are undelivered (a deletion ahead of the group's position),
// the stream's length.
func (s *Store) Queues(ctx context.Context) (map[string]QueueStats, error) {
	out := map[string]QueueStats{}
	now := time.Now()
	age := func(id string) time.Duration {
		ms, _, _ := strings.Cut(id, "-")
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return 0
		}
		return max(now.Sub(time.UnixMilli(n)), 0)
	}
	for _, q := range []struct{ name, stream, group string }{{"inbox", s.inboxKey(), inboxGroup}, {"mint", s.mintKey(), mintGroup}} {
		groups, err := s.rdb.XInfoGroups(ctx, q.stream).Result()
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q.name, err)
		}
		var st QueueStats
		for _, g := range groups {
			if g.Name != q.group {
				continue
			}
			st.Depth = g.Pending + g.Lag
			if g.Lag < 0 {
				if st.Depth, err = s.rdb.XLen(ctx, q.stream).Result(); err != nil {
					return nil, fmt.Errorf("queue %s: %w", q.name, err)
				}
			}
			oldest := ""
			if g.Pending > 0 {
				p, err := s.rdb.XPending(ctx, q.stream, q.group).Result()
				if err == nil {
					oldest = p.Lower
				}
			} else if g.Lag > 0 {
				msgs, err := s.rdb.XRangeN(ctx, q.stream, "("+g.LastDeliveredID, "+", 1).Result()
				if err == nil && len(msgs) == 1 {
					oldest = msgs[0].ID
				}
			}
			if oldest != "" {
				st.Oldest = age(oldest)
			}
		}
		out[q.name] = st
	}
	return out, nil
}

// PendingCount is how many requests wait for approval, for metrics.
func (s *Store) PendingCount(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.pendingKey()).Result()
}

// The last good policy: its files and content hash, so that a replica that
// starts while the mounted policy is broken serves it (policy.LastGood). One
// key, as large as the policy; overwritten by every policy that loads.
func (s *Store) policyKey() string { return s.prefix + ":policy:last-good" }

// SaveLastGoodPolicy implements policy.LastGood.
func (s *Store) SaveLastGoodPolicy(ctx context.Context, hash string, files map[string][]byte) error {
	b, err := json.Marshal(files) // []byte values as base64
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, s.policyKey(), "hash", hash, "files", b, "saved", time.Now().UTC().Format(time.RFC3339)).Err()
}

// LastGoodPolicy implements policy.LastGood.
func (s *Store) LastGoodPolicy(ctx context.Context) (string, map[string][]byte, error) {
	v, err := s.rdb.HMGet(ctx, s.policyKey(), "hash", "files").Result()
	if err != nil {
		return "", nil, err
	}
	hash, _ := v[0].(string)
	raw, _ := v[1].(string)
	if hash == "" || raw == "" {
		return "", nil, errors.New("no policy was ever kept in Redis")
	}
	var files map[string][]byte
	if err := json.Unmarshal([]byte(raw), &files); err != nil {
		return "", nil, fmt.Errorf("the kept policy does not decode: %w", err)
	}
	return hash, files, nil
}
