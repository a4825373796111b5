package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/redis/go-redis/v9"
)

// boundedKey is a key credbot keeps without a TTL, and why that is bounded
// anyway. The README's table "What credbot keeps in Redis, and for how long"
// says the same; TestEveryKeyCredbotWritesIsBounded holds both to it.
type boundedKey struct {
	key   string         // as the README writes it, under the prefix
	match *regexp.Regexp // the key after "<prefix>:"
	why   string
	// check proves the bound on the key as the test left it.
	check func(ctx context.Context, h *harness, key string) error
}

func boundedKeys() []boundedKey {
	return []boundedKey{
		{"req:{id}", regexp.MustCompile(`^req:\{[^}]+\}$`),
			"a live request (not ended: e.g. DELIVERED, whose credential lives until deleted); the transition that ends it gives it CREDBOT_RETENTION",
			func(ctx context.Context, h *harness, key string) error {
				return liveRequest(ctx, h, strings.TrimSuffix(strings.TrimPrefix(key, h.App.Store.Prefix()+":req:{"), "}"))
			}},
		{"audit", regexp.MustCompile(`^audit$`),
			"the audit trail: trimmed to CREDBOT_AUDIT_RETAIN entries through checkpoints", nil},
		{"audit:head", regexp.MustCompile(`^audit:head$`), "one key: the chain's last entry", nil},
		{"audit:genesis", regexp.MustCompile(`^audit:genesis$`), "one key: when the chain began", nil},
		{"inbox", regexp.MustCompile(`^inbox$`),
			"a stream of Slack deliveries not done yet: done ones are deleted; capped at 100,000 entries",
			emptyStream},
		{"mint", regexp.MustCompile(`^mint$`),
			"a stream of mint jobs not done yet: done ones are deleted (and trimmed at every sweep)",
			emptyStream},
		{"deadlines", regexp.MustCompile(`^deadlines$`),
			"one entry per live request; removed when it ends", liveMembers},
		{"pending", regexp.MustCompile(`^pending$`),
			"one entry per request waiting for approval; removed when it is decided", liveMembers},
		{"cred:<scope>/<name>", regexp.MustCompile(`^cred:.+/.+$`),
			"a name reservation, held by a live request; released when it ends",
			func(ctx context.Context, h *harness, key string) error {
				id, err := h.redis.Client.Get(ctx, key).Result()
				if err != nil {
					return err
				}
				return liveRequest(ctx, h, id)
			}},
		{"user:<id>:breakglass", regexp.MustCompile(`^user:[^:]+:breakglass$`),
			"a person's live break-glass request (one at a time); deleted in the step that ends it",
			func(ctx context.Context, h *harness, key string) error {
				id, err := h.redis.Client.Get(ctx, key).Result()
				if err != nil {
					return err
				}
				return liveRequest(ctx, h, id)
			}},
		{"policy:last-good", regexp.MustCompile(`^policy:last-good$`),
			"one key: the last policy that loaded, overwritten by the next", nil},
	}
}

// liveRequest: the record of id exists and has not ended.
func liveRequest(ctx context.Context, h *harness, id string) error {
	r, err := h.App.Store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("request %s: %w", id, err)
	}
	if r.State.Terminal() {
		return fmt.Errorf("request %s has ended (%s) but is still indexed", id, r.State)
	}
	return nil
}

func liveMembers(ctx context.Context, h *harness, key string) error {
	ids, err := h.redis.Client.ZRange(ctx, key, 0, -1).Result()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, liveRequest(ctx, h, id))
	}
	return errors.Join(errs...)
}

func emptyStream(ctx context.Context, h *harness, key string) error {
	if n, err := h.redis.Client.XLen(ctx, key).Result(); err != nil || n != 0 {
		return fmt.Errorf("%d entries left after all work was done (%v)", n, err)
	}
	return nil
}

// TestEveryKeyCredbotWritesIsBounded runs the whole loop — a request
// approved and revealed, one deleted by its owner, a live break-glass, an
// inventory sweep that finds a credential credbot did not issue, one
// request denied, one cancelled, one left pending, a list and a get (the
// lookup cache) under the per-person limits (their counters) — and then
// looks at every key under the prefix: each has a TTL, or is one of
// boundedKeys, whose bound is checked.
func TestEveryKeyCredbotWritesIsBounded(t *testing.T) {
	h := start(t, bgEnv(map[string]string{
		"CREDBOT_RETENTION":            "30d",
		"CREDBOT_MAX_PENDING_PER_USER": "5",
		"CREDBOT_COMMANDS_PER_MINUTE":  "20",
		"CREDBOT_INVENTORY_INTERVAL":   "1h",
	}))
	ctx := ctxT(t)
	const retention = 30 * 24 * time.Hour

	// Delivered: approved, minted, revealed.
	h.issue(t, ctx, "kept-live")
	mine, _, err := h.App.Service.Requests(ctx, Requester.ID)
	if err != nil || len(mine) != 1 || mine[0].State != approval.StateDelivered {
		t.Fatalf("requests = %v, %v; want one DELIVERED", mine, err)
	}
	delivered := mine[0].ID

	// Deleted by its owner before its lifetime ended.
	ownerDeleted := h.issueOne(t, ctx, "deleted-by-owner")
	if _, err := h.App.Service.DeleteOwn(ctx, ownerDeleted, Requester.ID); err != nil {
		t.Fatal(err)
	}

	// A break-glass, live: its holder's lock.
	if _, a := h.slash(t, ctx, Requester, bgText("bg-bounded", "INC-42: bounded")); !strings.Contains(a.Body, "without approval") {
		t.Fatalf("break-glass: %s", a.Body)
	}

	// The inventory, with a credential credbot did not issue: its lease,
	// what it reported and its counts.
	createAtBTP(t, ctx, h, "made-by-hand")
	if _, swept, err := h.App.Inventory.Tick(ctx, "replica-bounded"); err != nil || !swept {
		t.Fatalf("inventory: swept %v, %v", swept, err)
	}

	// Denied.
	_, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name to-deny --reason "bounded"`, subacct))
	m := requestIDInAnswer.FindStringSubmatch(a.Body)
	if m == nil {
		t.Fatalf("create: %s", a.Body)
	}
	denied := m[1]
	if got := h.click(t, ctx, Approver, h.approvalMessage(t, ctx, "to-deny"), blockkit.ActionDeny); !strings.Contains(got.Body, "Denied") {
		t.Fatalf("deny: %s", got.Body)
	}

	// Cancelled.
	_, a = h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name to-cancel --reason "bounded"`, subacct))
	if m = requestIDInAnswer.FindStringSubmatch(a.Body); m == nil {
		t.Fatalf("create: %s", a.Body)
	}
	cancelled := m[1]
	if _, c := h.slash(t, ctx, Requester, "cancel "+cancelled); !strings.Contains(c.Body, "cancelled") {
		t.Fatalf("cancel: %s", c.Body)
	}

	// Pending, left waiting.
	if _, c := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name left-pending --reason "bounded"`, subacct)); !strings.Contains(c.Body, "waiting for approval") {
		t.Fatalf("create: %s", c.Body)
	}

	// The lookup cache, and the status list.
	if _, c := h.slash(t, ctx, Admin, "list "+subacct); !strings.Contains(c.Body, "kept-live") {
		t.Fatalf("list: %s", c.Body)
	}
	if _, c := h.slash(t, ctx, Admin, "get "+subacct+" --name kept-live"); !strings.Contains(c.Body, "Client ID: ") {
		t.Fatalf("get: %s", c.Body)
	}
	if _, c := h.slash(t, ctx, Requester, "status"); !strings.Contains(c.Body, "Your requests") {
		t.Fatalf("status: %s", c.Body)
	}

	// The work recorded before each ack is done once the inbox is empty.
	rdb, prefix := h.redis.Client, h.App.Store.Prefix()
	for rdb.XLen(ctx, prefix+":inbox").Val() != 0 || rdb.XLen(ctx, prefix+":mint").Val() != 0 {
		if ctx.Err() != nil {
			t.Fatal("the inbox and the mint queue never emptied")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The ended requests keep their record for the retention; the delivered
	// one, a live credential, has no TTL.
	for _, id := range []string{denied, cancelled, ownerDeleted} {
		if d := rdb.PTTL(ctx, prefix+":req:{"+id+"}").Val(); d <= retention-time.Minute || d > retention {
			t.Errorf("ended request %s has TTL %s, want CREDBOT_RETENTION (%s)", id, d, retention)
		}
	}
	if d := rdb.PTTL(ctx, prefix+":req:{"+delivered+"}").Val(); d != -1 {
		t.Errorf("the DELIVERED request has TTL %s, want none: it lives until deleted", d)
	}
	cfg := h.Local.Config
	wantList := max(retention, cfg.PendingTTL+cfg.ClaimWindow+cfg.MaxLifetime+24*time.Hour)
	if d := rdb.PTTL(ctx, prefix+":user:"+Requester.ID+":reqs").Val(); d <= wantList-time.Minute || d > wantList {
		t.Errorf("the requester's list has TTL %s, want %s", d, wantList)
	}

	keys, err := scanKeys(ctx, rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[strings.SplitN(strings.TrimPrefix(k, prefix+":"), ":", 2)[0]] = true
	}
	// The loop wrote every kind of key, so the check below covers them.
	for _, kind := range []string{"req", "user", "audit", "inbox", "mint", "deadlines", "pending", "cred", "policy", "once", "rate", "lookup", "alive", "health", "inventory", "lease"} {
		if !seen[kind] {
			t.Errorf("no %s key was written: the test no longer covers it (keys: %v)", kind, keys)
		}
	}
	withTTL, bounded := 0, 0
	for _, k := range keys {
		rest := strings.TrimPrefix(k, prefix+":")
		d, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d == -2 {
			continue // expired while we looked
		}
		if d > 0 {
			withTTL++
		} else {
			bounded++
		}
		var listed *boundedKey
		for _, b := range boundedKeys() {
			if b.match.MatchString(rest) {
				listed = &b
				break
			}
		}
		switch {
		case d > 0 && listed != nil && listed.key == "req:{id}":
			// An ended request: its TTL is the retention, checked above
			// for the two this test ended.
		case d > 0:
			if d > wantList {
				t.Errorf("%s has TTL %s, longer than anything credbot keeps", k, d)
			}
		case listed == nil:
			t.Errorf("%s has no TTL and is not one of the documented bounded keys", k)
		case listed.check != nil:
			if err := listed.check(ctx, h, k); err != nil {
				t.Errorf("%s (%s): %v", k, listed.why, err)
			}
		}
	}

	t.Logf("%d keys after the loop: %d with a TTL, %d kept without one under a documented bound", len(keys), withTTL, bounded)

	// The README's table names every key kept without a TTL.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "What credbot keeps in Redis, and for how long")
	if !ok {
		t.Fatal(`README.md has no table "What credbot keeps in Redis, and for how long"`)
	}
	table, _, _ = strings.Cut(table, "\n\n#")
	for _, b := range boundedKeys() {
		if !strings.Contains(table, "`"+b.key+"`") {
			t.Errorf("README's table of what credbot keeps lacks `%s` (%s)", b.key, b.why)
		}
	}
	if !strings.Contains(table, "CREDBOT_RETENTION") {
		t.Error("README's table of what credbot keeps does not name CREDBOT_RETENTION")
	}
}

// scanKeys lists the keys under prefix (a single server: the harness's).
func scanKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	var out []string
	iter := rdb.Scan(ctx, 0, redisGlob(prefix)+":*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

// redisGlob escapes the glob characters of s for SCAN's MATCH.
func redisGlob(s string) string {
	return regexp.MustCompile(`[*?\[\]\\]`).ReplaceAllString(s, `\$0`)
}

func TestRetentionHasADefaultAndRefusesLessThanADay(t *testing.T) {
	cfg, err := ConfigFromEnv(func(string) string { return "" })
	if err != nil || cfg.Retention != 400*24*time.Hour {
		t.Fatalf("default retention %s (%v), want 400d", cfg.Retention, err)
	}
	for _, v := range []string{"0s", "12h", "-1d", "forever"} {
		if _, err := ConfigFromEnv(func(k string) string {
			if k == "CREDBOT_RETENTION" {
				return v
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), "CREDBOT_RETENTION") {
			t.Errorf("CREDBOT_RETENTION=%s: %v, want refused", v, err)
		}
	}
}
