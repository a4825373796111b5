package app

import (
	"strings"
	"testing"
	"time"
)

// Every configuration problem is reported at once, each naming its variable
// and what it takes; values that look right to a person but are not what
// Slack takes are refused with what to put instead.
func TestConfigReportsEveryProblemAtOnceWithHints(t *testing.T) {
	env := map[string]string{
		"CREDBOT_PENDING_TTL": "soon", "CREDBOT_CLAIM_WINDOW": "-5m", "CREDBOT_WORKERS": "many",
		"CREDBOT_LOG_LEVEL": "verbose", "BTP_VERIFY_CREDENTIALS": "yes",
	}
	_, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"CREDBOT_PENDING_TTL", "CREDBOT_CLAIM_WINDOW", "CREDBOT_WORKERS", "CREDBOT_LOG_LEVEL", "BTP_VERIFY_CREDENTIALS: \"yes\" is not true or false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not report %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "CREDBOT_RETENTION") {
		t.Errorf("a variable that was not set is reported: %v", err)
	}

	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{
			"SLACK_BOT_TOKEN": "xapp-1-A0-123-abc", "SLACK_APP_TOKEN": "xoxb-123", "CREDBOT_APPROVAL_CHANNEL": "#approvals",
			"CREDBOT_AUDIT_CHANNEL": "audit", "REDIS_URL": "redis://127.0.0.1:6379/0",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("a misplaced token and a channel name passed")
	}
	for _, want := range []string{
		"SLACK_BOT_TOKEN: an app-level token (xapp-…) was given where the bot token (xoxb-…) belongs",
		"SLACK_APP_TOKEN: not an app-level token",
		`CREDBOT_APPROVAL_CHANNEL: "#approvals" is a channel name, not a channel ID`,
		`CREDBOT_AUDIT_CHANNEL: "audit" is not a channel ID`,
		"CREDBOT_SECRET_KEY is not set", "CREDBOT_AUDIT_KEY is not set",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not say %q:\n%v", want, err)
		}
	}

	// LoadConfig adds every bad BTP setting to the list, not only the first,
	// each once, and never the assertion it was given.
	env = map[string]string{
		"CREDBOT_WORKERS": "many", "BTP_CLI_SERVER_URL": "cli.btp.cloud.sap", "BTP_PROTOCOL_VERSION": "latest",
		"BTP_GLOBALACCOUNT": "03760ecf-9d89-4189-a92a-1c7efed09298", "BTP_ASSERTION": "eyJ-assertion-secret",
	}
	_, err = LoadConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad BTP settings accepted")
	}
	for _, want := range []string{
		`CREDBOT_WORKERS: "many"`, "SLACK_BOT_TOKEN is not set",
		`btp: BTP_CLI_SERVER_URL "cli.btp.cloud.sap" must be an absolute http(s) URL`,
		`btp: BTP_PROTOCOL_VERSION "latest" must look like v`,
		`btp: BTP_GLOBALACCOUNT "03760ecf-9d89-4189-a92a-1c7efed09298" must be the global account's subdomain`,
		"btp: a JWT assertion login needs the custom IdP (BTP_IDP)",
	} {
		if n := strings.Count(err.Error(), want); n != 1 {
			t.Errorf("LoadConfig reports %q %d times, want once:\n%v", want, n, err)
		}
	}
	if strings.Contains(err.Error(), "assertion-secret") {
		t.Errorf("the error shows BTP_ASSERTION:\n%v", err)
	}
}

// New credentials are verified unless an operator says otherwise (issue 12 §5).
func TestCredentialVerificationIsOnUnlessTurnedOff(t *testing.T) {
	for v, want := range map[string]bool{"": true, "true": true, "1": true, "false": false, "0": false} {
		cfg, err := ConfigFromEnv(func(k string) string {
			return map[string]string{"BTP_VERIFY_CREDENTIALS": v}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.BTP.VerifyCredentials != want {
			t.Errorf("BTP_VERIFY_CREDENTIALS=%q: verify %v, want %v", v, cfg.BTP.VerifyCredentials, want)
		}
	}
}

// The break-glass settings are checked at startup: the reason pattern must be
// a Go regexp that cannot pass an empty reason, the durations positive (down
// to seconds), the escalation target an ID.
func TestBreakglassConfigIsCheckedAtStartup(t *testing.T) {
	for pattern, want := range map[string]string{
		`INC-(`: "CREDBOT_BREAKGLASS_REASON_PATTERN: \"INC-(\" is not a Go regular expression",
		`.*`:    "CREDBOT_BREAKGLASS_REASON_PATTERN: \".*\" matches an empty reason",
	} {
		_, err := ConfigFromEnv(func(k string) string {
			return map[string]string{"CREDBOT_BREAKGLASS_REASON_PATTERN": pattern, "CREDBOT_BREAKGLASS_REVIEW": "0s"}[k]
		})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "CREDBOT_BREAKGLASS_REVIEW") {
			t.Errorf("pattern %q: %v", pattern, err)
		}
	}
	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{"CREDBOT_BREAKGLASS_LIFETIME": "45s", "CREDBOT_BREAKGLASS_REVIEW": "2s",
			"CREDBOT_BREAKGLASS_REASON_PATTERN": `^CHG[0-9]{7}`, "CREDBOT_BREAKGLASS_ESCALATION": "@oncall-lead"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BreakglassLifetime != 45*time.Second || cfg.BreakglassReview != 2*time.Second || !cfg.BreakglassReasonPattern.MatchString("CHG0001234: db") {
		t.Errorf("read %v %v %v", cfg.BreakglassLifetime, cfg.BreakglassReview, cfg.BreakglassReasonPattern)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `CREDBOT_BREAKGLASS_ESCALATION: "@oncall-lead" is a name, not an ID`) {
		t.Errorf("Validate: %v", err)
	}
}
