package app

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/redis/go-redis/v9"
)

// doctorEnv is the environment of a real deployment of the harness's bot.
func (h *harness) doctorEnv(redisURL string) map[string]string {
	return map[string]string{
		"SLACK_BOT_TOKEN": h.Config.SlackBotToken, "SLACK_API_URL": h.Config.SlackAPIURL,
		"SLACK_SIGNING_SECRET": h.Config.SigningSecret, "CREDBOT_APPROVAL_CHANNEL": h.Config.ApprovalChannel,
		"REDIS_URL": redisURL, "CREDBOT_KEY_PREFIX": h.Config.KeyPrefix, "CREDBOT_POLICY_DIR": h.Config.PolicyDir,
		"CREDBOT_SECRET_KEY": approval.NewRandomKey(), "CREDBOT_AUDIT_KEY": h.Config.AuditKey,
		"BTP_CLI_SERVER_URL": h.BTP.URL(), "BTP_GLOBALACCOUNT": btptest.DefaultGlobalAccount,
		"BTP_USERNAME": btptest.DefaultUser, "BTP_PASSWORD": btptest.DefaultPassword,
	}
}

func doctorRun(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Doctor(context.Background(), func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func TestDoctorPassesAHealthyDeploymentAndSaysHowToFixABrokenOne(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), true) // with AOF, as in production
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	h := startWith(t, map[string]string{"REDIS_URL": srv.URL()}, Deps{})
	h.Slack.SetScopes(slackapi.BotScopes...)
	env := h.doctorEnv(srv.URL())
	out, err := doctorRun(t, env)
	if err != nil || strings.Contains(out, "✘") {
		t.Fatalf("a healthy deployment: %v\n%s", err, out)
	}
	t.Logf("healthy:\n%s", out)

	// Socket Mode: the app-level token is checked too (apps.connections.open).
	env = h.doctorEnv(srv.URL())
	env["SLACK_APP_TOKEN"] = "xapp-1-A0CREDBOT-1-doctor"
	h.Slack.EnableSocketMode(env["SLACK_APP_TOKEN"])
	if out, err := doctorRun(t, env); err != nil || !strings.Contains(out, "✔ Socket Mode") {
		t.Errorf("a working app-level token: %v\n%s", err, out)
	}
	h.Slack.EnableSocketMode("xapp-1-another-app")
	out, err = doctorRun(t, env)
	if err == nil || !strings.Contains(out, "✘ Socket Mode") || !strings.Contains(out, "invalid_auth") || !strings.Contains(out, "check SLACK_APP_TOKEN") {
		t.Errorf("a refused app-level token: %v\n%s", err, out)
	}
	if strings.Contains(out, env["SLACK_APP_TOKEN"]) {
		t.Error("doctor printed the app-level token")
	}
	h.Slack.EnableSocketMode("")
	env = h.doctorEnv(srv.URL())

	// Everything that can go wrong, at once.
	h.Slack.SetScopes("commands", "chat:write")
	h.Slack.RemoveBot(localApprovals, true)
	env["CREDBOT_SECRET_KEY"] = "c2hvcnQ="
	// Redis asks for a password the URL does not have.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.ConfigSet(context.Background(), "requirepass", "right").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.ConfigSet(context.Background(), "requirepass", "").Err() })
	env["REDIS_URL"] = strings.Replace(srv.URL(), "redis://", "redis://default:wrong@", 1)
	env["CREDBOT_POLICY_DIR"] = t.TempDir()
	env["BTP_PASSWORD"] = "wrong"
	out, err = doctorRun(t, env)
	if err == nil {
		t.Fatalf("doctor passed a broken deployment:\n%s", out)
	}
	t.Logf("broken:\n%s", out)
	for _, want := range []string{
		"✘ sealing key", "openssl rand -base64 32",
		"✘ policy", "policy test",
		"✘ redis", "WRONGPASS",
		"✘ slack scopes", "lacks", "reinstall the app",
		"✘ CREDBOT_APPROVAL_CHANNEL", "/invite @credbot",
		"✘ BTP", "BTP_PASSWORD",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor's output lacks %q", want)
		}
	}
	if n := strings.Count(out, "must be 32 bytes"); n != 1 {
		t.Errorf("the sealing key's problem is reported %d times, want once (on its own line)", n)
	}
	if strings.Contains(out, "wrong@") || strings.Contains(out, h.Config.SlackBotToken) {
		t.Error("doctor printed a secret")
	}
	// The password is missing from REDIS_URL altogether.
	out, _ = doctorRun(t, h.doctorEnv(srv.URL()))
	if !strings.Contains(out, "✘ redis") || !strings.Contains(out, "NOAUTH") || !strings.Contains(out, "REDIS_URL has none") {
		t.Errorf("a REDIS_URL without the password Redis asks for is not explained:\n%s", out)
	}

	// A Redis without an append-only file, and a break-glass channel the bot
	// is not in: each named, with its fix.
	plain, err := redistest.StartServer(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Stop)
	h.Slack.SetScopes(slackapi.BotScopes...)
	h.Slack.RemoveBot(localApprovals, false)
	h.Slack.RemoveBot("C0BREAKGLASS", true)
	env = h.doctorEnv(plain.URL())
	env["CREDBOT_BREAKGLASS_CHANNEL"] = "C0BREAKGLASS"
	out, err = doctorRun(t, env)
	if err == nil {
		t.Errorf("doctor passed a Redis without AOF:\n%s", out)
	}
	for _, want := range []string{
		"✘ redis persistence", "appendonly yes",
		"✘ CREDBOT_BREAKGLASS_CHANNEL C0BREAKGLASS", "/invite @credbot",
		"✔ CREDBOT_APPROVAL_CHANNEL", "✔ BTP",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor's output lacks %q:\n%s", want, out)
		}
	}

	// A server that refuses our protocol version: the fix says what to do.
	old := btptest.NewServer(btptest.Options{MinProtocolVersion: "v9.0.0"})
	t.Cleanup(old.Close)
	env = h.doctorEnv(srv.URL())
	env["BTP_CLI_SERVER_URL"] = old.URL()
	out, _ = doctorRun(t, env)
	if !strings.Contains(out, "✘ BTP") || !strings.Contains(out, "BTP_PROTOCOL_VERSION") {
		t.Errorf("an outdated protocol version is not explained:\n%s", out)
	}
}
