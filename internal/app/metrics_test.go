package app

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

func (h *harness) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(h.Workspace.BotURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// scrapeUntil scrapes until /metrics shows line (or ctx ends).
func (h *harness) scrapeUntil(t *testing.T, ctx context.Context, line string) string {
	t.Helper()
	for {
		m := h.scrape(t)
		if strings.Contains(m, line) {
			return m
		}
		select {
		case <-ctx.Done():
			return m
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// After one whole loop, /metrics shows what an operator needs: BTP and Slack
// calls by outcome, queues, pending requests, time to approve and deliver,
// reveals, dependency health and the build.
func TestMetricsShowCallsQueuesLatenciesAndReveals(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.Slack.Inject(slackfake.Fault{Method: "chat.update", Status: http.StatusTooManyRequests, RetryAfter: 10 * time.Millisecond, Times: 1})
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	h.revealSecret(t, ctx, dm)
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.update" }); err != nil {
		t.Fatal(err)
	}
	// The reveal's inbox entry is marked done just after its reply, and the
	// mint job acknowledged just after the DM (the reveal may be quicker).
	h.scrapeUntil(t, ctx, `credbot_queue_depth{queue="mint"} 0`)
	m := h.scrapeUntil(t, ctx, `credbot_queue_depth{queue="inbox"} 0`)
	for _, want := range []string{
		`credbot_btp_requests_total{op="create",outcome="ok"} 1`,
		`credbot_btp_requests_total{op="login",outcome="ok"}`,
		`credbot_btp_request_duration_seconds_count{op="create"} 1`,
		`credbot_slack_requests_total{method="chat.postMessage",outcome="ok"}`,
		`credbot_slack_requests_total{method="chat.update",outcome="rate_limited"} 1`,
		`credbot_queue_depth{queue="inbox"} 0`,
		`credbot_queue_depth{queue="mint"} 0`,
		`credbot_queue_oldest_age_seconds{queue="inbox"} 0`,
		`credbot_pending_requests 0`,
		`credbot_time_to_approve_seconds_count 1`,
		`credbot_time_to_deliver_seconds_count 1`,
		`credbot_reveals_total{outcome="shown"} 1`,
		`credbot_dependency_up{dependency="redis"} 1`,
		`credbot_transitions_total{to="DELIVERED"} 1`,
		// Every answer to Slack is timed: Slack gives up after 3 seconds.
		`credbot_slack_ack_duration_seconds_count{kind="command",status="200"} 1`,
		`credbot_slack_ack_duration_seconds_count{kind="interaction",status="200"} 2`,
		`credbot_slack_ack_duration_seconds_bucket{kind="command",status="200",le="3"} 1`,
		// Every BTP operation's failure series exists before its first call,
		// so that an alert's rate() sees the first failure.
		`credbot_btp_requests_total{op="unassign",outcome="refused"} 0`,
		`credbot_btp_requests_total{op="assign",outcome="server_error"} 0`,
		`credbot_btp_requests_total{op="get-user",outcome="unreachable"} 0`,
		`credbot_btp_requests_total{op="get-role-collection",outcome="rate_limited"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s\n%s", want, grep(m, "credbot_"))
		}
	}
	if !regexp.MustCompile(`credbot_build_info\{go_version="go[^"]+",revision="[^"]*",version="[^"]+"\} 1`).MatchString(m) {
		t.Error("/metrics lacks credbot_build_info")
	}
	// A second reveal is refused, and counted as such.
	h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if m := h.scrape(t); !strings.Contains(m, `credbot_reveals_total{outcome="already_taken"} 1`) {
		t.Error("a refused reveal is not counted")
	}
}

// Work acknowledged but not done shows as queue depth and age: the alert an
// on-call engineer gets when no worker takes the inbox.
func TestMetricsShowWorkWaitingInTheInbox(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_WORKERS": "0"})
	ctx := ctxT(t)
	ack, err := h.Workspace.Slash(ctx, Requester, createText)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	m := h.scrape(t)
	if !strings.Contains(m, `credbot_queue_depth{queue="inbox"} 1`) {
		t.Errorf("the waiting command is not in the inbox depth:\n%s", grep(m, "credbot_queue"))
	}
	if regexp.MustCompile(`credbot_queue_oldest_age_seconds\{queue="inbox"\} 0\n`).MatchString(m) {
		// The entry was recorded at least a few µs ago; 0 means not measured.
		t.Errorf("the oldest inbox entry has no age:\n%s", grep(m, "credbot_queue"))
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A request waiting for approval is counted as pending; once approved with
// no mint worker to take it, it waits in the mint queue, which shows its
// depth and age: what the queue-age alert watches.
func TestMetricsShowPendingRequestsAndWaitingMints(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_MINT_WORKERS": "0"})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	if m := h.scrapeUntil(t, ctx, "credbot_pending_requests 1"); !strings.Contains(m, "credbot_pending_requests 1\n") {
		t.Fatalf("the pending request is not counted:\n%s", grep(m, "credbot_pending"))
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	m := h.scrapeUntil(t, ctx, `credbot_queue_depth{queue="mint"} 1`)
	for _, want := range []string{"credbot_pending_requests 0\n", `credbot_queue_depth{queue="mint"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s\n%s", want, grep(m, "credbot_"))
		}
	}
	if regexp.MustCompile(`credbot_queue_oldest_age_seconds\{queue="mint"\} 0\n`).MatchString(m) || !strings.Contains(m, `credbot_queue_oldest_age_seconds{queue="mint"}`) {
		t.Errorf("the waiting mint job has no age:\n%s", grep(m, "credbot_queue"))
	}
}

// A Slack request refused for its signature is timed under its status, apart
// from the answered ones.
func TestMetricsTimeRefusedSlackRequests(t *testing.T) {
	h := start(t, nil)
	req, err := http.NewRequest(http.MethodPost, h.Workspace.BotURL+"/slack/commands", strings.NewReader("command=%2Fcredbot&text=list"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("X-Slack-Signature", "v0=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	if m := h.scrape(t); !strings.Contains(m, `credbot_slack_ack_duration_seconds_count{kind="command",status="401"} 1`) {
		t.Errorf("/metrics does not time the refused request:\n%s", grep(m, "credbot_slack_ack"))
	}
}
