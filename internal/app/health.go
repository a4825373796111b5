package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/btp"
	"github.com/prometheus/client_golang/prometheus"
)

// Readiness that means working. Every dependency of a replica is checked in
// the background (every healthEvery) and on demand by `credbot doctor`:
//
//   - critical ones decide /readyz: Redis takes writes, the Slack bot token is
//     valid, a policy is loaded. Without them the replica cannot take work.
//   - degraded ones keep it ready, so that requests still queue, but are
//     reported by name: BTP cannot log in or does not answer, the bot is not in
//     a channel it posts to, Redis has no append-only log, Socket Mode is
//     disconnected, the policy files are broken (the last good policy decides).
//
// Each change of a dependency's state is one log line, and
// credbot_dependency_up{dependency} follows it.

// healthEvery is how often the background checks run. Slack's auth.test and
// conversations.info are Tier 3/4 methods; one replica calls each a few times a
// minute at most.
const healthEvery = 30 * time.Second

// errNotYet is a check's answer when it cannot tell yet (Socket Mode making
// its first connection): the dependency is left out of the report, the
// metric and the log until it can, so that every start does not log a
// failure and its recovery.
var errNotYet = errors.New("not known yet")

// dependency is one thing a replica needs.
type dependency struct {
	name string
	// check returns nil when the dependency works; critical reports whether
	// this failure stops the replica from taking work.
	check func(ctx context.Context) (err error, critical bool)
	// fix tells an operator what to do when it fails.
	fix func(err error) string
}

// depState is a dependency's last result, as /readyz shows it.
type depState struct {
	OK       bool      `json:"ok"`
	Critical bool      `json:"critical,omitempty"`
	Error    string    `json:"error,omitempty"`
	Fix      string    `json:"fix,omitempty"`
	Since    time.Time `json:"since"`
}

type health struct {
	deps []dependency
	log  *slog.Logger
	up   *prometheus.GaugeVec

	mu    sync.Mutex
	state map[string]depState
	ran   bool
}

func newHealth(deps []dependency, log *slog.Logger, reg prometheus.Registerer) *health {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credbot_dependency_up",
		Help: "1 when a dependency of this replica works, 0 when it does not (see /readyz for why).",
	}, []string{"dependency"})
	reg.MustRegister(up)
	return &health{deps: deps, log: log, up: up, state: map[string]depState{}}
}

// refresh runs every check at once, each bounded to 5 s.
func (h *health) refresh(ctx context.Context) {
	type result struct {
		err      error
		critical bool
	}
	results := make([]result, len(h.deps))
	var wg sync.WaitGroup
	for i, d := range h.deps {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			results[i].err, results[i].critical = d.check(cctx)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // shutting down: what failed is our own cancellation
	}
	now := time.Now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, d := range h.deps {
		r := results[i]
		if errors.Is(r.err, errNotYet) {
			continue
		}
		next := depState{OK: r.err == nil, Since: now}
		if r.err != nil {
			next.Critical, next.Error = r.critical, r.err.Error()
			if d.fix != nil {
				next.Fix = d.fix(r.err)
			}
		}
		prev, seen := h.state[d.name]
		if seen && prev.OK == next.OK && prev.Error == next.Error {
			continue // unchanged: keep its since, say nothing
		}
		h.state[d.name] = next
		h.up.WithLabelValues(d.name).Set(map[bool]float64{true: 1}[next.OK])
		switch {
		case !next.OK:
			level := slog.LevelWarn
			if next.Critical {
				level = slog.LevelError
			}
			h.log.Log(ctx, level, "dependency failing", "dependency", d.name, "critical", next.Critical, "error", next.Error, "fix", next.Fix)
		case seen:
			h.log.Info("dependency works again", "dependency", d.name, "was", prev.Error)
		}
	}
	h.ran = true
}

func (h *health) run(ctx context.Context) {
	every(ctx, healthEvery, func() { h.refresh(ctx) })
}

// report is /readyz's answer: ready unless a critical dependency fails.
func (h *health) report() (ready bool, body map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ready = h.ran
	deps := make(map[string]depState, len(h.state))
	var failing, degraded []string
	for name, st := range h.state {
		deps[name] = st
		switch {
		case st.OK:
		case st.Critical:
			ready = false
			failing = append(failing, name)
		default:
			degraded = append(degraded, name)
		}
	}
	body = map[string]any{"ready": ready, "dependencies": deps}
	if len(failing) > 0 {
		body["failing"] = failing
	}
	if len(degraded) > 0 {
		body["degraded"] = degraded
	}
	if !h.ran {
		body["reason"] = "the first checks have not finished"
	}
	return ready, body
}

// failing returns the error of a dependency that currently fails, or nil.
func (h *health) failing(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.state[name]; ok && !st.OK {
		return errors.New(st.Error)
	}
	return nil
}

// slackTokenErrors are auth.test answers that mean the bot token itself is
// wrong: no retry helps, and nothing the bot does can work.
var slackTokenErrors = []string{"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope", "not_allowed_token_type"}

func isSlackTokenError(err error) bool {
	for _, e := range slackTokenErrors {
		if strings.Contains(err.Error(), e) {
			return true
		}
	}
	return false
}

// fixFor is the advice for the common failures, shared by /readyz, the logs
// and `credbot doctor`.
func fixFor(dep string, err error) string {
	msg := err.Error()
	switch {
	case dep == "redis" && strings.Contains(msg, "WRONGPASS"):
		return "REDIS_URL has the wrong user or password (WRONGPASS): check the Secret it comes from"
	case dep == "redis" && strings.Contains(msg, "NOAUTH"):
		return "Redis asks for a password and REDIS_URL has none (NOAUTH): put it in REDIS_URL (redis://:PASSWORD@host:6379/0, or USER:PASSWORD@ with ACL users), from the Secret it comes from"
	case dep == "redis" && strings.Contains(msg, "READONLY"):
		return "REDIS_URL points at a read-only replica: point it at the primary (or use redis-sentinel://)"
	case dep == "redis":
		return "check that Redis runs and that REDIS_URL reaches it from this pod"
	case dep == "redis_aof":
		return "turn on Redis's append-only file (appendonly yes, appendfsync everysec): without it a Redis restart loses what credbot acknowledged since the last snapshot"
	case dep == "slack" && strings.Contains(msg, "invalid_auth"), dep == "slack" && strings.Contains(msg, "not_authed"):
		return "SLACK_BOT_TOKEN is not a valid bot token (xoxb-…): copy it again from the app's OAuth & Permissions page"
	case dep == "slack" && (strings.Contains(msg, "token_revoked") || strings.Contains(msg, "account_inactive")):
		return "the app was uninstalled or its token revoked: reinstall it and update SLACK_BOT_TOKEN"
	case dep == "slack" && strings.Contains(msg, "missing_scope"):
		return "the token lacks a scope the manifest asks for: reinstall the app from manifests/ so that it gets every scope"
	case dep == "slack":
		return "check that this pod can reach " + "slack.com (egress, proxy)"
	case strings.HasPrefix(dep, "channel:") && strings.Contains(msg, "not a member"):
		return "invite the bot to the channel: /invite @credbot in it"
	case strings.HasPrefix(dep, "channel:") && (strings.Contains(msg, "channel_not_found") || strings.Contains(msg, "missing_scope")):
		return "the channel id is wrong, or the bot cannot see it: use the channel's id (C…, from its details), invite the bot, and make sure the app has channels:read and groups:read"
	case dep == "btp" && (errors.Is(err, btp.ErrProtocolOutdated) || strings.Contains(msg, "status 412")):
		return "the btp CLI server refuses this protocol version: update credbot or set BTP_PROTOCOL_VERSION to what the server asks for"
	case dep == "btp" && strings.Contains(msg, "wrong user name, password"):
		return "BTP refused the login: check BTP_USERNAME and BTP_PASSWORD (or the certificate / assertion), and that the user logs in at the identity provider BTP_IDP names"
	case dep == "btp":
		return "check the BTP_* login settings and that this pod can reach BTP_CLI_SERVER_URL; requests queue meanwhile"
	case dep == "socket_mode":
		return "check SLACK_APP_TOKEN (xapp-…, with connections:write) and that this pod can reach wss-primary.slack.com"
	case dep == "policy":
		return "fix the files in CREDBOT_POLICY_DIR (go run ./cmd/bot policy test DIR shows what is wrong); the last good policy decides meanwhile"
	}
	return ""
}

// unmet is an error for a check that is not met, with its own words.
func unmet(format string, a ...any) error { return fmt.Errorf(format, a...) }
