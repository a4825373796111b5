package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/btp/btptest"
)

type readiness struct {
	Ready        bool                `json:"ready"`
	Failing      []string            `json:"failing"`
	Degraded     []string            `json:"degraded"`
	Dependencies map[string]depState `json:"dependencies"`
}

func (h *harness) readyz(t *testing.T) (int, readiness) {
	t.Helper()
	resp, err := http.Get(h.Workspace.BotURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r readiness
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/readyz is not JSON: %v\n%s", err, b)
	}
	return resp.StatusCode, r
}

func (h *harness) metric(t *testing.T, line string) bool {
	t.Helper()
	resp, err := http.Get(h.Workspace.BotURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), line)
}

// /readyz is 200 only when the replica can take work; what is degraded is
// named, with the way to fix it, in the body, the metrics and one log line.
func TestReadinessTellsTheTruth(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	code, r := h.readyz(t)
	if code != http.StatusOK || !r.Ready || !r.Dependencies["slack"].OK || !r.Dependencies["btp"].OK || !r.Dependencies["channel:"+localApprovals].OK {
		t.Fatalf("healthy bot: %d %+v", code, r)
	}
	// The test Redis runs without an append-only file: degraded, still ready.
	if aof := r.Dependencies["redis_aof"]; aof.OK || aof.Critical || !strings.Contains(aof.Fix, "appendonly yes") {
		t.Fatalf("redis without AOF: %+v", aof)
	}

	// The bot is removed from the approval channel: degraded, still ready.
	h.Slack.RemoveBot(localApprovals, true)
	h.App.health.refresh(ctx)
	code, r = h.readyz(t)
	ch := r.Dependencies["channel:"+localApprovals]
	if code != http.StatusOK || ch.OK || !strings.Contains(ch.Error, "not a member") || !strings.Contains(ch.Fix, "/invite @credbot") {
		t.Fatalf("bot outside the approval channel: %d %+v", code, ch)
	}
	if !h.metric(t, `credbot_dependency_up{dependency="channel:`+localApprovals+`"} 0`) {
		t.Error("credbot_dependency_up does not show the channel down")
	}
	h.App.health.refresh(ctx) // unchanged: no second log line
	if n := strings.Count(h.logs.String(), `"dependency":"channel:`+localApprovals+`"`); n != 1 {
		t.Errorf("%d log lines about the channel, want one per change", n)
	}
	h.Slack.RemoveBot(localApprovals, false)

	// BTP stops answering (credbot judges it by its own calls: it spends no
	// rate budget on probes): degraded with the real cause; requesters learn
	// their request is queued.
	for _, action := range []string{"list", "get", "create"} {
		h.BTP.Inject(btptest.Fault{Action: action, Status: http.StatusBadGateway, Times: -1})
	}
	if _, err := h.App.Service.ListCredentials(ctx, "U0LOCALADM", defaultScope); err == nil {
		t.Fatal("list succeeded through a 502")
	}
	h.App.health.refresh(ctx)
	code, r = h.readyz(t)
	if b := r.Dependencies["btp"]; code != http.StatusOK || b.OK || b.Critical || b.Error == "" {
		t.Fatalf("BTP down: %d %+v", code, b)
	}
	if reply := h.slashReply(t, ctx, createText); !strings.Contains(reply, "Queued: BTP is unreachable") {
		t.Fatalf("the requester was not told BTP is down: %s", reply)
	}

	// The bot token stops working: not ready, and the fix says what to do.
	h.Slack.RevokeToken(true)
	h.App.health.refresh(ctx)
	code, r = h.readyz(t)
	if code != http.StatusServiceUnavailable || r.Ready || !strings.Contains(r.Dependencies["slack"].Fix, "SLACK_BOT_TOKEN") {
		t.Fatalf("invalid token: %d %+v", code, r)
	}
	h.Slack.RevokeToken(false)
	h.App.health.refresh(ctx)
	if code, _ := h.readyz(t); code != http.StatusOK {
		t.Fatalf("token works again: %d", code)
	}

	// Draining: not ready at once.
	h.App.Drain()
	if code, _ := h.readyz(t); code != http.StatusServiceUnavailable {
		t.Fatalf("draining: %d, want 503", code)
	}
}
