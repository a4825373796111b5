package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// slackSide is the Slack half of the wiring: one Web API client (one set of
// per-method rate-limit waits for the whole replica) shared by the notifier,
// the handlers and the identity directory the policy also uses.
type slackSide struct {
	client *slack.Client
	api    *slackapi.WebAPI
	dir    *slackapi.Directory
}

func newSlackSide(cfg Config, hc *http.Client, log *slog.Logger) *slackSide {
	opts := []slack.Option{slack.OptionAPIURL(cfg.SlackAPIURL), slack.OptionHTTPClient(hc)}
	if cfg.SlackAppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.SlackAppToken))
	}
	client := slack.New(cfg.SlackBotToken, opts...)
	api := slackapi.NewWebAPI(client, log)
	return &slackSide{
		client: client, api: api,
		dir: slackapi.NewDirectory(api, slackapi.DirectoryConfig{AllowedTeams: cfg.AllowedTeams}),
	}
}

func (s *slackSide) notifier(cfg Config, pol *policy.Engine, log *slog.Logger) *slackapi.Notifier {
	bgChannel, bgEscalation := cfg.breakglassAlerts()
	return slackapi.NewNotifier(s.api, cfg.ApprovalChannel, slackapi.NotifierOptions{
		Approvers: pol, Router: pol, Directory: s.dir, EscalationChannel: cfg.EscalationChannel, Logger: log,
		BreakglassChannel: bgChannel, BreakglassEscalation: bgEscalation,
	})
}

func (s *slackSide) handlerConfig(cfg Config, log *slog.Logger, ready func(context.Context) (bool, any), pol *policy.Engine, once func(context.Context, string, time.Duration) (bool, error)) handlers.Config {
	secret := cfg.SigningSecret
	if cfg.SlackAppToken != "" {
		// Socket Mode: nothing arrives over HTTP, so serve no Request URLs at all.
		secret = ""
	}
	return handlers.Config{
		SigningSecret: secret, ResponseHosts: cfg.ResponseHosts, Logger: log, Ready: ready,
		API: s.api, Directory: s.dir, Policy: pol, Once: once, RotationGrace: cfg.RotationGrace,
		UserOrigin: cfg.BTPUserOrigin,
	}
}

// runSocketMode keeps one Socket Mode connection open until ctx ends. slack-go
// reconnects by itself; only a refused app token ends a run, and then we try
// again with backoff (the token may be rotated in place) while /readyz fails.
func (s *slackSide) runSocketMode(ctx context.Context, h *handlers.Server, log *slog.Logger) {
	wait := time.Second
	for ctx.Err() == nil {
		client := socketmode.New(s.client, socketmode.OptionLog(slog.NewLogLogger(log.Handler(), slog.LevelDebug)))
		err := h.RunSocketMode(ctx, client)
		if ctx.Err() != nil || errors.Is(err, handlers.ErrClosed) {
			return
		}
		log.Error("socket mode stopped; retrying", "error", err, "in", wait)
		if !sleep(ctx, wait) {
			return
		}
		wait = min(wait*2, 5*time.Minute)
	}
}

// splitList reads a comma-separated setting.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
