package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/credbot/credbot/internal/store"
)

// Doctor runs every check a replica depends on against the configuration in
// the environment, prints a checklist with a fix for each failure, and
// returns an error when anything failed. It changes nothing but a short-lived
// health key in Redis.
func Doctor(ctx context.Context, getenv func(string) string, w io.Writer) error {
	d := &doctor{w: w}
	fmt.Fprintln(w, "credbot doctor: checking the configuration in this environment")
	fmt.Fprintln(w)

	cfg, err := ConfigFromEnv(getenv)
	err = errors.Join(err, cfg.Validate()) // every problem at once
	// The sealing key has its own line below, with its own fix.
	err = without(err, func(e error) bool { return cfg.SecretKey != "" && strings.HasPrefix(e.Error(), "CREDBOT_SECRET_KEY:") })
	d.check("configuration", err, "", func() string { return "every variable is set and valid" },
		"set or correct the variables named (see README, Configuration)")
	if cfg.SecretKey != "" {
		sealer, err := approval.ParseSealerKey(cfg.SecretKey)
		d.check("sealing key (CREDBOT_SECRET_KEY)", err, "", func() string { return "current key id " + sealer.KeyID() },
			"set it to base64 of 32 random bytes: openssl rand -base64 32 (keep previous keys after a comma while rotating)")
	}

	pol, err := policy.Load(ctx, policy.Options{Dir: cfg.PolicyDir, Logger: slog.New(slog.DiscardHandler)})
	d.check("policy ("+cfg.PolicyDir+")", err, "", func() string { ok, detail := pol.Health(); _ = ok; return detail },
		"fix the files: go run ./cmd/bot policy test "+cfg.PolicyDir+" shows what is wrong")

	d.redis(ctx, cfg)
	var routed []string
	if pol != nil {
		routed = pol.RouteChannels()
	}
	d.slack(ctx, cfg, routed)
	d.btp(ctx, cfg)

	fmt.Fprintln(w)
	if d.failed > 0 {
		fmt.Fprintf(w, "%d of %d checks failed.\n", d.failed, d.checks)
		return fmt.Errorf("doctor: %d of %d checks failed", d.failed, d.checks)
	}
	fmt.Fprintf(w, "All %d checks passed.\n", d.checks)
	return nil
}

// without drops from errors.Join's list of problems those drop matches.
func without(err error, drop func(error) bool) error {
	var all []error
	var flatten func(error)
	flatten = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok && isJoin(e, j.Unwrap()) {
			for _, inner := range j.Unwrap() {
				flatten(inner)
			}
			return
		}
		if e != nil && !drop(e) {
			all = append(all, e)
		}
	}
	flatten(err)
	return errors.Join(all...)
}

// isJoin tells errors.Join's lists (one problem a line) from an error that
// wraps several with words of its own (fmt.Errorf with two %w).
func isJoin(e error, inner []error) bool {
	msgs := make([]string, len(inner))
	for i, x := range inner {
		msgs[i] = x.Error()
	}
	return e.Error() == strings.Join(msgs, "\n")
}

type doctor struct {
	w              io.Writer
	checks, failed int
}

// check prints one line: ✔ with what was found, or ✘ with the error and
// the fix (fixFor's advice when it knows the error, else fix).
func (d *doctor) check(name string, err error, dep string, ok func() string, fix string) {
	d.checks++
	if err == nil {
		fmt.Fprintf(d.w, "✔ %s: %s\n", name, ok())
		return
	}
	d.failed++
	fmt.Fprintf(d.w, "✘ %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n    "))
	if dep != "" {
		if f := fixFor(dep, err); f != "" {
			fix = f
		}
	}
	if fix != "" {
		fmt.Fprintf(d.w, "    fix: %s\n", fix)
	}
}

func (d *doctor) redis(ctx context.Context, cfg Config) {
	if cfg.RedisURL == "" {
		return // reported by the configuration check
	}
	shown := "REDIS_URL"
	if u, err := url.Parse(cfg.RedisURL); err == nil {
		shown = u.Redacted()
	}
	rdb, err := NewRedis(cfg.RedisURL, 0)
	if err != nil {
		d.check("redis", errors.New("REDIS_URL does not parse (its text is not shown: it may hold a password)"), "", nil,
			"REDIS_URL takes redis://[user:password@]host:port/db, rediss://…, or redis-sentinel://…?master_name=…")
		return
	}
	defer rdb.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := store.New(cctx, rdb, cfg.KeyPrefix)
	if err == nil {
		err = st.Writable(cctx, "doctor")
	}
	d.check("redis", err, "redis", func() string { return "takes writes at " + shown }, "")
	if err != nil {
		return
	}
	on, err := st.AOF(cctx)
	if err == nil && !on {
		err = unmet("Redis does not append writes to a log (appendonly no)")
	}
	d.check("redis persistence", err, "redis_aof", func() string { return "append-only file on" }, "")
}

// slack checks the bot token, its scopes, and that the bot is a member of
// every channel it posts to: those configured and those routes.yaml names.
func (d *doctor) slack(ctx context.Context, cfg Config, routed []string) {
	if cfg.SlackBotToken == "" {
		return
	}
	side := newSlackSide(cfg, outboundClient(cfg), slog.New(slog.DiscardHandler))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	who, err := side.api.AuthTest(cctx)
	d.check("slack bot token", err, "slack", func() string { return fmt.Sprintf("bot user %s in team %s", who.UserID, who.TeamID) }, "")
	if err != nil {
		return
	}
	if cfg.SlackAppToken != "" {
		err := socketModeOpens(cctx, cfg)
		d.check("Socket Mode (SLACK_APP_TOKEN)", err, "socket_mode", func() string { return "apps.connections.open accepts the app-level token" }, "")
	}
	granted, err := tokenScopes(cctx, cfg)
	var missing []string
	if err == nil {
		for _, s := range slackapi.BotScopes {
			if !slices.Contains(granted, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			err = unmet("the token lacks %s", strings.Join(missing, ", "))
		}
	}
	d.check("slack scopes", err, "", func() string { return fmt.Sprintf("all %d the code uses", len(slackapi.BotScopes)) },
		"reinstall the app from manifests/ (it asks for every scope the code uses) and copy the new bot token")
	channels := []struct{ env, id string }{
		{"CREDBOT_APPROVAL_CHANNEL", cfg.ApprovalChannel}, {"CREDBOT_ESCALATION_CHANNEL", cfg.EscalationChannel}, {"CREDBOT_AUDIT_CHANNEL", cfg.AuditChannel},
		{"CREDBOT_BREAKGLASS_CHANNEL", cfg.BreakglassChannel}, {"CREDBOT_BREAKGLASS_ESCALATION", cfg.BreakglassEscalation},
	}
	for _, id := range routed {
		channels = append(channels, struct{ env, id string }{"routes.yaml channel", id})
	}
	seen := map[string]bool{}
	for _, ch := range channels {
		if ch.id == "" || seen[ch.id] || !channelIDRE.MatchString(ch.id) { // a user id is a DM: nothing to join
			continue
		}
		seen[ch.id] = true
		member, name, err := side.api.ChannelMember(cctx, ch.id)
		if err == nil && !member {
			err = unmet("the bot is not a member of %s (#%s), so it cannot post there", ch.id, name)
		}
		d.check(ch.env+" "+ch.id, err, "channel:", func() string { return "#" + name + ": the bot is a member" }, "")
	}
}

// socketModeOpens asks Slack for a Socket Mode URL with the app-level token,
// as a replica does before it connects: it fails with invalid_auth for a
// wrong token and missing_scope without connections:write. The URL it
// returns is not used; Slack lets it expire.
func socketModeOpens(ctx context.Context, cfg Config) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.SlackAPIURL+"apps.connections.open", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.SlackAppToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return fmt.Errorf("apps.connections.open: %w", err)
	}
	defer resp.Body.Close()
	var answer struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer); err != nil {
		return fmt.Errorf("apps.connections.open: HTTP %d, not Slack's JSON answer", resp.StatusCode)
	}
	if !answer.OK {
		return fmt.Errorf("apps.connections.open: %s", answer.Error)
	}
	return nil
}

// tokenScopes asks Slack which scopes the bot token has (auth.test answers
// them in its X-OAuth-Scopes header).
func tokenScopes(ctx context.Context, cfg Config) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.SlackAPIURL+"auth.test", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.SlackBotToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth.test: %w", err)
	}
	resp.Body.Close()
	h := resp.Header.Get("X-OAuth-Scopes")
	if h == "" {
		return nil, errors.New("Slack did not say which scopes the token has (no X-OAuth-Scopes header)")
	}
	var out []string
	for _, s := range strings.Split(h, ",") {
		out = append(out, strings.TrimSpace(s))
	}
	return out, nil
}

func (d *doctor) btp(ctx context.Context, cfg Config) {
	bc := cfg.BTP
	bc.Logger = slog.New(slog.DiscardHandler)
	c, err := btp.New(bc)
	if err != nil {
		d.check("btp", err, "btp", nil, "")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = c.Health(cctx)
	d.check("BTP", err, "btp", func() string {
		return fmt.Sprintf("logged in to global account %s at %s", bc.GlobalAccount, or(bc.ServerURL, btp.DefaultServerURL))
	}, "")
}
