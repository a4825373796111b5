package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

// The inventory's keys (see approval/inventory.go): a lease that lets one
// replica sweep at a time, each scope's remembered unmanaged credentials (a
// hash, name → JSON metadata, at most approval.InventoryConfig.Remember
// fields) and a hash of counts per scope. Both hashes get a TTL at every
// sweep, so that what no sweep confirms any more lapses on its own.

var (
	//go:embed inventory.lua
	inventorySrc    string
	inventoryScript = redis.NewScript(inventorySrc)
	// keepLeaseScript sets a lease's TTL only if the caller holds it.
	keepLeaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	// forgetUnmanagedScript drops one remembered credential and counts it
	// off its scope.
	// KEYS: 1 the scope's hash, 2 counts hash. ARGV: 1 name, 2 scope.
	forgetUnmanagedScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  local n = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
  if n > 0 then redis.call('HSET', KEYS[2], ARGV[2], n - 1) end
  return 1
end
return 0`)
)

var _ approval.InventoryStore = (*Store)(nil)

func (s *Store) leaseKey(name string) string { return s.prefix + ":lease:" + name }
func (s *Store) unmanagedKey(sc approval.Scope) string {
	return s.prefix + ":inventory:unmanaged:" + sc.String()
}
func (s *Store) unmanagedCountKey() string { return s.prefix + ":inventory:counts" }

// TakeLease implements approval.InventoryStore.
func (s *Store) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, s.leaseKey(name), holder, ttl).Result()
}

// KeepLease implements approval.InventoryStore.
func (s *Store) KeepLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	n, err := keepLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, holder, max(ttl.Milliseconds(), 1)).Int()
	return n == 1, err
}

// Reservations implements approval.InventoryStore: one walk of the name
// reservations (SCAN, on the node that holds the deployment's keys).
func (s *Store) Reservations(ctx context.Context) (map[approval.Scope]map[string]string, error) {
	node := redis.Cmdable(s.rdb)
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, s.mintKey())
		if err != nil {
			return nil, err
		}
		node = m
	}
	head := s.prefix + ":cred:"
	var keys []string
	iter := node.Scan(ctx, 0, globEscape(head)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan the name reservations: %w", err)
	}
	out := map[approval.Scope]map[string]string{}
	for chunk := range slices.Chunk(keys, 500) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.Get(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read the name reservations: %w", err)
		}
		for i, k := range chunk {
			id, err := cmds[i].Result()
			if err != nil {
				continue // released since the scan
			}
			scope, name, ok := strings.Cut(strings.TrimPrefix(k, head), "/")
			if !ok {
				continue
			}
			sc, err := approval.ParseScope(scope)
			if err != nil {
				continue
			}
			if out[sc] == nil {
				out[sc] = map[string]string{}
			}
			out[sc][name] = id
		}
	}
	return out, nil
}

// RecordUnmanaged implements approval.InventoryStore.
func (s *Store) RecordUnmanaged(ctx context.Context, scope approval.Scope, found []approval.UnmanagedCredential, total, most int, keep time.Duration) ([]string, error) {
	args := []any{keep.Milliseconds(), scope.String(), most, total}
	for _, u := range found {
		b, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		args = append(args, u.Name, string(b))
	}
	fresh, err := inventoryScript.Run(ctx, s.rdb, []string{s.unmanagedKey(scope), s.unmanagedCountKey()}, args...).StringSlice()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return fresh, err
}

// Unmanaged implements approval.InventoryStore.
func (s *Store) Unmanaged(ctx context.Context, scopes []approval.Scope) ([]approval.UnmanagedCredential, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(scopes))
	for i, sc := range scopes {
		cmds[i] = pipe.HGetAll(ctx, s.unmanagedKey(sc))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var out []approval.UnmanagedCredential
	for _, c := range cmds {
		for _, v := range c.Val() {
			var u approval.UnmanagedCredential
			if json.Unmarshal([]byte(v), &u) == nil {
				out = append(out, u)
			}
		}
	}
	slices.SortFunc(out, func(a, b approval.UnmanagedCredential) int {
		if c := strings.Compare(a.Scope.String(), b.Scope.String()); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// ForgetUnmanaged implements approval.InventoryStore.
func (s *Store) ForgetUnmanaged(ctx context.Context, scope approval.Scope, name string) error {
	return forgetUnmanagedScript.Run(ctx, s.rdb, []string{s.unmanagedKey(scope), s.unmanagedCountKey()}, name, scope.String()).Err()
}

// PruneInventory implements approval.InventoryStore.
func (s *Store) PruneInventory(ctx context.Context, keep []approval.Scope) error {
	counts, err := s.rdb.HKeys(ctx, s.unmanagedCountKey()).Result()
	if err != nil {
		return err
	}
	for _, v := range counts {
		sc, err := approval.ParseScope(v)
		if err == nil && slices.Contains(keep, sc) {
			continue
		}
		pipe := s.rdb.TxPipeline()
		pipe.HDel(ctx, s.unmanagedCountKey(), v)
		if err == nil {
			pipe.Del(ctx, s.unmanagedKey(sc))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// UnmanagedCounts returns the unmanaged credentials the last sweeps counted,
// per scope, for the gauge.
func (s *Store) UnmanagedCounts(ctx context.Context) (map[string]int, error) {
	m, err := s.rdb.HGetAll(ctx, s.unmanagedCountKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		if n, err := strconv.Atoi(v); err == nil {
			out[k] = n
		}
	}
	return out, nil
}
