package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
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

// In Socket Mode a connection that is lost and cannot be opened again is
// named: degraded (Slack holds and retries what it could not deliver), still
// ready, with the fix, in credbot_socket_connected, credbot_dependency_up and
// one log line.
func TestReadinessReportsSocketModeDisconnected(t *testing.T) {
	h := startSocket(t, nil)
	ctx := ctxT(t)
	until := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %v", what, ctx.Err())
			case <-time.After(10 * time.Millisecond): // polling a state; not a timing assertion
			}
		}
	}
	until("the bot's first hello", h.App.handlers.SocketConnected)
	h.App.health.refresh(ctx)
	// A replica that is still making its first connection is not failing:
	// starting says nothing about Socket Mode, and nothing is logged.
	if strings.Contains(h.logs.String(), `"dependency":"socket_mode"`) {
		t.Errorf("a normal start logged Socket Mode as failing:\n%s", grep(h.logs.String(), `{"time"`))
	}
	code, r := h.readyz(t)
	if code != http.StatusOK || !r.Dependencies["socket_mode"].OK || !h.metric(t, "credbot_socket_connected 1") {
		t.Fatalf("connected: %d %+v", code, r.Dependencies["socket_mode"])
	}

	// Slack drops the connection and refuses the app token from now on.
	logged := len(h.logs.String())
	mark := h.Slack.Mark()
	h.Slack.EnableSocketMode("xapp-1-another-app")
	h.Slack.DisconnectSockets("link_disabled")
	if _, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool { return c.Method == "apps.connections.open!invalid_auth" }); err != nil {
		t.Fatal(err)
	}
	until("the bot sees it is disconnected", func() bool { return !h.App.handlers.SocketConnected() })
	h.App.health.refresh(ctx)
	h.App.health.refresh(ctx) // unchanged: no second log line
	code, r = h.readyz(t)
	sm := r.Dependencies["socket_mode"]
	if code != http.StatusOK || !r.Ready || sm.OK || sm.Critical || !strings.Contains(sm.Fix, "SLACK_APP_TOKEN") {
		t.Fatalf("disconnected: %d %+v", code, r)
	}
	for _, want := range []string{"credbot_socket_connected 0", `credbot_dependency_up{dependency="socket_mode"} 0`} {
		if !h.metric(t, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := strings.Count(h.logs.String()[logged:], `"dependency":"socket_mode"`); n != 1 {
		t.Errorf("%d log lines about Socket Mode, want one per change", n)
	}
}

// BTP that stays unreachable until the mint gives up is reported to the
// requester as unreachable, never as a refusal ("BTP refused…" sent people
// to fix a permission that was fine).
func TestBTPUnreachableIsNeverReportedAsARefusal(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_RESCUE_AFTER": "1s"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := h.request(t, ctx)
	for _, action := range []string{"get", "create", "list"} {
		h.BTP.Inject(btptest.Fault{Action: action, Status: http.StatusBadGateway, Times: -1})
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if txt := c.Text(); strings.Contains(txt, "refused") || !strings.Contains(txt, "could not be reached") || strings.Contains(txt, "btp: btp") {
		t.Fatalf("the requester was told %q: want that BTP could not be reached", txt)
	} else {
		t.Logf("the requester was told: %s", txt)
	}
}
