package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

// Everything the store writes has a bound (see the README's "What credbot
// keeps in Redis, and for how long"): a request's record lives while the
// request does and Retention.Ended after it ends (apply.lua sets the TTL in
// the transition that ends it); a person's list of request ids is trimmed at
// each create (create.lua) and expires; done mint jobs are deleted. The rest
// has a TTL where it is written, or is one entry per live request.

const (
	// DefaultRetention is how long the record of a request that ended is
	// kept (CREDBOT_RETENTION's default).
	DefaultRetention = 400 * 24 * time.Hour
	// UserListMax is how many request ids a person's list keeps: the newest,
	// and every pending one (PendingOf counts them) however old.
	UserListMax = 200
)

// Retention bounds what the store keeps of requests.
type Retention struct {
	// Ended is how long the record of a request is kept once it reached a
	// final state (approval.State.Terminal): the transition that ends it
	// gives its hash this TTL. The audit trail keeps the history. A
	// DELIVERED request has not ended and never expires.
	Ended time.Duration
	// Lists is the TTL a person's list of request ids gets at each of their
	// requests' creation and end. It must be at least Ended (then the list
	// outlives every ended record in it) and the longest a request can live
	// (then it outlives every live one).
	Lists time.Duration
}

// SetRetention sets how long ended requests and the lists of request ids are
// kept (New's default: DefaultRetention for both). A zero Ended keeps the
// default; Lists is never shorter than Ended.
func (s *Store) SetRetention(r Retention) {
	if r.Ended <= 0 {
		r.Ended = DefaultRetention
	}
	r.Ended = max(r.Ended, time.Millisecond) // PEXPIRE 0 would delete at once
	r.Lists = max(r.Lists, r.Ended)
	s.keep = r
}

// TrimMintQueue removes the mint jobs that were done but never deleted —
// acknowledged before AckMintJob deleted them, or by a replica of such a
// version during a rolling upgrade — and returns how many. It removes only
// entries older than both the oldest job delivered but not acknowledged and
// the first not yet delivered, so no job is lost. The group's position is
// read before its pending jobs: an entry older than that position was
// delivered by then, and if it is not pending afterwards it was acknowledged.
func (s *Store) TrimMintQueue(ctx context.Context) (int64, error) {
	groups, err := s.rdb.XInfoGroups(ctx, s.mintKey()).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("trim the mint queue: %w", err)
	}
	last := ""
	for _, g := range groups {
		if g.Name == mintGroup {
			last = g.LastDeliveredID
		}
	}
	if last == "" || len(groups) != 1 {
		return 0, nil // no group (lost with the stream), or one credbot does not know
	}
	// The first entry not yet delivered, else whatever comes after the last.
	keep := nextID(last)
	if next, err := s.rdb.XRangeN(ctx, s.mintKey(), "("+last, "+", 1).Result(); err != nil {
		return 0, fmt.Errorf("trim the mint queue: %w", err)
	} else if len(next) == 1 {
		keep = next[0].ID
	}
	p, err := s.rdb.XPending(ctx, s.mintKey(), mintGroup).Result()
	if err != nil {
		return 0, fmt.Errorf("trim the mint queue: %w", err)
	}
	if p.Count > 0 && lessID(p.Lower, keep) {
		keep = p.Lower
	}
	n, err := s.rdb.XTrimMinID(ctx, s.mintKey(), keep).Result()
	if err != nil {
		return 0, fmt.Errorf("trim the mint queue: %w", err)
	}
	return n, nil
}

// lessID compares two stream ids ("ms-seq").
func lessID(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (ms, seq uint64) {
	m, q, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(q, 10, 64)
	return ms, seq
}

// nextID is the smallest stream id after id.
func nextID(id string) string {
	ms, seq := splitID(id)
	if seq == ^uint64(0) {
		return strconv.FormatUint(ms+1, 10) + "-0"
	}
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+1, 10)
}

// BoundOldKeys gives the keys that an earlier credbot kept without a TTL
// theirs: the record of every request that ended (Retention.Ended from now:
// when it ended is not known) and every person's list of request ids
// (Retention.Lists). It walks the deployment's keys once (SCAN, on the node
// that holds them) and returns how many it bounded; run it at start-up.
func (s *Store) BoundOldKeys(ctx context.Context) (int, error) {
	node := redis.Cmdable(s.rdb)
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, s.mintKey())
		if err != nil {
			return 0, err
		}
		node = m
	}
	n := 0
	for _, pattern := range []string{globEscape(s.prefix) + ":req:{*}", globEscape(s.prefix) + ":user:*:reqs"} {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			pipe := s.rdb.Pipeline()
			ttl := pipe.PTTL(ctx, key)
			typ := pipe.Type(ctx, key)
			state := pipe.HGet(ctx, key, "state")
			_, _ = pipe.Exec(ctx) // HGET fails on a zset: read each answer below
			if ttl.Val() != -1 {
				continue // has a TTL, or is gone
			}
			keep := time.Duration(0)
			switch typ.Val() {
			case "hash":
				st := approval.State(state.Val())
				if st.Terminal() {
					keep = s.keep.Ended // a final state never changes: no race
				}
				if st == approval.StateIssued || st == approval.StateDelivered {
					// A live credential of an earlier version: into its owner's index.
					if err := s.indexLive(ctx, key); err != nil {
						return n, err
					}
				}
			case "zset":
				keep = s.keep.Lists // as the next create or end would set it
			}
			if keep == 0 {
				continue
			}
			if err := s.rdb.PExpire(ctx, key, keep).Err(); err != nil {
				return n, fmt.Errorf("bound %s: %w", key, err)
			}
			n++
		}
		if err := iter.Err(); err != nil {
			return n, fmt.Errorf("scan %s: %w", pattern, err)
		}
	}
	return n, nil
}

// globEscape escapes what SCAN's MATCH would read as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// indexLiveScript puts a live credential into its owner's index, if it is
// still live: a transition that ended it meanwhile took it out for good.
var indexLiveScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'ISSUED' or st == 'DELIVERED' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0`)

// indexLive adds the request whose hash is key to its owner's index of live
// credentials (by when it was created: when it was issued is not kept).
func (s *Store) indexLive(ctx context.Context, key string) error {
	id := strings.TrimSuffix(strings.TrimPrefix(key, s.prefix+":req:{"), "}")
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil // gone meanwhile
	}
	if err := indexLiveScript.Run(ctx, s.rdb, []string{key, s.credsKey(r.Requester)}, id, r.CreatedAt.UnixMilli(), s.keep.Lists.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("index %s: %w", key, err)
	}
	return nil
}
