package app

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/redis/go-redis/v9"
)

func TestRedisURLForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"h1:7000", "h1:7000"},
		{"h1:7000,h2:7001,h3:7002", "h1:7000?addr=h2:7001&addr=h3:7002"},
		{":pw@s1:26379,s2:26379/0?master_name=m", ":pw@s1:26379/0?master_name=m&addr=s2:26379"},
		{"u:p@h1:7000,h2:7001?dial_timeout=2s", "u:p@h1:7000?dial_timeout=2s&addr=h2:7001"},
	} {
		if got := withAddrParams(c.in); got != c.want {
			t.Errorf("withAddrParams(%q) = %q, want %q", c.in, got, c.want)
		}
	}

	rdb, err := NewRedis("redis-cluster://u:pw@h1:7000,h2:7001,h3:7002?pool_timeout=5s", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("redis-cluster:// gave a %T", rdb)
	}
	o := cc.Options()
	if strings.Join(o.Addrs, ",") != "h1:7000,h2:7001,h3:7002" || o.Username != "u" || o.Password != "pw" ||
		o.PoolTimeout != 5*time.Second || o.TLSConfig != nil || o.ClusterStateReloadInterval != clusterStateReload {
		t.Fatalf("cluster options %+v", o)
	}
	tlsc, err := NewRedis("rediss-cluster://h1:7000/0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tlsc.Close()
	if o := tlsc.(*redis.ClusterClient).Options(); o.TLSConfig == nil || o.PoolTimeout != poolTimeout {
		t.Fatalf("rediss-cluster options %+v", o)
	}
	for _, bad := range []string{"redis-cluster://h1:7000/1", "redis-cluster://h1:7000?no_such_option=1"} {
		if c, err := NewRedis(bad, 0); err == nil {
			c.Close()
			t.Errorf("NewRedis(%q, 0) accepted", bad)
		}
	}
}

// TestLoopRunsThroughRedisClusterAcrossAFailover runs the whole loop through a
// real Redis Cluster (three primaries, a replica each), kills the primary of
// credbot's slot, and runs the whole loop again once its replica took over.
func TestLoopRunsThroughRedisClusterAcrossAFailover(t *testing.T) {
	t.Parallel()
	cluster, err := redistest.StartCluster(t.TempDir())
	if errors.Is(err, redistest.ErrNoRedisCLI) || errors.Is(err, exec.ErrNotFound) {
		t.Skipf("no Redis Cluster to test against: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop)
	r := redistest.AttachCluster(t, cluster)
	h := startOn(t, r, map[string]string{"REDIS_URL": cluster.URL()}, Deps{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if p := h.App.Store.Prefix(); p != "{"+r.Prefix+"}" {
		t.Fatalf("key prefix %q on a cluster, want {%s}", p, r.Prefix)
	}

	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	first, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	h.assertWorks(t, ctx, first, h.revealSecret(t, ctx, dm))

	old, promoted, err := cluster.Failover(ctx, h.App.Store.AuditKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed primary %s; replica %s took over", old.Addr(), promoted.Addr())

	// What was done before survives on the promoted replica, which the bot
	// finds within seconds (go-redis's own default would take up to a minute:
	// a dead primary sends no MOVED).
	promotedAt := time.Now()
	findCtx, cancelFind := context.WithTimeout(ctx, 10*time.Second)
	defer cancelFind()
	var got *approval.Request
	for got, err = h.App.Store.Get(findCtx, first); err != nil; got, err = h.App.Store.Get(findCtx, first) {
		select {
		case <-findCtx.Done():
			t.Fatalf("the bot did not reach the promoted replica within 10 s: %v", err)
		case <-time.After(50 * time.Millisecond): // polling for the failover; not a timing assertion
		}
	}
	t.Logf("the bot reached the promoted replica %v after the promotion", time.Since(promotedAt).Round(time.Millisecond))
	if got.State != approval.StateDelivered {
		t.Fatalf("first request %s after the failover, want DELIVERED", got.State)
	}

	mark := h.Slack.Mark()
	ack, err := h.Workspace.Slash(ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name after-failover --reason "after the failover"`)
	if err != nil || ack.Status != 200 {
		t.Fatalf("slash after the failover: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "after-failover")
	})
	if err != nil {
		t.Fatal(err)
	}
	msg2, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, msg2, blockkit.ActionApprove)
	dmCall, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
	})
	if err != nil {
		t.Fatal(err)
	}
	dm2, _ := h.Slack.Message(dmCall.Channel, dmCall.TS)
	second, _, _ := slackfake.FindButton(dm2.Blocks, blockkit.ActionReveal)
	if second == first {
		t.Fatal("the second loop found the first request's DM")
	}
	h.assertWorks(t, ctx, second, h.revealSecret(t, ctx, dm2))

	if n := h.BTP.Count("create"); n != 2 {
		t.Fatalf("%d creates at BTP, want 2", n)
	}
	direct := redis.NewClient(&redis.Options{Addr: promoted.Addr()})
	defer direct.Close()
	if n, err := direct.Exists(ctx, h.App.Store.Prefix()+":req:{"+second+"}").Result(); err != nil || n != 1 {
		t.Fatalf("the second request is not on the promoted replica: %d %v", n, err)
	}
	rep, err := h.App.Store.VerifyAudit(ctx)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("audit chain across the failover: %+v %v", rep, err)
	}
}
