package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/logctx"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // closed, and replaced, by each Write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
	return s.b.Write(p)
}

// waitFor returns once the logs hold substr.
func (s *syncBuffer) waitFor(ctx context.Context, substr string) error {
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), substr) {
			s.mu.Unlock()
			return nil
		}
		if s.wrote == nil {
			s.wrote = make(chan struct{})
		}
		wrote := s.wrote
		s.mu.Unlock()
		select {
		case <-wrote:
		case <-ctx.Done():
			return fmt.Errorf("no log line with %q: %w", substr, ctx.Err())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	*Local
	redis *redistest.Redis
	logs  *syncBuffer
}

// start runs the bot over HTTP with a real Redis, the BTP emulator and the fake
// Slack, all stopped when the test ends.
func start(t *testing.T, env map[string]string) *harness {
	t.Helper()
	return startWith(t, env, Deps{})
}

func startWith(t *testing.T, env map[string]string, deps Deps) *harness {
	t.Helper()
	if u := env["REDIS_URL"]; u != "" {
		return startOn(t, redistest.Attach(t, u), env, deps) // a test's own server (e.g. with AOF)
	}
	return startOn(t, redistest.New(t), env, deps)
}

// startOn runs the bot with its keys under r.Prefix; env["REDIS_URL"], when
// set, is how the bot reaches that Redis (e.g. through a Sentinel).
func startOn(t *testing.T, r *redistest.Redis, env map[string]string, deps Deps) *harness {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(logctx.Handler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	vars := map[string]string{
		"REDIS_URL": r.URL, "CREDBOT_KEY_PREFIX": r.Prefix, "CREDBOT_POLICY_DIR": "../../policies",
		"CREDBOT_SWEEP_INTERVAL": "50ms",
	}
	for k, v := range env {
		vars[k] = v
	}
	l, err := StartLocal(context.Background(), func(k string) string { return vars[k] }, log, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	h := &harness{Local: l, redis: r, logs: logs}
	// After every test: no plaintext secret in any Redis key or value, or log line.
	t.Cleanup(func() {
		if l.BTP != nil && !t.Failed() {
			h.assertSecretNowhere(t, l.BTP.Secrets()...)
		}
	})
	return h
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const createText = `create --subaccount 11111111-2222-4333-8444-555555555555 --name ci-payments --reason "CI pipeline <!channel>"`

// request sends the slash command and returns the approval message.
func (h *harness) request(t *testing.T, ctx context.Context) slackfake.Message {
	t.Helper()
	ack, err := h.Workspace.Slash(ctx, Requester, createText)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals
	})
	if err != nil {
		t.Fatal(err)
	}
	// The requester's confirmation comes once the request is fully recorded.
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL }); err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(post.Channel, post.TS)
	return m
}

// click presses a button as p and returns the bot's answer. Deny opens a
// form for a reason: click submits it empty, as a denier who gives none.
func (h *harness) click(t *testing.T, ctx context.Context, p slackfake.Person, m slackfake.Message, action string) slackfake.Call {
	t.Helper()
	if action == blockkit.ActionDeny {
		return h.deny(t, ctx, p, m, "")
	}
	ack, err := h.Workspace.Click(ctx, p, m, action)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("click %s by %s: %d %v", action, p.Name, ack.Status, err)
	}
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) waitDM(t *testing.T, ctx context.Context) slackfake.Message {
	t.Helper()
	dm, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(dm.Channel, dm.TS)
	return m
}

func TestRequestApproveRevealEndToEnd(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)

	msg := h.request(t, ctx)
	if !strings.Contains(msg.Blocks, "CI pipeline \\u003c!channel\\u003e") && !strings.Contains(msg.Blocks, "CI pipeline <!channel>") {
		t.Fatalf("reason missing from approval message: %s", msg.Blocks)
	}
	if !strings.Contains(msg.Blocks, `"type":"plain_text","text":"Reason: CI pipeline`) {
		t.Fatalf("the reason must be plain_text so that <!channel> pings nobody: %s", msg.Blocks)
	}
	value, _, err := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	if err != nil || !strings.HasPrefix(value, "r") || len(value) != 13 {
		t.Fatalf("approve button value %q (%v): want the request id and nothing else", value, err)
	}

	got := h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approver was told %s", got.Body)
	}
	dm := h.waitDM(t, ctx)

	creates := requestsOf(h.BTP, "create")
	if len(creates) != 1 {
		t.Fatalf("%d creates at BTP, want 1", len(creates))
	}
	want := map[string]string{"subaccount": btptest.DefaultSubaccount, "name": "ci-payments", "readOnly": "false"}
	for k, v := range want {
		if creates[0].Params[k] != v {
			t.Errorf("create param %s = %q, want %q (all: %v)", k, creates[0].Params[k], v, creates[0].Params)
		}
	}
	secrets := h.BTP.Secrets()
	if len(secrets) != 1 || secrets[0] == "" {
		t.Fatalf("emulator issued %d secrets", len(secrets))
	}
	secret := secrets[0]

	// The approval message shows the decision and has lost its buttons.
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	if strings.Contains(upd.Blocks, blockkit.ActionApprove) || !strings.Contains(upd.Blocks, `Approved by \u003c@`+Approver.ID) {
		t.Fatalf("approval message not updated: %s", upd.Blocks)
	}

	rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if !strings.Contains(rev.Body, secret) || !strings.Contains(rev.Body, `"response_type":"ephemeral"`) {
		t.Fatalf("reveal reply lacks the secret or is not ephemeral: %s", rev.Body)
	}
	if strings.Contains(rev.Body, `"replace_original":true`) {
		t.Fatal("reveal must not replace the DM notice")
	}
	again := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if strings.Contains(again.Body, secret) || !strings.Contains(again.Body, "already revealed") {
		t.Fatalf("second reveal: %s", again.Body)
	}

	// The secret was in exactly one Slack call: the ephemeral reveal reply.
	seen := 0
	for _, c := range h.Slack.Calls() {
		if strings.Contains(c.Body, secret) || strings.Contains(c.Params.Encode(), url.QueryEscape(secret)) || strings.Contains(fmt.Sprint(c.Params), secret) {
			seen++
			if c.URL != rev.URL {
				t.Errorf("secret leaked in %s call", c.Method)
			}
		}
	}
	if seen != 1 {
		t.Fatalf("secret in %d Slack calls, want exactly 1", seen)
	}
	h.assertSecretNowhere(t, secret)
}

// assertSecretNowhere scans every Redis key and value, and every log line.
func (h *harness) assertSecretNowhere(t *testing.T, secrets ...string) {
	t.Helper()
	h.Local.App.handlers.Close() // let in-flight work log what it logs
	dump := h.redis.Dump(t)
	if len(dump) == 0 {
		t.Fatal("no Redis keys to scan: wrong prefix?")
	}
	for _, s := range secrets {
		for k, v := range dump {
			if strings.Contains(k, s) || strings.Contains(v, s) {
				t.Errorf("secret found in Redis key %s", k)
			}
		}
		if strings.Contains(h.logs.String(), s) {
			t.Error("secret found in the logs")
		}
	}
}

func requestsOf(s *btptest.Server, action string) []btptest.Request {
	var out []btptest.Request
	for _, r := range s.Requests() {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

func TestForgedStaleAndOversizedRequestsHaveNoEffect(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	form := url.Values{"user_id": {Requester.ID}, "team_id": {"T0LOCAL"}, "command": {"/credbot"},
		"text": {createText}, "response_url": {h.Slack.NewResponseURL()}}
	body := []byte(form.Encode())
	now := time.Now().Unix()
	secret := h.Workspace.SigningSecret
	cases := []struct {
		name   string
		body   []byte
		ts     int64
		sig    func(ts string, b []byte) string
		status int
	}{
		{"forged signature", body, now, func(ts string, b []byte) string { return handlers.Sign("not-the-secret", ts, b) }, 401},
		{"tampered body", body, now, func(ts string, _ []byte) string { return handlers.Sign(secret, ts, []byte("text=help")) }, 401},
		{"timestamp 6 minutes old", body, now - 360, func(ts string, b []byte) string { return handlers.Sign(secret, ts, b) }, 401},
		{"timestamp 6 minutes ahead", body, now + 360, func(ts string, b []byte) string { return handlers.Sign(secret, ts, b) }, 401},
		{"no signature", body, now, func(string, []byte) string { return "" }, 401},
		{"body over 1 MiB", append(body, bytes.Repeat([]byte("a"), handlers.MaxBody)...), now, func(ts string, b []byte) string { return handlers.Sign(secret, ts, b) }, 413},
	}
	// What start-up wrote (queues, lease, last good policy, the audit
	// entries of the start and the policy load) is there before.
	before := h.redis.Dump(t)
	for _, path := range []string{"/slack/commands", "/slack/interactivity", "/slack/events"} {
		for _, c := range cases {
			ts := strconv.FormatInt(c.ts, 10)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.Workspace.BotURL+path, bytes.NewReader(c.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Slack-Request-Timestamp", ts)
			if s := c.sig(ts, c.body); s != "" {
				req.Header.Set("X-Slack-Signature", s)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: status %d, want %d", path, c.name, resp.StatusCode, c.status)
			}
		}
	}
	h.Local.App.handlers.Close()
	for _, c := range h.Slack.Calls() {
		startup := c.Method == "chat.postMessage" && c.Channel == localAudit &&
			(strings.Contains(c.Text(), "start by") || strings.Contains(c.Text(), "policy by")) // the audit mirror
		if c.Method != "auth.test" && c.Method != "conversations.info" && !startup { // and the readiness checks
			t.Errorf("a rejected request caused a Slack call: %s %s", c.Method, c.Text())
		}
	}
	for k, v := range h.redis.Dump(t) {
		// The liveness lease and the health check are rewritten all along.
		if was, ok := before[k]; (!ok || was != v) && !strings.Contains(k, ":alive:") && !strings.Contains(k, ":health:") {
			t.Errorf("rejected requests wrote Redis key %s", k)
		}
	}
}

func TestOwnAndUnauthorizedApprovalsAreRefused(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	for _, p := range []slackfake.Person{Requester, Outsider} {
		got := h.click(t, ctx, p, msg, blockkit.ActionApprove)
		if !strings.Contains(got.Body, ":warning:") {
			t.Errorf("%s's approve was not refused: %s", p.Name, got.Body)
		}
		got = h.click(t, ctx, p, msg, blockkit.ActionDeny)
		if !strings.Contains(got.Body, ":warning:") {
			t.Errorf("%s's deny was not refused: %s", p.Name, got.Body)
		}
	}
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StatePending || r.Version != 2 {
		t.Fatalf("request changed by refused clicks: %+v %v", r, err)
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates", n)
	}
	// The requester cannot reveal what was never issued, and the outsider cannot reveal at all.
	got := h.click(t, ctx, Outsider, msg, blockkit.ActionApprove)
	if strings.Contains(got.Body, "clientsecret") {
		t.Fatal("outsider got a secret")
	}
}

func TestDenyTellsRequesterAndMintsNothing(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	got := h.click(t, ctx, Approver, msg, blockkit.ActionDeny)
	if !strings.Contains(got.Body, "Denied") {
		t.Fatalf("approver told %s", got.Body)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "denied")
	}); err != nil {
		t.Fatal(err)
	}
	if late := h.click(t, ctx, Approver, msg, blockkit.ActionApprove); !strings.Contains(late.Body, "already denied") {
		t.Fatalf("approve after deny: %s", late.Body)
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates after a denial", n)
	}
}

func TestTwentyConcurrentApprovalsMintOnce(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	approvers := []slackfake.Person{Approver, {ID: "U0LOCALAP2", Name: "hedy"}, {ID: "U0LOCALADM", Name: "root"}}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack, err := h.Workspace.Click(ctx, approvers[i%len(approvers)], msg, blockkit.ActionApprove)
			if err != nil || ack.Status != 200 {
				t.Errorf("click: %d %v", ack.Status, err)
			}
		}()
	}
	wg.Wait()
	dm := h.waitDM(t, ctx)
	h.Local.App.handlers.Close()
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates at BTP, want exactly 1", n)
	}
	dms := 0
	for _, c := range h.Slack.Calls() {
		if c.Method == "chat.postMessage" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) {
			dms++
		}
	}
	if dms != 1 {
		t.Fatalf("%d reveal DMs, want 1", dms)
	}
	_ = dm
}

func TestLocalDemoCompletes(t *testing.T) {
	h := start(t, nil)
	var out bytes.Buffer
	if err := h.Demo(ctxT(t), &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "The whole loop worked.") {
		t.Fatal(out.String())
	}
}

// replay posts the very same signed request twice, as an attacker who captured
// it (or a retrying proxy) would, and returns both acks' bodies.
func (h *harness) replay(t *testing.T, ctx context.Context, path string, body []byte) [2]string {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := handlers.Sign(h.Workspace.SigningSecret, ts, body)
	var out [2]string
	for i := range out {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.Workspace.BotURL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replay %d: status %d", i, resp.StatusCode)
		}
		out[i] = string(b)
	}
	return out
}

func TestReplayedSignedRequestsDoNothingTwice(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	ru := h.Slack.NewResponseURL()
	form := url.Values{"user_id": {Requester.ID}, "team_id": {"T0LOCAL"}, "command": {"/credbot"},
		"text": {createText}, "response_url": {ru}, "trigger_id": {"77.88.replayed"}}
	acks := h.replay(t, ctx, "/slack/commands", []byte(form.Encode()))
	if !strings.Contains(acks[0], "Submitting") || acks[1] != "" {
		t.Fatalf("acks %q", acks)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ru }); err != nil {
		t.Fatal(err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals })
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)

	clickURL := h.Slack.NewResponseURL()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": Approver.ID, "team_id": "T0LOCAL"}, "team": map[string]any{"id": "T0LOCAL"},
		"trigger_id": "77.99.replayed", "response_url": clickURL,
		"container": map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel},
		"actions":   []map[string]any{{"type": "button", "block_id": "decide", "action_id": blockkit.ActionApprove, "value": id}},
	})
	acks = h.replay(t, ctx, "/slack/interactivity", []byte(url.Values{"payload": {string(payload)}}.Encode()))
	if acks[0] != "" || acks[1] != "" {
		t.Fatalf("click acks %q", acks)
	}
	if c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == clickURL }); err != nil || !strings.Contains(c.Body, "Approved") {
		t.Fatalf("approver told %q (%v)", c.Body, err)
	}
	h.waitDM(t, ctx)
	h.Local.App.handlers.Close()
	replies := countCalls(h.Slack, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == clickURL })
	if replies != 1 {
		t.Fatalf("the replayed click was handled %d times", replies)
	}
	requests := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.Params.Get("thread_ts") == ""
	})
	if requests != 1 || h.BTP.Count("create") != 1 {
		t.Fatalf("%d approval messages and %d creates from one replayed command and click", requests, h.BTP.Count("create"))
	}
}

func TestBrokenPolicyFileShowsInReadinessButKeepsServing(t *testing.T) {
	dir := shippedPolicyCopy(t, nil)
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": dir})
	ctx := ctxT(t)
	readyz := func() (int, string) {
		resp, err := http.Get(h.Workspace.BotURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := readyz()
	if code != 200 || !strings.Contains(body, `"policy": "`+h.App.Policy.Hash()) {
		t.Fatalf("readyz %d %q", code, body)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), []byte("p, U1, subaccount:*, create\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.App.Policy.Reload(ctx); err == nil {
		t.Fatal("a broken policy loaded")
	}
	h.App.health.refresh(ctx)
	code, body = readyz()
	if code != 200 || !strings.Contains(body, "broken") || !strings.Contains(body, "policy.csv:1") {
		t.Fatalf("readyz with a broken file: %d %q", code, body)
	}
	t.Logf("readyz: %q", body)
	// The last good policy still decides: the loop works.
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.waitDM(t, ctx)
}

func TestMetricsCountTransitionsAndPolicyHealth(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.waitDM(t, ctx)
	resp, err := http.Get(h.Workspace.BotURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`credbot_transitions_total{to="APPROVED"} 1`, `credbot_transitions_total{to="ISSUED"} 1`, "credbot_policy_"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRevealToAnUntrustedResponseURLTakesNothing(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": Requester.ID, "team_id": "T0LOCAL"}, "team": map[string]any{"id": "T0LOCAL"},
		"trigger_id": "12.34.untrusted", "response_url": "https://attacker.example/hook",
		"container": map[string]any{"type": "message", "message_ts": dm.TS, "channel_id": dm.Channel},
		"actions":   []map[string]any{{"type": "button", "block_id": "reveal", "action_id": blockkit.ActionReveal, "value": id}},
	})
	h.replay(t, ctx, "/slack/interactivity", []byte(url.Values{"payload": {string(payload)}}.Encode()))
	h.Local.App.handlers.Close()
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StateIssued {
		t.Fatalf("state %v %v: the secret was taken for a URL it could never be sent to", r.State, err)
	}
}

func TestLoadCommandRunsWholeLoops(t *testing.T) {
	h := start(t, nil)
	var out bytes.Buffer
	if err := h.Load(ctxT(t), 8, 4, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// Against a real redis-server, the server's own CPU is reported too.
	if !strings.Contains(out.String(), "whole loop") || !strings.Contains(out.String(), "BTP: 8 creates, 8 live credentials") ||
		!strings.Contains(out.String(), "redis-server: ") {
		t.Fatal(out.String())
	}
}
