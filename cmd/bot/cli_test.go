package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// --help names every command and every variable of README's configuration
// table: the two cannot drift apart.
func TestHelpListsEveryCommandAndEveryDocumentedVariable(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \\|")
	name := regexp.MustCompile("`([A-Z_]+)`")
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		for _, v := range name.FindAllStringSubmatch(m[1], -1) {
			n++
			if !strings.Contains(out.String(), " "+v[1]+" ") {
				t.Errorf("--help does not mention %s", v[1])
			}
		}
	}
	if n < 30 {
		t.Fatalf("found only %d variables in README's configuration table", n)
	}
	for _, c := range []string{"serve", "local", "doctor", "policy test", "audit verify", "load", "pause", "version"} {
		if !strings.Contains(out.String(), "  "+c+" ") {
			t.Errorf("--help does not list %q", c)
		}
	}
}

// Conventions of a well-kept Go tool: --help and --version work everywhere
// and exit 0; unknown commands and stray arguments are usage errors (exit 2),
// never served as if they were not there.
func TestTheCommandLineFollowsConventions(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}, {"help", "doctor"}, {"--version"}, {"version"},
		{"local", "--help"}, {"serve", "-h"}, {"policy", "test", "--help"}, {"doctor", "--help"},
		{"audit", "--help"}, {"audit", "verify", "--help"}, {"audit", "trim", "-h"}, {"help", "audit"}} {
		if err := run(ctx, args); err != nil {
			t.Errorf("%v: %v, want nil", args, err)
		}
	}
	if err := run(ctx, []string{"load", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("load -h: %v, want flag.ErrHelp (exit 0)", err)
	}
	for _, args := range [][]string{{"frobnicate"}, {"serve", "audit", "verify"}, {"local", "extra"}, {"doctor", "x"}, {"policy"}, {"policy", "test", "a", "b"},
		{"audit"}, {"audit", "frobnicate"}, {"load-driver", "x"}, {"audit", "verify", "extra"}, {"audit", "trim", "--keep", "1"}} {
		var ue usageError
		if err := run(ctx, args); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
	if v := version(); !strings.HasPrefix(v, "credbot ") || !strings.Contains(v, "revision ") {
		t.Errorf("version %q", v)
	}
}

// serve reports every configuration problem in one go, before it reaches
// Redis, Slack or BTP: the log settings, the values, what Validate refuses,
// REDIS_URL's form (never its password) and the BTP settings. It used to take
// three restarts to see them all: the log level first, then the values, then
// the rest; and the BTP settings one per restart.
func TestServeReportsEveryConfigurationProblemAtOnce(t *testing.T) {
	for k, v := range map[string]string{
		"CREDBOT_LOG_LEVEL": "verbose", "BTP_VERIFY_CREDENTIALS": "yes", "CREDBOT_APPROVAL_CHANNEL": "#approvals",
		"SLACK_BOT_TOKEN": "xapp-1-A0-123-abc", "CREDBOT_PENDING_TTL": "soon", "CREDBOT_CLAIM_WINDOW": "-5m",
		"REDIS_URL": "redis://user:s3cret@host:6379:x/0", "BTP_GLOBALACCOUNT": "", "BTP_USERNAME": "", "BTP_PASSWORD": "btp-pa55word",
		"BTP_CLI_SERVER_URL": "cli.btp.cloud.sap", "BTP_PROTOCOL_VERSION": "2.106.1", "BTP_ASSERTION": "", "BTP_IDP": "",
		"BTP_TLS_CLIENT_CERTIFICATE": "", "BTP_TLS_CLIENT_KEY": "", "BTP_TLS_IDP_URL": "",
	} {
		t.Setenv(k, v)
	}
	err := run(context.Background(), []string{"serve"})
	if err == nil {
		t.Fatal("serve started with a broken configuration")
	}
	for _, want := range []string{
		`CREDBOT_LOG_LEVEL: "verbose"`, `BTP_VERIFY_CREDENTIALS: "yes"`, `CREDBOT_APPROVAL_CHANNEL: "#approvals" is a channel name`,
		"SLACK_BOT_TOKEN: an app-level token (xapp-…)", `CREDBOT_PENDING_TTL: "soon"`, `CREDBOT_CLAIM_WINDOW: "-5m"`,
		"REDIS_URL",
		// every BTP problem, not only the first (issue 11)
		`BTP_CLI_SERVER_URL "cli.btp.cloud.sap" must be an absolute http(s) URL`,
		`BTP_PROTOCOL_VERSION "2.106.1" must look like v`,
		"the global account subdomain (BTP_GLOBALACCOUNT) is required",
		"no login configured: set BTP_USERNAME and BTP_PASSWORD",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not report %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows REDIS_URL's password:\n%v", err)
	}
	if strings.Contains(err.Error(), "pa55word") {
		t.Errorf("the error shows BTP_PASSWORD:\n%v", err)
	}
	if errors.As(err, new(usageError)) {
		t.Errorf("a configuration problem is a usage error (exit 2), want exit 1:\n%v", err)
	}
	if strings.Contains(err.Error(), "btp: btp:") {
		t.Errorf("a BTP error is prefixed twice:\n%v", err)
	}
}

// serve logs JSON by default (what a log pipeline takes), including the bare
// image entrypoint with a bot token; the interactive commands log text.
func TestServeLogsJSONByDefault(t *testing.T) {
	token := func(k string) string { return map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}[k] }
	none := func(string) string { return "" }
	for _, c := range []struct {
		cmd    string
		getenv func(string) string
		want   string
	}{
		{"serve", none, "json"}, {"", token, "json"}, {"", none, "text"}, {"local", token, "text"},
		{"doctor", token, "text"}, {"audit", token, "text"},
	} {
		if got := defaultLogFormat(c.cmd, c.getenv); got != c.want {
			t.Errorf("credbot %s: default log format %s, want %s", c.cmd, got, c.want)
		}
	}
}
