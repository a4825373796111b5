package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

// The limits that keep one person from crowding out everyone else: a count
// of a requester's pending requests (and a short per-requester lock so that
// a burst of submissions cannot all pass the count at once), a fixed-window
// counter of commands per user, and a short-lived cache of BTP lookups.
// Every key here has a TTL.

var (
	// pendingOfScript returns up to ARGV[1] ids that are in both the
	// requester's set and the pending set, walking the smaller of the two
	// (ZINTERCARD would do, but needs Redis 7 and miniredis lacks it).
	// KEYS: 1 requester's zset, 2 pending zset.
	pendingOfScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local small, big = KEYS[1], KEYS[2]
if redis.call('ZCARD', KEYS[2]) < redis.call('ZCARD', KEYS[1]) then small, big = KEYS[2], KEYS[1] end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', small, 0, -1)) do
  if redis.call('ZSCORE', big, id) then
    out[#out + 1] = id
    if #out >= limit then break end
  end
end
return out`)
	// unlockScript deletes a lock only if it still holds the caller's token.
	unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	// countScript counts one more hit of KEYS[1] in a window of ARGV[1] ms
	// (countInWindowLua). Returns {count, ms left}.
	countScript = redis.NewScript(countInWindowLua + `
local n, left = count_in_window(KEYS[1], ARGV[1])
return {n, left}`)
)

// countInWindowLua defines count_in_window(key, window_ms), the one count of
// a fixed window that starts with its first hit, for every script that counts
// (countScript, record.lua): INCR and, for the first hit, PEXPIRE in the same
// step, so a counter can never be left without its expiry. It returns the
// count and the ms left in the window.
const countInWindowLua = `
local function count_in_window(key, window_ms)
  local n = redis.call('INCR', key)
  local left = redis.call('PTTL', key)
  if left < 0 then
    redis.call('PEXPIRE', key, window_ms)
    left = tonumber(window_ms)
  end
  return n, left
end
`

func (s *Store) submitLockKey(user string) string { return s.prefix + ":user:" + user + ":submitting" }
func (s *Store) rateKey(key string) string        { return s.prefix + ":rate:" + key }
func (s *Store) lookupKey(key string) string      { return s.prefix + ":lookup:" + key }

// PendingOf implements approval.Quotas.
func (s *Store) PendingOf(ctx context.Context, user string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	ids, err := pendingOfScript.Run(ctx, s.rdb, []string{s.userKey(user), s.pendingKey()}, limit).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("count pending requests of %s: %w", user, err)
	}
	return ids, nil
}

// LockRequester implements approval.Quotas: SET NX with a token of our own,
// so that an unlock after the lock lapsed frees nobody else's.
func (s *Store) LockRequester(ctx context.Context, user string, ttl time.Duration) (func(), bool, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token, key := hex.EncodeToString(b), s.submitLockKey(user)
	ok, err := s.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return nil, false, err
	}
	return func() {
		_ = unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{key}, token).Err()
	}, true, nil
}

// CountInWindow counts one hit of key in a fixed window that starts with its
// first hit, and returns the hits so far and the time left in the window.
// It implements handlers.Limiter.
func (s *Store) CountInWindow(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	vals, err := countScript.Run(ctx, s.rdb, []string{s.rateKey(key)}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("count %s: %w", key, err)
	}
	if len(vals) != 2 {
		return 0, 0, fmt.Errorf("count %s: unexpected answer %v", key, vals)
	}
	return vals[0], time.Duration(vals[1]) * time.Millisecond, nil
}

// CachedLookup implements approval.Quotas; a miss is approval.ErrNotFound.
func (s *Store) CachedLookup(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.lookupKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("lookup %s: %w", key, approval.ErrNotFound)
	}
	return b, err
}

// CacheLookup implements approval.Quotas; without a TTL nothing is cached.
func (s *Store) CacheLookup(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	return s.rdb.Set(ctx, s.lookupKey(key), val, ttl).Err()
}

// ForgetLookups implements approval.Quotas.
func (s *Store) ForgetLookups(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.lookupKey(k)
	}
	return s.rdb.Del(ctx, full...).Err()
}
