// Package handlers is credbot's Slack side: signed HTTP ingress, the command
// grammar, Block Kit rendering and the Web API notifier. Handlers are thin: they
// verify, parse, ack within Slack's 3 seconds and hand slow work to a goroutine
// that calls the approval service.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// Lifecycle is what the handlers need from the approval service.
type Lifecycle interface {
	Submit(ctx context.Context, in approval.Submission) (*approval.Request, error)
	Decide(ctx context.Context, id, user string, approve bool) (approval.Outcome, error)
	Reveal(ctx context.Context, id, user string) (approval.Revelation, error)
	Undeliverable(ctx context.Context, id string, cause error) error
	Status(ctx context.Context, id string) (*approval.Request, error)
}

// Config configures the HTTP handlers.
type Config struct {
	SigningSecret string
	// ResponseHosts are the hosts a response_url may point at; Slack's own
	// (hooks.slack.com) is always allowed. Anything else is refused, so that no
	// secret is ever posted to a URL we do not trust.
	ResponseHosts []string
	HTTPClient    *http.Client
	Logger        *slog.Logger
	Now           func() time.Time
	// Ready reports whether the bot can serve (Redis answers, policy loaded).
	Ready func(ctx context.Context) error
	// WorkTimeout bounds the work done after an ack.
	WorkTimeout time.Duration
}

// Server serves Slack's Request URLs.
type Server struct {
	life   Lifecycle
	cfg    Config
	verify verifier
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewServer returns the handlers; Close waits for work started after acks.
func NewServer(life Lifecycle, cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.WorkTimeout <= 0 {
		cfg.WorkTimeout = 2 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{life: life, cfg: cfg, verify: verifier{secret: cfg.SigningSecret, now: cfg.Now}, log: cfg.Logger, ctx: ctx, cancel: cancel}
}

// Close waits for in-flight work, then cancels what is left.
func (s *Server) Close() {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.WorkTimeout):
	}
	s.cancel()
	s.wg.Wait()
}

// Handler routes Slack's Request URLs and the probes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slack/commands", s.signed(s.command))
	mux.HandleFunc("POST /slack/interactivity", s.signed(s.interaction))
	mux.HandleFunc("POST /slack/events", s.signed(s.event))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	return mux
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// signed verifies Slack's signature over the raw body before anything parses it.
func (s *Server) signed(next func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, status, err := s.verify.read(w, r)
		if err != nil {
			s.log.Warn("rejected slack request", "path", r.URL.Path, "status", status, "err", err, "remote", r.RemoteAddr)
			http.Error(w, http.StatusText(status), status)
			return
		}
		next(w, r, body)
	}
}

var (
	userIDRE    = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	requestIDRE = regexp.MustCompile(`^r[0-9a-f]{12}$`)
)

func (s *Server) command(w http.ResponseWriter, _ *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if form.Get("ssl_check") == "1" {
		return
	}
	user, team, responseURL := form.Get("user_id"), form.Get("team_id"), form.Get("response_url")
	if !userIDRE.MatchString(user) {
		http.Error(w, "bad user", http.StatusBadRequest)
		return
	}
	cmd, err := ParseCommand(form.Get("text"))
	if err != nil {
		ephemeral(w, fmt.Sprintf(":warning: %s\n\n%s", escape(strings.TrimPrefix(err.Error(), "usage: ")), Usage))
		return
	}
	switch cmd.Verb {
	case "help":
		ephemeral(w, Usage)
	case "create":
		ephemeral(w, "Submitting your request…")
		s.async(func(ctx context.Context) {
			req, err := s.life.Submit(ctx, approval.Submission{
				User: user, Team: team, Scope: cmd.Scope, Name: cmd.Name, ReadOnly: cmd.ReadOnly, Reason: cmd.Reason,
			})
			if err != nil {
				s.respond(ctx, responseURL, ":warning: "+s.userMessage(err, "submit"))
				return
			}
			s.respond(ctx, responseURL, fmt.Sprintf("Request `%s` for %s in %s is waiting for approval. You will get a DM when it is decided.",
				req.ID, escape(req.Name), escape(scopeLabel(req.Scope))))
		})
	case "status":
		if len(cmd.Args) != 1 || !requestIDRE.MatchString(cmd.Args[0]) {
			ephemeral(w, ":warning: usage: /credbot status <request-id>")
			return
		}
		ephemeral(w, "Looking it up…")
		s.async(func(ctx context.Context) {
			r, err := s.life.Status(ctx, cmd.Args[0])
			if err == nil && r.Requester != user {
				// Requests are not secret, but keep them to the people involved.
				err = &approval.UserError{Msg: "you can only see the status of your own requests", Err: approval.ErrForbidden}
			}
			if err != nil {
				s.respond(ctx, responseURL, ":warning: "+s.userMessage(err, "status"))
				return
			}
			s.respond(ctx, responseURL, fmt.Sprintf("Request `%s` (%s in %s): %s", r.ID, escape(r.Name), escape(scopeLabel(r.Scope)), statusLine(r, approval.QuorumStatus{Have: len(r.Approvals)})))
		})
	}
}

func (s *Server) interaction(w http.ResponseWriter, _ *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		return // acknowledged, nothing to do
	}
	user := cb.User.ID
	act := cb.ActionCallback.BlockActions[0]
	if !userIDRE.MatchString(user) || !requestIDRE.MatchString(act.Value) {
		return
	}
	id, responseURL := act.Value, cb.ResponseURL
	switch act.ActionID {
	case ActionApprove, ActionDeny:
		approve := act.ActionID == ActionApprove
		s.async(func(ctx context.Context) {
			out, err := s.life.Decide(ctx, id, user, approve)
			if err != nil {
				s.respond(ctx, responseURL, ":warning: "+s.userMessage(err, "decide"))
				return
			}
			s.respond(ctx, responseURL, out.Message)
		})
	case ActionReveal:
		s.async(func(ctx context.Context) {
			rv, err := s.life.Reveal(ctx, id, user)
			if err != nil {
				s.respond(ctx, responseURL, ":warning: "+s.userMessage(err, "reveal"))
				return
			}
			if err := s.post(ctx, responseURL, &slack.WebhookMessage{
				ResponseType: slack.ResponseTypeEphemeral, Text: "Your one-time secret (shown once)",
				Blocks: &slack.Blocks{BlockSet: revealBlocks(rv)},
			}); err != nil {
				// The secret is gone from our store and was not shown: revoke it.
				s.log.Error("deliver revealed secret", "request", id, "err", err)
				if err := s.life.Undeliverable(ctx, id, err); err != nil {
					s.log.Error("revoke undeliverable secret", "request", id, "err", err)
				}
			}
		})
	}
}

func (s *Server) event(w http.ResponseWriter, _ *http.Request, body []byte) {
	var env struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if env.Type == "url_verification" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(env.Challenge))
	}
}

// async runs slow work after the ack, bounded in time, tracked for Close.
func (s *Server) async(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WorkTimeout)
		defer cancel()
		f(ctx)
	}()
}

// userMessage turns an error into text for the clicker; unexpected errors are
// logged and summarised, never shown raw.
func (s *Server) userMessage(err error, op string) string {
	var ue *approval.UserError
	if errors.As(err, &ue) {
		return escape(ue.Msg)
	}
	s.log.Error(op, "err", err)
	return "something went wrong on our side; please try again or ask an admin"
}

func (s *Server) respond(ctx context.Context, responseURL, text string) {
	if err := s.post(ctx, responseURL, &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text}); err != nil {
		s.log.Warn("respond", "err", err)
	}
}

// post sends an ephemeral reply to a response_url, but only to a trusted host.
func (s *Server) post(ctx context.Context, responseURL string, msg *slack.WebhookMessage) error {
	u, err := url.Parse(responseURL)
	if err != nil || !s.trustedResponseHost(u) {
		return fmt.Errorf("refusing response_url on untrusted host")
	}
	return slack.PostWebhookCustomHTTPContext(ctx, responseURL, s.cfg.HTTPClient, msg)
}

func (s *Server) trustedResponseHost(u *url.URL) bool {
	if u.Scheme == "https" && u.Host == "hooks.slack.com" {
		return true
	}
	for _, h := range s.cfg.ResponseHosts {
		if u.Host == h {
			return true
		}
	}
	return false
}

func ephemeral(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": text})
}
