package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMETroubleshootingGivesTheSameAdvice keeps the README's
// troubleshooting table and the bot in step: every fix that /readyz, the log
// and `credbot doctor` give (fixFor) is in the README word for word.
func TestREADMETroubleshootingGivesTheSameAdvice(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README may set names in code (`REDIS_URL`); the words are what count.
	readme := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "`", "")), " ")
	for _, c := range []struct{ dep, err string }{
		{"redis", "WRONGPASS invalid username-password pair or user is disabled."},
		{"redis", "NOAUTH Authentication required."},
		{"redis", "READONLY You can't write against a read only replica."},
		{"redis", "dial tcp 10.0.0.1:6379: i/o timeout"},
		{"redis_aof", "Redis does not append writes to a log (appendonly no)"},
		{"slack", "auth.test: invalid_auth"},
		{"slack", "auth.test: not_authed"},
		{"slack", "auth.test: token_revoked"},
		{"slack", "auth.test: account_inactive"},
		{"slack", "auth.test: missing_scope"},
		{"slack", "Post \"https://slack.com/api/auth.test\": dial tcp: lookup slack.com: no such host"},
		{"channel:", "the bot is not a member of C0123456789 (#approvals), so it cannot post there"},
		{"channel:", "conversations.info #approvals: channel_not_found"},
		{"btp", "btp login: status 412 [correlation id x]"},
		{"btp", "btp login: status 401: wrong user name, password, passcode or assertion [correlation id x]"},
		{"btp", "btp login: dial tcp: lookup cli.btp.cloud.sap: no such host"},
		{"socket_mode", "Socket Mode is not connected"},
		{"policy", "policy.csv:3: unknown action"},
	} {
		fix := fixFor(c.dep, errors.New(c.err))
		if fix == "" {
			t.Errorf("fixFor(%q, %q) gives no advice", c.dep, c.err)
			continue
		}
		if !strings.Contains(readme, fix) {
			t.Errorf("README.md (Troubleshooting) does not give the advice for %s %q:\n  %s", c.dep, c.err, fix)
		}
	}
}

// The advice follows the error, not digits that happen to be in it: a port
// or a correlation id containing "412" is not an outdated protocol version.
func TestBTPAdviceIsNotFooledByDigitsInAnAddress(t *testing.T) {
	err := errors.New(`btp login: context deadline exceeded while the login is retried; its last attempt: Post "http://10.0.0.1:41234/login/v2.106.1": dial tcp 10.0.0.1:41234: connect: connection refused`)
	if fix := fixFor("btp", err); strings.Contains(fix, "BTP_PROTOCOL_VERSION") {
		t.Errorf("an unreachable server on port 41234 is advised as an outdated protocol: %s", fix)
	}
}
