package app

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/redis/go-redis/v9"
)

// Every inbox worker and mint worker blocks on a stream read holding a Redis
// connection. With more of them than go-redis's default pool (10 per CPU),
// the acks, transitions and audit writes queued behind them and a load run at
// CREDBOT_WORKERS=32 on two cores stalled for minutes. The pool is sized for
// the blocking readers plus the default for everything else.
func TestBlockingReadersDoNotTakeTheWholeRedisPool(t *testing.T) {
	const workers, minters = 64, 16
	h := start(t, map[string]string{
		"CREDBOT_WORKERS": strconv.Itoa(workers), "CREDBOT_MINT_WORKERS": strconv.Itoa(minters),
	})
	ctx := ctxT(t)
	c, ok := h.Local.App.rdb.(*redis.Client)
	if !ok {
		t.Fatalf("bot's Redis client is a %T, want *redis.Client", h.Local.App.rdb)
	}
	want := workers + minters + 10*runtime.GOMAXPROCS(0)
	if got := c.Options().PoolSize; got < want {
		t.Fatalf("Redis pool of %d connections for %d blocking readers; want at least %d", got, workers+minters, want)
	}
	// And the loop works with them all blocking.
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.waitDM(t, ctx)
	if s := c.PoolStats(); s.Timeouts != 0 {
		t.Fatalf("%d waits for a Redis connection timed out", s.Timeouts)
	}

	// A pool_size in REDIS_URL is the operator's and is kept.
	for _, u := range []string{"redis://127.0.0.1:1/0?pool_size=7", "redis-sentinel://127.0.0.1:1/0?master_name=m&pool_size=7", "redis-cluster://127.0.0.1:1?pool_size=7"} {
		rdb, err := NewRedis(u, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		switch c := rdb.(type) {
		case *redis.Client:
			got = c.Options().PoolSize
		case *redis.ClusterClient:
			got = c.Options().PoolSize
		}
		_ = rdb.Close()
		if got != 7 {
			t.Errorf("%s: pool of %d, want the URL's 7", u, got)
		}
	}
}
