package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// commands are credbot's subcommands, for --help.
var commands = []struct{ name, args, about string }{
	{"serve", "", "serve Slack with the configuration in the environment (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)"},
	{"local", "", "run the whole loop on embedded defaults (fake Slack, BTP emulator, in-process Redis) and print what each person saw"},
	{"doctor", "", "check every dependency of the configuration in the environment and say how to fix what fails"},
	{"policy test", "[DIR]", "run the policy's decision table (policy_test.yaml; default DIR: policies)"},
	{"audit verify", "[--expect-head HEAD]", "check the MAC'd audit trail in REDIS_URL (needs CREDBOT_AUDIT_KEY); prints its head"},
	{"audit export", "[--since TIME|ID]", "write the audit trail as JSON lines"},
	{"audit trim", "--keep N", "remove all but the last N audit entries, through a signed checkpoint"},
	{"load", "[-n 200] [-c 20] | -burst [-n 20000] [-c 1000]", "drive whole loops (or a burst of commands) through the local bot and print figures"},
	{"btp-emulator", "[--listen ADDR]", "serve the btp CLI server emulator"},
	{"pause", "DURATION", "wait, then exit 0 (the chart's preStop hook; the image has no sleep)"},
	{"version", "", "print the version and VCS revision"},
}

// variables are the environment credbot reads, for --help; README's
// configuration table says more (a test holds the two together).
var variables = []struct{ name, about string }{
	{"SLACK_BOT_TOKEN", "bot token (xoxb-…); unset: local mode"},
	{"SLACK_SIGNING_SECRET", "verifies HTTP requests from Slack"},
	{"SLACK_APP_TOKEN", "app-level token (xapp-…): Socket Mode instead of HTTP"},
	{"SLACK_API_URL", "Web API base (tests, local mode)"},
	{"CREDBOT_APPROVAL_CHANNEL", "channel id (C…) where requests are posted for approval (routes.yaml in the policy may route a scope elsewhere)"},
	{"CREDBOT_ESCALATION_CHANNEL", "channel id told about requests that waited too long"},
	{"CREDBOT_AUDIT_CHANNEL", "channel id that gets a copy of the audit trail"},
	{"CREDBOT_BREAKGLASS_CHANNEL", "channel id where break-glass is announced (the audit channel)"},
	{"CREDBOT_BREAKGLASS_ESCALATION", "channel or user id told of every break-glass and escalation"},
	{"CREDBOT_BREAKGLASS_LIFETIME", "longest (and default) break-glass credential life (4h)"},
	{"CREDBOT_BREAKGLASS_REVIEW", "an unacknowledged break-glass escalates after, and every (1h)"},
	{"CREDBOT_BREAKGLASS_REASON_PATTERN", "Go regexp a break-glass reason must match (a ticket: INC-1234)"},
	{"CREDBOT_ASSIGN_MAX_FOR", "longest --for of /credbot assign, a role collection (8h)"},
	{"CREDBOT_BTP_USER_ORIGIN", "IdP origin key of the BTP user a Slack e-mail names (sap.default)"},
	{"CREDBOT_ALLOWED_TEAMS", "workspace/enterprise ids whose members are served"},
	{"CREDBOT_LISTEN_ADDR", "HTTP address (:3000)"},
	{"REDIS_URL", "redis://, rediss://, redis-sentinel://…?master_name=, redis-cluster://"},
	{"CREDBOT_KEY_PREFIX", "prefix of every Redis key (credbot)"},
	{"CREDBOT_SECRET_KEY", "seals secrets at rest: base64 of 32 bytes, then previous keys"},
	{"CREDBOT_AUDIT_KEY", "MACs the audit trail: base64 of 32 bytes, then previous keys"},
	{"CREDBOT_AUDIT_RETAIN", "audit entries Redis keeps (1000000)"},
	{"CREDBOT_AUDIT_WEBHOOK_URL", "https URL that gets every audit entry, signed"},
	{"CREDBOT_AUDIT_WEBHOOK_SECRET", "signs the audit webhook's requests"},
	{"CREDBOT_POLICY_DIR", "Casbin model, policy, hierarchy, quorum (policies)"},
	{"CREDBOT_PENDING_TTL", "how long a request waits for approval (24h)"},
	{"CREDBOT_CLAIM_WINDOW", "how long an issued secret waits for its reveal (15m)"},
	{"CREDBOT_MAX_LIFETIME", "longest (and default) credential lifetime (90d)"},
	{"CREDBOT_ROTATION_GRACE", "a rotated credential lives on this long after the new one is revealed (24h)"},
	{"CREDBOT_REMIND_AFTER", "first approver reminder (1h)"},
	{"CREDBOT_ESCALATE_AFTER", "the reminder that escalates (3)"},
	{"CREDBOT_WORKERS", "inbox workers per replica (8)"},
	{"CREDBOT_MINT_WORKERS", "mint-queue workers per replica (8)"},
	{"CREDBOT_RESCUE_AFTER", "a stuck mint job is taken over after (2m)"},
	{"CREDBOT_SWEEP_INTERVAL", "how often deadlines are swept (5s)"},
	{"CREDBOT_DRAIN_TIMEOUT", "how long a replica that got SIGTERM finishes its work (20s)"},
	{"CREDBOT_MAX_PENDING_PER_USER", "requests one person may have waiting (5)"},
	{"CREDBOT_COMMANDS_PER_MINUTE", "slash commands one person may run a minute (20)"},
	{"CREDBOT_LOOKUP_CACHE", "how long list/get answers are kept (30s)"},
	{"CREDBOT_INVENTORY_INTERVAL", "how often one replica lists every scope at BTP for credentials credbot did not issue (1h; off)"},
	{"CREDBOT_RETENTION", "how long finished requests' records are kept (400d)"},
	{"CREDBOT_LOG_LEVEL", "DEBUG, INFO, WARN, ERROR"},
	{"CREDBOT_LOG_FORMAT", "json or text"},
	{"BTP_CLI_SERVER_URL", "the btp CLI server (https://cli.btp.cloud.sap)"},
	{"BTP_GLOBALACCOUNT", "global account subdomain"},
	{"BTP_USERNAME", "the bot's technical user"},
	{"BTP_PASSWORD", "its password (password login)"},
	{"BTP_IDP", "custom identity provider"},
	{"BTP_ASSERTION", "JWT assertion (assertion login)"},
	{"BTP_TLS_CLIENT_CERTIFICATE", "X.509 login: client certificate (PEM or path)"},
	{"BTP_TLS_CLIENT_KEY", "X.509 login: its key (PEM or path)"},
	{"BTP_TLS_IDP_URL", "X.509 login: the IAS tenant"},
	{"BTP_PROTOCOL_VERSION", "btp CLI server protocol version"},
	{"BTP_VERIFY_CREDENTIALS", "true (default) or false: fetch a token with each new credential before offering it"},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "credbot hands out SAP BTP API credentials from Slack, after an approval your policy defines.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: credbot [COMMAND] [ARGS]   (no command: serve if SLACK_BOT_TOKEN is set, else local)")
	fmt.Fprintln(w, "       credbot COMMAND --help")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.about)
		if c.args != "" {
			fmt.Fprintf(w, "  %-14s   %s %s\n", "", c.name, c.args)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment (README.md, Configuration, says more):")
	for _, v := range variables {
		fmt.Fprintf(w, "  %-30s %s\n", v.name, v.about)
	}
}

// commandUsage is one command's --help.
func commandUsage(w io.Writer, name string) bool {
	found := false
	for _, c := range commands {
		if c.name == name || strings.HasPrefix(c.name, name+" ") {
			if !found {
				fmt.Fprintf(w, "Usage:\n")
			}
			found = true
			fmt.Fprintf(w, "  credbot %s %s\n      %s\n", c.name, c.args, c.about)
		}
	}
	return found
}

// buildRevision is the commit an image was built from (the Dockerfile sets it
// with -ldflags -X; a build inside a git checkout records it by itself).
var buildRevision string

// version is the module version and VCS revision the binary was built from.
func version() string {
	v, rev, dirty := "(devel)", or(buildRevision, "unknown"), ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = ", modified"
				}
			}
		}
	}
	return fmt.Sprintf("credbot %s (revision %s%s, %s)", v, rev, dirty, runtime.Version())
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
