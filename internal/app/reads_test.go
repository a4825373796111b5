package app

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/redis/go-redis/v9"
)

// A whole loop reads the request's record from Redis only where nothing in
// hand tells its state: whether the command ran before (a redelivery), at the
// approve click, at the mint job and at the reveal click. Every write starts from the record its caller read or wrote
// (transitionFrom); a loop used to read it eleven times, a Redis round trip
// and a JSON decode each.
func TestAWholeLoopReadsTheRecordOnlyWhereItMust(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), false) // its own: the test counts the server's commands
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	h := startWith(t, map[string]string{"REDIS_URL": srv.URL()}, Deps{})
	ctx := ctxT(t)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	// The reveal waits for the DM to be recorded: a quicker click makes that
	// write read the record again, rightly, as it moved on meanwhile.
	if err := h.logs.waitFor(ctx, `"note":"reveal offered"`); err != nil {
		t.Fatal(err)
	}
	secret := h.revealSecret(t, ctx, dm)
	// Store.Get is the only HMGET.
	if n := hmgets(t, ctx, rdb); n > 4 {
		t.Errorf("a whole loop read the request's record %d times, want at most 4 (whether the command ran before, the approve click, the mint job, the reveal click)", n)
	}
	h.assertWorks(t, ctx, id, secret)
}

// hmgets is how many HMGETs the server has run since its stats were reset.
func hmgets(t *testing.T, ctx context.Context, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hmget:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}
