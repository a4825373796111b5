package app

import (
	"context"
	"sync"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/redis/go-redis/v9"
)

// A mint whose write fails right after it claimed the request, as it records
// that the name was free (Redis refuses writes: here, for want of replicas),
// leaves its job queued and nothing created; once Redis takes writes again
// the job comes back and ends with one credential. It used to crash the
// process: the failed write's missing record was used to fail the request.
func TestMintSurvivesAStoreFailureAsItClaimsTheName(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), false) // its own: the test stops its writes
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var once sync.Once
	refuseWrites := func(string) {
		once.Do(func() {
			if err := rdb.ConfigSet(context.Background(), "min-replicas-to-write", "1").Err(); err != nil {
				panic(err)
			}
		})
	}
	h := startWith(t, map[string]string{"REDIS_URL": srv.URL(), "CREDBOT_RESCUE_AFTER": "1s"},
		Deps{Hooks: approval.Hooks{AfterClaim: refuseWrites}})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	if err := h.logs.waitFor(ctx, "NOREPLICAS"); err != nil {
		t.Fatal(err)
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("BTP saw %d creates while the request could not be written", n)
	}
	if err := rdb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	h.assertWorks(t, ctx, id, h.revealSecret(t, ctx, dm))
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("BTP saw %d creates, want 1", n)
	}
}
