package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
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
	// go-redis's own messages come through the same logger.
	out.Reset()
	redisLogger{log: log}.Printf(context.Background(), "redis: dial %s failed", "127.0.0.1:1")
	if !json.Valid(bytes.TrimSpace(out.Bytes())) || !strings.Contains(out.String(), "dial 127.0.0.1:1 failed") {
		t.Fatalf("go-redis line: %q", out.String())
	}
}

func TestRedisURLErrorsNeverShowThePassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:s3cret@host:6379:x/0",
		"redis://user:s3cret@[::1/0",
		"redis-sentinel://user:s3cret@h1:26379:x,h2:26379/0?master_name=m",
		"redis-cluster://user:s3cret@h1:7000:x,h2:7001",
	} {
		_, err := NewRedis(u)
		if err == nil {
			t.Errorf("%s parsed", strings.Replace(u, "s3cret", "…", 1))
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// The whole loop, with every secret a deployment has configured: none of them
// appears in any log line, at DEBUG.
func TestNoSecretInAnyLogLine(t *testing.T) {
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
	h := startWith(t, map[string]string{"REDIS_URL": url}, Deps{})
	ctx := ctxT(t)
	ack, err := h.Workspace.Slash(ctx, Requester, createText)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals })
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	approve := h.click(t, ctx, Approver, msg, handlers.ActionApprove)
	secret := h.revealSecret(t, ctx, h.waitDM(t, ctx))
	logs := h.logs.String()
	// The lines about a request say which request, whose click and which.
	var delivered, issued map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch l["msg"] {
		case "request delivered":
			delivered = l
		case "request issued":
			issued = l
		}
	}
	if delivered == nil || delivered["request_id"] == nil || delivered["user"] != Requester.ID || delivered["action"] != handlers.ActionReveal || delivered["level"] != "INFO" {
		t.Errorf("the delivery's line: %v", delivered)
	}
	if issued == nil || issued["request_id"] == nil || issued["mint_job"] == nil {
		t.Errorf("the mint's line: %v", issued)
	}
	for name, v := range map[string]string{
		"the Redis password": redisPassword, "the Slack bot token": h.Config.SlackBotToken,
		"the signing secret": h.Config.SigningSecret, "the BTP password": btptest.DefaultPassword,
		"the command's response_url": ack.ResponseURL, "the click's response_url": approve.URL,
		"the revealed secret": secret,
	} {
		if strings.Contains(logs, v) {
			t.Errorf("%s is in the logs", name)
		}
	}
}
