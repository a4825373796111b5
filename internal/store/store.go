// Package store keeps credbot's request lifecycle in Redis. Every transition is
// one Lua script (embedded below) that compares state and version, writes the
// request, appends a MAC-chained audit entry (audit.go) and does its side
// writes — queueing the mint, sealing or dropping the secret, moving the
// deadline — atomically.
//
// Keys: every key starts with the deployment's prefix (credbot:req:{id},
// credbot:audit, …), and the scripts touch per-request and global keys
// together. On Redis Cluster the prefix is a hash tag ({credbot}:req:{id}:
// Redis hashes only the first {…}), so a deployment's keys all live in one
// slot and every script runs on one node.
package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed apply.lua
	applySrc string
	//go:embed create.lua
	createSrc string
	//go:embed take.lua
	takeSrc string

	applyScript  = redis.NewScript(applySrc)
	createScript = redis.NewScript(createSrc)
	takeScript   = redis.NewScript(takeSrc)
	// dropScript removes a deadline only if it still has the score seen.
	dropScript = redis.NewScript(`if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0`)
)

const (
	mintGroup    = "minters"
	defaultSpace = "credbot"
)

// Store is the Redis implementation of approval.Store.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	takeover takeoverClock
	audit    auditChain
	keep     Retention
	// readTimeout is the client's read timeout (0: none), within which a
	// pipeline must have all its answers; -1 when the client's kind does
	// not tell it.
	readTimeout time.Duration
}

var _ approval.Store = (*Store)(nil)

// New returns a store using keys under prefix ("credbot" when empty) and makes sure
// the mint queue's consumer group exists. On a cluster client the prefix is put
// in braces unless it already holds a hash tag (see ClusterPrefix); elsewhere it
// is used as given, so a running deployment keeps its key names.
func New(ctx context.Context, rdb redis.UniversalClient, prefix string) (*Store, error) {
	if prefix == "" {
		prefix = defaultSpace
	}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		var err error
		if prefix, err = ClusterPrefix(prefix); err != nil {
			return nil, err
		}
	}
	s := &Store{rdb: rdb, prefix: prefix, keep: Retention{Ended: DefaultRetention, Lists: DefaultRetention}, readTimeout: -1}
	switch c := rdb.(type) {
	case *redis.Client: // also Sentinel's failover client
		s.readTimeout = max(c.Options().ReadTimeout, 0)
	case *redis.ClusterClient:
		s.readTimeout = max(c.Options().ReadTimeout, 0)
	}
	if err := s.ensureGroups(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ensureGroups creates the consumer groups of the mint queue and the inbox.
func (s *Store) ensureGroups(ctx context.Context) error {
	for _, g := range []struct{ stream, group string }{{s.mintKey(), mintGroup}, {s.inboxKey(), inboxGroup}} {
		err := s.rdb.XGroupCreateMkStream(ctx, g.stream, g.group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create consumer group %s: %w", g.group, err)
		}
	}
	return nil
}

// ClusterPrefix is prefix as a Redis Cluster hash tag: "credbot" becomes
// "{credbot}", so that every key of the deployment hashes to the slot of
// "credbot". A prefix that already holds a hash tag ("{credbot}", "a{b}c")
// is kept: keys that start with a tag hash by it, whatever follows.
func ClusterPrefix(prefix string) (string, error) {
	if hashTag(prefix) != "" {
		return prefix, nil
	}
	if p := "{" + prefix + "}"; hashTag(p) != "" {
		return p, nil
	}
	return "", fmt.Errorf("key prefix %q cannot be made a Redis Cluster hash tag: give one, e.g. {credbot}", prefix)
}

// hashTag is what Redis Cluster hashes in key: what lies between the first
// "{" and the first "}" after it, if that is not empty; else "" (the whole key).
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	n := strings.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return ""
	}
	return key[open+1 : open+1+n]
}

// Prefix is the prefix of every key this store uses (in braces on a cluster).
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) reqKey(id string) string    { return s.prefix + ":req:{" + id + "}" }
func (s *Store) secretKey(id string) string { return s.prefix + ":req:{" + id + "}:secret" }
func (s *Store) auditKey() string           { return s.prefix + ":audit" }
func (s *Store) auditHeadKey() string       { return s.prefix + ":audit:head" }
func (s *Store) mintKey() string            { return s.prefix + ":mint" }
func (s *Store) deadlineKey() string        { return s.prefix + ":deadlines" }
func (s *Store) pendingKey() string         { return s.prefix + ":pending" }
func (s *Store) userKey(u string) string    { return s.prefix + ":user:" + u + ":reqs" }
func (s *Store) credsKey(u string) string   { return s.prefix + ":user:" + u + ":creds" }

// breakglassKey holds the id of the user's live break-glass request. It is
// bounded by that request: taken when it is stored, freed in the step that
// ends it, and every live request has a deadline that ends it.
func (s *Store) breakglassKey(u string) string { return s.prefix + ":user:" + u + ":breakglass" }

// nameKey is the reservation of a credential name in a scope. (It keeps the
// "cred:" key of the index of issued credentials it grew out of, so that the
// credentials issued before it stay reserved.)
func (s *Store) nameKey(sc approval.Scope, name string) string {
	return s.prefix + ":cred:" + sc.String() + "/" + name
}

// AuditKey is the stream holding the audit trail.
func (s *Store) AuditKey() string { return s.auditKey() }

// Create implements approval.Store.
func (s *Store) Create(ctx context.Context, r *approval.Request, a approval.AuditEntry, deadline time.Time) error {
	data, audit, err := encode(r, a)
	if err != nil {
		return err
	}
	err = s.appendAudit(ctx, audit, auditOp{
		script: createScript,
		keys: []string{s.reqKey(r.ID), s.auditKey(), s.auditHeadKey(), s.deadlineKey(), s.pendingKey(), s.userKey(r.Requester),
			s.nameKey(r.Scope, r.Name), s.auditGenesisKey(), s.auditTurnKey(), s.mintKey(), s.breakglassKey(r.Requester)},
		args: []any{string(r.State), data, audit, r.ID, deadline.UnixMilli(), r.CreatedAt.UnixMilli(),
			s.keep.Lists.Milliseconds(), UserListMax},
		after: []any{flag(r.Breakglass)},
	})
	switch {
	case err == nil:
		return nil
	case strings.HasPrefix(err.Error(), "EXISTS"):
		return fmt.Errorf("request %s: %w", r.ID, approval.ErrConflict)
	case strings.HasPrefix(err.Error(), "HELD "):
		return fmt.Errorf("%s in %s is held by request %s: %w", r.Name, r.Scope, strings.TrimPrefix(err.Error(), "HELD "), approval.ErrNameHeld)
	case strings.HasPrefix(err.Error(), "BREAKGLASS "):
		return &approval.BreakglassActiveError{Request: strings.TrimPrefix(err.Error(), "BREAKGLASS ")}
	}
	return err
}

// Get implements approval.Store.
func (s *Store) Get(ctx context.Context, id string) (*approval.Request, error) {
	vals, err := s.rdb.HMGet(ctx, s.reqKey(id), "state", "version", "data").Result()
	if err != nil {
		return nil, err
	}
	if vals[0] == nil || vals[2] == nil {
		return nil, fmt.Errorf("request %s: %w", id, approval.ErrNotFound)
	}
	var r approval.Request
	if err := json.Unmarshal([]byte(vals[2].(string)), &r); err != nil {
		return nil, fmt.Errorf("decode request %s: %w", id, err)
	}
	// The hash fields, which the scripts compare, are the truth.
	r.State = approval.State(vals[0].(string))
	r.Version, err = strconv.ParseInt(vals[1].(string), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("decode request %s version: %w", id, err)
	}
	return &r, nil
}

// Apply implements approval.Store.
func (s *Store) Apply(ctx context.Context, next *approval.Request, from approval.State, fromVersion int64, a approval.AuditEntry, fx approval.Effects) error {
	data, audit, err := encode(next, a)
	if err != nil {
		return err
	}
	deadline := ""
	if !fx.Deadline.IsZero() {
		deadline = strconv.FormatInt(fx.Deadline.UnixMilli(), 10)
	}
	// A request that ends keeps nothing but its record, and that for
	// s.keep.Ended (the script also drops its deadline, secret and name).
	ended := ""
	if next.State.Terminal() {
		ended = strconv.FormatInt(s.keep.Ended.Milliseconds(), 10)
	}
	err = s.appendAudit(ctx, audit, auditOp{
		script: applyScript,
		keys: []string{s.reqKey(next.ID), s.secretKey(next.ID), s.auditKey(), s.auditHeadKey(), s.mintKey(), s.deadlineKey(),
			s.pendingKey(), s.nameKey(next.Scope, next.Name), s.auditGenesisKey(), s.auditTurnKey(), s.userKey(next.Requester),
			s.breakglassKey(next.Requester), s.credsKey(next.Requester)},
		args: []any{string(from), strconv.FormatInt(fromVersion, 10), string(next.State), data, audit, next.ID,
			flag(fx.EnqueueMint), string(fx.SealedSecret), fx.SecretTTL.Milliseconds(), flag(fx.DropSecret),
			deadline, flag(fx.ClearDeadline), flag(fx.ReleaseName), ended, s.keep.Lists.Milliseconds()},
	})
	if err != nil && strings.HasPrefix(err.Error(), "CONFLICT") {
		return fmt.Errorf("request %s: %w", next.ID, approval.ErrConflict)
	}
	return err
}

// Take implements approval.Store.
func (s *Store) Take(ctx context.Context, next *approval.Request, fromVersion int64, a approval.AuditEntry, deadline time.Time) ([]byte, error) {
	data, audit, err := encode(next, a)
	if err != nil {
		return nil, err
	}
	dl := ""
	if !deadline.IsZero() {
		dl = strconv.FormatInt(deadline.UnixMilli(), 10)
	}
	var sealed string
	err = s.appendAudit(ctx, audit, auditOp{
		script: takeScript,
		keys:   []string{s.reqKey(next.ID), s.secretKey(next.ID), s.auditKey(), s.auditHeadKey(), s.deadlineKey(), s.auditGenesisKey(), s.auditTurnKey()},
		args:   []any{strconv.FormatInt(fromVersion, 10), data, audit, next.ID, dl},
		read: func(c *redis.Cmd) (string, error) {
			res, err := c.Slice()
			if err != nil {
				return "", err
			}
			if len(res) != 2 {
				return "", fmt.Errorf("take: unexpected reply %d values", len(res))
			}
			sealed, _ = res[0].(string)
			id, _ := res[1].(string)
			return id, nil
		},
	})
	switch {
	case err == nil:
		return []byte(sealed), nil
	case strings.HasPrefix(err.Error(), "CONFLICT"):
		return nil, fmt.Errorf("request %s: %w", next.ID, approval.ErrConflict)
	case strings.HasPrefix(err.Error(), "GONE"):
		return nil, fmt.Errorf("request %s: %w", next.ID, approval.ErrAlreadyTaken)
	}
	return nil, err
}

// ClaimMintJobs implements approval.Store: first jobs whose worker went quiet for
// minIdle (XAUTOCLAIM, looked for at most every takeoverEvery), else new ones
// (XREADGROUP, blocking up to block).
func (s *Store) ClaimMintJobs(ctx context.Context, consumer string, block, minIdle time.Duration) ([]approval.MintJob, error) {
	// A dead replica's jobs first, without waiting for minIdle.
	dead, err := s.takeOver(ctx, s.mintKey(), mintGroup, consumer)
	if err != nil {
		return nil, err
	}
	if len(dead) > 0 {
		return s.jobs(ctx, dead, true)
	}
	// A stuck job waits minIdle (minutes) anyway: a look at every call would
	// cost every mint a round trip for nothing.
	if s.takeover.due(s.mintKey() + " stuck") {
		msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.mintKey(), Group: mintGroup, Consumer: consumer, MinIdle: minIdle, Start: "0-0", Count: 10,
		}).Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
			// The stream was lost (e.g. Redis restarted without persistence).
			if err := s.ensureGroups(ctx); err != nil {
				return nil, err
			}
			msgs, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("xautoclaim: %w", err)
		}
		if len(msgs) > 0 {
			return s.jobs(ctx, msgs, true)
		}
	}
	out, err := s.readNew(ctx, s.mintKey(), mintGroup, consumer, 10, block, "")
	if err != nil {
		return nil, err
	}
	return s.jobs(ctx, out, false)
}

func (s *Store) jobs(ctx context.Context, msgs []redis.XMessage, claimed bool) ([]approval.MintJob, error) {
	jobs := make([]approval.MintJob, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		j := approval.MintJob{StreamID: m.ID, RequestID: id, Deliveries: 1}
		if claimed {
			p, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.mintKey(), Group: mintGroup, Start: m.ID, End: m.ID, Count: 1}).Result()
			if err == nil && len(p) == 1 {
				j.Deliveries = p[0].RetryCount
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// AckMintJob implements approval.Store: the job is acknowledged and deleted
// (as the inbox's entries are), so the mint stream holds only jobs not done.
func (s *Store) AckMintJob(ctx context.Context, job approval.MintJob) error {
	return s.forget(ctx, s.mintKey(), mintGroup, job.StreamID)
}

// DueDeadlines implements approval.Store.
func (s *Store) DueDeadlines(ctx context.Context, now time.Time, limit int64) ([]approval.Due, error) {
	zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: s.deadlineKey(), Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10), ByScore: true, Count: limit,
	}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]approval.Due, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		out = append(out, approval.Due{ID: id, At: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}

// DropDeadline implements approval.Store: the entry goes only if nobody moved it.
func (s *Store) DropDeadline(ctx context.Context, id string, at time.Time) error {
	return dropScript.Run(ctx, s.rdb, []string{s.deadlineKey()}, id, at.UnixMilli()).Err()
}

// ListByRequester implements approval.Store.
func (s *Store) ListByRequester(ctx context.Context, user string, limit int64) ([]*approval.Request, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.userKey(user), 0, limit-1).Result()
	if err != nil {
		return nil, err
	}
	return s.getAll(ctx, ids)
}

// ListLive implements approval.Store: a page of user's live credentials,
// newest first, from their index (apply.lua), and how many there are.
func (s *Store) ListLive(ctx context.Context, user string, offset, limit int64) ([]*approval.Request, int64, error) {
	pipe := s.rdb.Pipeline()
	n := pipe.ZCard(ctx, s.credsKey(user))
	ids := pipe.ZRevRange(ctx, s.credsKey(user), offset, offset+limit-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, err
	}
	all, err := s.getAll(ctx, ids.Val())
	if err != nil {
		return nil, 0, err
	}
	out := all[:0]
	for _, r := range all {
		if r.State == approval.StateIssued || r.State == approval.StateDelivered {
			out = append(out, r)
		}
	}
	return out, n.Val(), nil
}

// ListPending implements approval.Store.
func (s *Store) ListPending(ctx context.Context, limit int64) ([]*approval.Request, error) {
	ids, err := s.rdb.ZRange(ctx, s.pendingKey(), 0, limit-1).Result()
	if err != nil {
		return nil, err
	}
	return s.getAll(ctx, ids)
}

// NameHolder implements approval.Store.
// HoldName implements approval.Store: SET NX with a TTL, for an admin's delete.
func (s *Store) HoldName(ctx context.Context, scope approval.Scope, name, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.nameKey(scope, name), token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("hold %s in %s: %w", name, scope, err)
	}
	return ok, nil
}

// ReleaseName implements approval.Store: the hold is deleted only if it is
// still token's.
func (s *Store) ReleaseName(ctx context.Context, scope approval.Scope, name, token string) error {
	if err := unlockScript.Run(ctx, s.rdb, []string{s.nameKey(scope, name)}, token).Err(); err != nil {
		return fmt.Errorf("release %s in %s: %w", name, scope, err)
	}
	return nil
}

func (s *Store) NameHolder(ctx context.Context, scope approval.Scope, name string) (string, error) {
	id, err := s.rdb.Get(ctx, s.nameKey(scope, name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("credential %s in %s: %w", name, scope, approval.ErrNotFound)
	}
	return id, err
}

func (s *Store) getAll(ctx context.Context, ids []string) ([]*approval.Request, error) {
	out := make([]*approval.Request, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, id)
		if errors.Is(err, approval.ErrNotFound) {
			continue // garbage-collected
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Once records key and reports whether this was the first time within ttl; it
// makes replayed Slack requests and redelivered events harmless.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("once %s: a TTL is needed, or the key is kept forever", key)
	}
	return s.rdb.SetNX(ctx, s.prefix+":once:"+key, "1", ttl).Result()
}

// Ping reports whether Redis answers, for readiness.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

func encode(r *approval.Request, a approval.AuditEntry) (data, audit string, err error) {
	d, err := json.Marshal(r)
	if err != nil {
		return "", "", fmt.Errorf("encode request: %w", err)
	}
	e, err := json.Marshal(a)
	if err != nil {
		return "", "", fmt.Errorf("encode audit entry: %w", err)
	}
	return string(d), string(e), nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
