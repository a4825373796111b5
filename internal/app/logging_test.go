package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/redis/go-redis/v9"
)

func TestLogFormatAndLevelAreChecked(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, bad := range [][]string{{"CREDBOT_LOG_LEVEL", "verbose"}, {"CREDBOT_LOG_FORMAT", "logfmt"}} {
		if _, err := NewLogger(env(bad...), &bytes.Buffer{}, "json"); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v, want a refusal naming the variable", bad[0], bad[1], err)
		}
	}
	var out bytes.Buffer
	log, err := NewLogger(env("CREDBOT_LOG_LEVEL", "warn"), &out, "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "request_id", "r0123456789ab")
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line["msg"] != "shown" || line["request_id"] != "r0123456789ab" {
		t.Fatalf("want exactly the WARN line as JSON, got %q (%v)", out.String(), err)
	}
}

// go-redis's own messages (here: a dial that keeps failing) come out of the
// process's logger, in its format, not as go-redis's own printf lines.
func TestGoRedisMessagesGoThroughTheLogger(t *testing.T) {
	var out syncBuffer
	if _, err := NewLogger(func(string) string { return "" }, &out, "json"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.SetLogger(redisLogger{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping reached a closed port")
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("not a JSON line: %q", line) // a line from another test's go-redis counts too
			continue
		}
		if d, _ := l["detail"].(string); l["msg"] == "redis client" && strings.Contains(d, "failed to dial") && strings.Contains(d, addr) {
			found = true
		}
	}
	if !found {
		t.Fatalf("go-redis's dial failure is not in the logger's output:\n%s", out.String())
	}
}

func TestRedisURLErrorsNeverShowThePassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:s3cret@host:6379:x/0",
		"redis://user:s3cret@[::1/0",
		"redis-sentinel://user:s3cret@h1:26379:x,h2:26379/0?master_name=m",
		"redis-cluster://user:s3cret@h1:7000:x,h2:7001",
	} {
		_, err := NewRedis(u, 0)
		if err == nil {
			t.Errorf("%s parsed", strings.Replace(u, "s3cret", "…", 1))
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// The whole loop, over HTTP and over Socket Mode, with every secret a
// deployment has configured: none of them appears in any log line, at DEBUG.
// The lines about a request say which request, whose click and which; each
// change of state is one INFO line; "user" is always a Slack user.
func TestNoSecretInAnyLogLine(t *testing.T) {
	t.Run("http", func(t *testing.T) { noSecretInAnyLogLine(t, false) })
	t.Run("socket", func(t *testing.T) { noSecretInAnyLogLine(t, true) })
}

func noSecretInAnyLogLine(t *testing.T, socket bool) {
	srv, err := redistest.StartServer(t.TempDir(), false)
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	const redisPassword = "r3dis-pa55word-only-in-the-url"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	if err := admin.ConfigSet(context.Background(), "requirepass", redisPassword).Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	url := strings.Replace(srv.URL(), "redis://", "redis://default:"+redisPassword+"@", 1)
	env := map[string]string{"REDIS_URL": url, "CREDBOT_SECRET_KEY": approval.NewRandomKey(), "CREDBOT_AUDIT_KEY": approval.NewRandomKey()}
	if socket {
		env["SLACK_APP_TOKEN"] = "xapp-1-A0CREDBOT-1-s3cret-app-token"
	}
	h := startWith(t, env, Deps{})
	ctx := ctxT(t)
	if socket {
		if err := h.Slack.WaitSocketConnections(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := h.Workspace.Slash(ctx, Requester, createText)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals })
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	approve := h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	secret := h.revealSecret(t, ctx, h.waitDM(t, ctx))
	logs := h.logs.String()
	var delivered, issued map[string]any
	var lines []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		lines = append(lines, l)
		switch l["msg"] {
		case "request delivered":
			delivered = l
		case "request issued":
			issued = l
		}
	}
	if delivered == nil || delivered["request_id"] == nil || delivered["user"] != Requester.ID || delivered["action"] != blockkit.ActionReveal ||
		delivered["trigger"] == nil || delivered["level"] != "INFO" {
		t.Fatalf("the delivery's line: %v", delivered)
	}
	if issued == nil || issued["request_id"] == nil || issued["mint_job"] == nil {
		t.Errorf("the mint's line: %v", issued)
	}
	id := delivered["request_id"].(string)

	// One INFO line per change of state; in the order of the audit trail by
	// the request's version they carry (workers on other goroutines may log
	// them out of order: the mint worker can log MINTING before the approve
	// worker logs APPROVED).
	var trail strings.Builder
	if _, err := h.App.Store.ExportAudit(ctx, &trail); err != nil {
		t.Fatal(err)
	}
	var changes []string
	logged := map[float64]string{}
	for _, line := range strings.Split(strings.TrimSpace(trail.String()), "\n") {
		var rec struct{ Entry approval.AuditEntry }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		e := rec.Entry
		if e.RequestID == id && e.Event == "" && e.From != e.To {
			changes = append(changes, string(e.To))
		}
	}
	for _, l := range lines {
		if l["request_id"] == id && l["level"] == "INFO" && l["msg"] != "audit entry" && l["to"] != nil && l["from"] != l["to"] {
			v, _ := l["version"].(float64)
			if prev, dup := logged[v]; dup {
				t.Errorf("two INFO lines for version %v of %s: %s and %s", v, id, prev, l["to"])
			}
			logged[v] = l["to"].(string)
		}
		if u, ok := l["user"].(string); ok && !userIDRE.MatchString(u) {
			t.Errorf("%q logs user=%q, which is not a Slack user id", l["msg"], u)
		}
		// A line about the request from the Slack side says whose command
		// or click it was, and which.
		if l["request_id"] == id && l["inbox_entry"] != nil && (l["user"] == nil || l["trigger"] == nil) {
			t.Errorf("a line about %s lacks its user or trigger: %v", id, l)
		}
	}
	var inOrder []string
	for _, v := range slices.Sorted(maps.Keys(logged)) {
		inOrder = append(inOrder, logged[v])
	}
	if strings.Join(inOrder, " ") != strings.Join(changes, " ") || len(changes) < 5 {
		t.Errorf("INFO lines for the changes of state, by version %v, audit trail %v", inOrder, changes)
	}

	secrets := map[string]string{
		"the Redis password": redisPassword, "the Slack bot token": h.Config.SlackBotToken,
		"the signing secret": h.Config.SigningSecret, "the BTP password": btptest.DefaultPassword,
		"the command's response_url": ack.ResponseURL, "the click's response_url": approve.URL,
		"the revealed secret": secret,
	}
	for i, k := range strings.Split(env["CREDBOT_SECRET_KEY"]+","+env["CREDBOT_AUDIT_KEY"], ",") {
		secrets[fmt.Sprintf("key %d of CREDBOT_SECRET_KEY/CREDBOT_AUDIT_KEY", i)] = k
	}
	if socket {
		secrets["the app-level token"] = env["SLACK_APP_TOKEN"]
	}
	for name, v := range secrets {
		if v == "" {
			t.Fatalf("%s is empty: the test checks nothing", name)
		}
		if strings.Contains(logs, v) {
			t.Errorf("%s is in the logs", name)
		}
	}
}
