package store

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Writing the audit chain in batches.
//
// Every entry's MAC covers the MAC before it, so a process's writers cannot
// write at the same time: each must know the head the one before it wrote.
// Taking turns with one round trip each capped a replica at one entry per
// Redis round trip — on two busy cores about 1,000 a second, eight per
// request flow. Instead the writers queue their entries; one of them leads:
// it chains the whole queue against the head it knows (each entry expects the
// head the entry before it writes), sends the scripts in one pipeline, which
// Redis runs in order on one connection, and reads the outcomes in order.
//
//   - An entry written: the head moves on; its writer is told, and the sink
//     sees it, in sequence order.
//   - An entry its script refused before writing anything (CONFLICT, EXISTS,
//     …): its writer is told. The entries chained after it expected a head that
//     was never written; their scripts refuse them (AUDITHEAD) and they go back
//     to the front of the queue for the next round.
//   - An entry that lost the head to another replica (AUDITHEAD, AUDITTURN):
//     it is retried from the head the script reports; after a second loss it
//     claims the turn, as a single writer did before, so no replica starves.
//   - Any other error (the connection dropped): the script may or may not have
//     run; its writer gets the error, and the head is read again.
//
// A round is at most auditBatch entries. When its own entry is done the
// leader hands the lead to the next queued writer, so no writer leads for
// longer than its own entry takes.

// auditBatch bounds one round's pipeline.
const auditBatch = 64

// auditOp is a script that appends one audit entry (and whatever else it
// writes atomically with it).
type auditOp struct {
	script *redis.Script
	keys   []string
	args   []any // the script's ARGV before the chain's values (auditWrite.args)
	after  []any // ARGV after them, if any
	// read returns the entry's stream id from the reply (nil: the reply's text).
	read func(*redis.Cmd) (string, error)
}

type callState int

const (
	callQueued callState = iota
	callSent
	callDone
)

// auditCall is one writer's entry on its way through the queue.
type auditCall struct {
	entry string
	op    auditOp
	races int // times it lost the head to another replica

	// guarded by auditChain.qmu
	state callState
	lead  bool // this writer is to lead the next rounds
	err   error
	wake  chan struct{} // 1-buffered: done, or made the leader

	// set by the leader for the round in flight
	rec AuditRecord
	w   auditWrite
}

// appendAudit writes entry as the next one of the chain with op's script, and
// returns the script's refusal or error, if any. It returns only once the
// entry's outcome is known: a writer whose ctx ends while its entry is still
// queued takes it back; one already sent waits for the reply.
func (s *Store) appendAudit(ctx context.Context, entry string, op auditOp) error {
	c := &s.audit
	call := &auditCall{entry: entry, op: op, wake: make(chan struct{}, 1)}
	c.qmu.Lock()
	c.queue = append(c.queue, call)
	if !c.leading {
		c.leading, call.lead = true, true
	}
	c.qmu.Unlock()
	for {
		c.qmu.Lock()
		state, lead := call.state, call.lead
		c.qmu.Unlock()
		if state == callDone {
			return call.err
		}
		if lead {
			s.leadAudit(ctx, call)
			continue
		}
		select {
		case <-call.wake:
		case <-ctx.Done():
			c.qmu.Lock()
			if call.state == callQueued && !call.lead {
				c.queue = slices.DeleteFunc(c.queue, func(q *auditCall) bool { return q == call })
				c.qmu.Unlock()
				return ctx.Err()
			}
			c.qmu.Unlock()
			<-call.wake // sent, or made the leader: see it through
		}
	}
}

// leadAudit writes rounds of the queue until self's entry is done, then
// hands the lead to the first writer still queued, or gives it up.
func (s *Store) leadAudit(ctx context.Context, self *auditCall) {
	// Entries of other writers are in each round: the caller's deadline is
	// not theirs (go-redis's own timeouts bound each round).
	ctx = context.WithoutCancel(ctx)
	c := &s.audit
	c.mu.Lock()
	defer c.mu.Unlock()
	wait := 100 * time.Microsecond
	for {
		c.qmu.Lock()
		if self.state == callDone {
			self.lead = false
			if len(c.queue) > 0 {
				next := c.queue[0]
				next.lead = true
				signal(next.wake)
				c.qmu.Unlock()
				return
			}
			c.leading = false
			c.qmu.Unlock()
			if c.token != "" {
				// The turn this process claimed is not needed any more.
				_ = releaseTurnScript.Run(ctx, s.rdb, []string{s.auditTurnKey()}, c.token).Err()
				c.token = ""
			}
			return
		}
		n := min(len(c.queue), auditBatch)
		batch := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		for _, q := range batch {
			q.state = callSent
		}
		c.qmu.Unlock()

		retry, written, contended := s.auditRound(ctx, batch)

		c.qmu.Lock()
		for _, q := range retry {
			q.state = callQueued
		}
		c.queue = append(retry, c.queue...)
		c.qmu.Unlock()
		if written || !contended {
			wait = 100 * time.Microsecond
			continue
		}
		// Another replica has the turn: it writes within a round trip.
		time.Sleep(wait/2 + time.Duration(mrand.Int64N(int64(wait))))
		wait = min(2*wait, 5*time.Millisecond)
	}
}

// auditRound chains batch against the head, sends it in one pipeline and
// settles each entry (under c.mu). It returns the entries to send again, in
// order, whether any was written, and whether one waits for another replica's
// turn.
func (s *Store) auditRound(ctx context.Context, batch []*auditCall) (retry []*auditCall, written, contended bool) {
	c := &s.audit
	keys := s.auditKeysLocked()
	if !c.known {
		v, err := s.rdb.Get(ctx, s.auditHeadKey()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			err = fmt.Errorf("read the audit head: %w", err)
			for _, q := range batch {
				s.settle(q, err)
			}
			return nil, false, false
		}
		c.head, c.known = v, true
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	head := c.head
	for i, q := range batch {
		q.rec, q.w = chainEntry(keys, head, q.entry)
		if i == 0 {
			q.w.turn = c.token
		}
		args := make([]any, 0, len(q.op.args)+8+len(q.op.after))
		args = append(append(append(args, q.op.args...), q.w.args()...), q.op.after...)
		cmds[i] = q.op.script.EvalSha(ctx, pipe, q.op.keys, args...)
		head = q.w.head
	}
	_, _ = pipe.Exec(ctx) // each command holds its own outcome
	c.rounds.Add(1)

	for i, q := range batch {
		read := q.op.read
		if read == nil {
			read = func(c *redis.Cmd) (string, error) { return c.Text() }
		}
		id, err := read(cmds[i])
		var reply redis.Error
		switch {
		case err == nil:
			// A write also ends any turn this process held.
			c.head, c.token = q.w.head, ""
			q.rec.ID = id
			written = true
			if c.sink != nil {
				c.sink(q.rec)
			}
			s.settle(q, nil)
		case !errors.As(err, &reply) && !errors.Is(err, errNothingToTrim):
			// Not a reply of the script's: it may or may not have run.
			c.known = false
			s.settle(q, err)
		case q.w.expect != c.head:
			// Chained after an entry of this round that was not written.
			retry = append(retry, q)
		case strings.HasPrefix(err.Error(), "NOSCRIPT"):
			if lerr := q.op.script.Load(ctx, s.rdb).Err(); lerr != nil {
				s.settle(q, fmt.Errorf("load an audit script: %w", lerr))
				continue
			}
			retry = append(retry, q)
		case isAuditRace(err):
			// Another replica wrote first, or holds the turn.
			if moved, ok := strings.CutPrefix(err.Error(), "AUDITHEAD"); ok {
				// The script says where the head is; read it back from
				// Redis if what it says is not a head (Redis may have
				// mangled it).
				moved = strings.TrimPrefix(moved, " ")
				if _, _, ok := decodeHead(moved); ok {
					c.head = moved
				} else {
					c.known = false
				}
			} else {
				contended = true
			}
			if q.races++; q.races >= auditTries {
				s.settle(q, fmt.Errorf("audit: the chain head kept moving (%d tries)", auditTries))
				continue
			}
			if c.token == "" {
				c.token = newChainID() // the next loss claims the turn
			}
			retry = append(retry, q)
		default:
			// A refusal of the script's (CONFLICT, EXISTS, …) comes before
			// its first write: the head stayed where it was.
			s.settle(q, err)
		}
	}
	return retry, written, contended
}

// chainEntry is entry MAC'd as the one after head.
func chainEntry(keys *AuditKeys, head, entry string) (AuditRecord, auditWrite) {
	rec := AuditRecord{Entry: []byte(entry)}
	w := auditWrite{expect: head}
	if h, _, ok := decodeHead(head); ok {
		rec.Chain, rec.Seq, rec.Prev = h.Chain, h.Seq+1, h.MAC
	} else {
		// No head (a new trail, or one whose head was deleted or
		// overwritten): start a chain. The genesis marker is only written
		// if there is none, so a restart stays visible.
		rec.Chain, rec.Seq = newChainID(), 1
		w.genesis = encodeGenesis(keys, rec.Chain, time.Now())
	}
	rec.MAC = keys.entryMAC(rec.Chain, rec.Seq, rec.Prev, entry)
	w.seq, w.chain, w.prev, w.mac = strconv.FormatInt(rec.Seq, 10), rec.Chain, rec.Prev, rec.MAC
	w.head = encodeHead(keys, AuditHead{Chain: rec.Chain, Seq: rec.Seq, MAC: rec.MAC})
	return rec, w
}

// settle tells q's writer its outcome.
func (s *Store) settle(q *auditCall, err error) {
	s.audit.qmu.Lock()
	q.state, q.err = callDone, err
	s.audit.qmu.Unlock()
	signal(q.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
