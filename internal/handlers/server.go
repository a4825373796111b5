// Package handlers is credbot's Slack ingress: signed HTTP or Socket Mode, the
// command grammar, modals and the App Home tab, and the dispatch of each
// delivery to the lifecycle. What credbot posts is rendered by
// internal/blockkit and sent by internal/slackapi.
//
// Both transports feed the same three functions — HandleCommand,
// HandleInteraction and HandleEvent — which decide the ack and record any slow
// work in the inbox before it, so that every envelope is acknowledged well
// inside Slack's 3 seconds whichever way it came and nothing acknowledged is
// lost; RunWorkers does the recorded work on every replica.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/slack-go/slack"
)

// Lifecycle is what the handlers need from the approval service.
type Lifecycle interface {
	Submit(ctx context.Context, in approval.Submission) (*approval.Request, error)
	Breakglass(ctx context.Context, in approval.Submission) (*approval.Request, error)
	Review(ctx context.Context, id, user string, revoke bool) (approval.Outcome, error)
	Decide(ctx context.Context, id, user string, approve bool) (approval.Outcome, error)
	Deny(ctx context.Context, id, user, reason string) (approval.Outcome, error)
	Reveal(ctx context.Context, id, user string) (approval.Revelation, error)
	Undeliverable(ctx context.Context, id string, cause error) error
	Status(ctx context.Context, id string) (*approval.Request, error)
	Cancel(ctx context.Context, id, user string) (*approval.Request, error)
	DeleteOwn(ctx context.Context, id, user string) (*approval.Request, error)
	Rotate(ctx context.Context, in approval.Rotation) (*approval.Request, error)
	RetireOld(ctx context.Context, id, user string) (*approval.Request, error)
	Extend(ctx context.Context, id, user string, by time.Duration) (approval.Outcome, error)
	DecideExtension(ctx context.Context, id, user string, asked int64, approve bool) (approval.Outcome, error)
	Requests(ctx context.Context, user string) (mine, awaiting []*approval.Request, err error)
	Credentials(ctx context.Context, user string, offset, limit int) ([]*approval.Request, int, error)
	ListCredentials(ctx context.Context, user string, scope approval.Scope) ([]approval.CredentialView, error)
	GetCredential(ctx context.Context, user string, scope approval.Scope, name string) (approval.CredentialView, error)
	DeleteCredential(ctx context.Context, user string, scope approval.Scope, name string) error
	CheckDelete(ctx context.Context, user string, scope approval.Scope, name string) error
	Adopt(ctx context.Context, in approval.Adoption) (*approval.Request, error)
}

// Inventory is what the Home tab shows admins of the inventory. Implemented
// by *approval.Inventory.
type Inventory interface {
	Unmanaged(ctx context.Context, user string) ([]approval.UnmanagedCredential, error)
}

// Policy answers the questions behind "why" and "approvers". Implemented by
// *policy.Engine.
type Policy interface {
	Authorize(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string) (approval.Decision, error)
	Explain(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string) (policy.Explanation, error)
	Approvers(ctx context.Context, scope approval.Scope) ([]string, error)
	Quorum(ctx context.Context, scope approval.Scope, approvers []string) (approval.QuorumStatus, error)
}

// Config configures the handlers.
type Config struct {
	// SigningSecret verifies HTTP requests. Without it the /slack/ routes are
	// not served at all (Socket Mode needs none).
	SigningSecret string
	// ResponseHosts are the hosts a response_url may point at; Slack's own
	// (hooks.slack.com) is always allowed. Anything else is refused, so that no
	// secret is ever posted to a URL we do not trust.
	ResponseHosts []string
	HTTPClient    *http.Client // posts to response_urls; NewServer uses a copy that never follows redirects
	Logger        *slog.Logger
	Now           func() time.Time
	// Ready reports whether the replica can take work, with a report of its
	// dependencies for /readyz (JSON).
	Ready func(ctx context.Context) (ready bool, report any)
	// BTPDown, when set, returns why BTP cannot be reached right now (nil when
	// it can), so that requesters learn their request is queued.
	BTPDown func() error
	// WorkTimeout bounds the work done after an ack.
	WorkTimeout time.Duration
	// ObserveAck, when set, learns how long each Slack request over HTTP
	// took from its arrival to its answer, with its kind (command,
	// interaction, event) and HTTP status: Slack gives up after 3 seconds.
	ObserveAck func(kind string, status int, took time.Duration)
	// AckBudget bounds the Web API work done before an ack (views.open).
	// Default 2 seconds, leaving a second of Slack's three for the network.
	AckBudget time.Duration
	// RotationGrace is how long a rotated credential lives on after the new
	// one is revealed; replies to rotate say so.
	RotationGrace time.Duration

	// API is the Web API for modals, the Home tab and replies without a
	// response_url. Without it those features answer that they are unavailable.
	API *slackapi.WebAPI
	// Directory admits only active full members of the allowed workspaces.
	// Without it everyone Slack sends is served (tests).
	Directory *slackapi.Directory
	// Policy answers why and approvers; without it those verbs are unavailable.
	Policy Policy
	// Inventory, when set, lists the unmanaged credentials an admin may
	// adopt in their Home tab.
	Inventory Inventory
	// Once records a delivery key (a trigger_id or event_id) and reports
	// whether it is new, so that a signed request replayed within its window,
	// a Socket Mode redelivery or an Events API retry does nothing twice.
	// Without it every delivery is handled.
	Once func(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Inbox records acknowledged work before the ack, for RunWorkers on any
	// replica. Without it (unit tests) work runs in this process after the
	// ack, and a crash loses it.
	Inbox Inbox
	// Limiter counts each user's slash commands; past CommandsPerMinute a
	// command is refused in its ack (limits.go). Without it, or with 0,
	// there is no limit.
	Limiter           Limiter
	CommandsPerMinute int
	// UserOrigin is the BTP identity provider (origin key) whose user name is
	// a requester's Slack profile e-mail, for /credbot assign
	// (CREDBOT_BTP_USER_ORIGIN, default sap.default).
	UserOrigin string
}

// dedupeTTL outlives Slack's 5-minute signature window and its event retries.
const dedupeTTL = 10 * time.Minute

// first reports whether this delivery is new. If the record cannot be made it
// says yes: the lifecycle's compare-and-set still makes a repeated click
// harmless, and refusing every request while Redis hiccups would be worse.
func (s *Server) first(ctx context.Context, kind, key string) bool {
	if s.cfg.Once == nil || key == "" {
		return true
	}
	ok, err := s.cfg.Once(ctx, "slack:"+kind+":"+key, dedupeTTL)
	if err != nil {
		s.log.WarnContext(ctx, "dedupe", "kind", kind, "error", err)
		return true
	}
	if !ok {
		s.log.InfoContext(ctx, "ignored a repeated delivery", "kind", kind)
	}
	return ok
}

// Server holds the transport-neutral handlers and both transports.
type Server struct {
	life   Lifecycle
	cfg    Config
	verify verifier
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closing   chan struct{} // closed when Close begins: stop taking envelopes
	closeOnce sync.Once
	draining  atomic.Bool    // Drain began: /readyz fails, workers take no new jobs
	sockets   sync.WaitGroup // running RunSocketMode calls
	socket    atomic.Int32   // Socket Mode: 0 unused, 1 connecting, 2 connected
	socketUp  atomic.Bool    // Socket Mode was connected at least once
}

// NewServer returns the handlers; Close waits for work started after acks.
func NewServer(life Lifecycle, cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.HTTPClient = withoutRedirects(cfg.HTTPClient)
	if cfg.WorkTimeout <= 0 {
		cfg.WorkTimeout = 2 * time.Minute
	}
	if cfg.AckBudget <= 0 {
		cfg.AckBudget = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{life: life, cfg: cfg, verify: verifier{secret: cfg.SigningSecret, now: cfg.Now}, log: cfg.Logger,
		ctx: ctx, cancel: cancel, closing: make(chan struct{})}
}

// Drain turns readiness off and lets workers finish the job in hand and take
// no new one. Requests that still arrive are recorded and acked as usual (any
// replica's workers do them), so nothing is refused while endpoints update.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) isDraining() bool { return s.draining.Load() }

// Close stops taking Socket Mode envelopes, waits for in-flight work, then
// cancels what is left.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.sockets.Wait()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.WorkTimeout):
	}
	s.cancel()
	s.wg.Wait()
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

// admit refuses users credbot does not serve, before anything of theirs is
// stored or acted on.
func (s *Server) admit(ctx context.Context, user string) error {
	if s.cfg.Directory == nil {
		return nil
	}
	return slackapi.Refusal(s.cfg.Directory.Check(ctx, user))
}

// userMessage turns an error into text for the clicker; unexpected errors are
// logged and summarised, never shown raw.
func (s *Server) userMessage(ctx context.Context, err error, op string) string {
	var ue *approval.UserError
	if errors.As(err, &ue) {
		return blockkit.Escape(ue.Msg)
	}
	s.log.ErrorContext(ctx, op, "error", err)
	return "something went wrong on our side; please try again or ask an admin"
}

// origin is where a person spoke to us, and so where our later answers go.
type origin struct {
	user        string
	responseURL string // empty on the Home tab and in modals
}

// reply answers the person privately: through the response_url when Slack gave
// one, else as an ephemeral message in their DM with the bot.
func (s *Server) reply(ctx context.Context, o origin, text string, blocks ...slack.Block) {
	if o.responseURL != "" {
		msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text}
		if len(blocks) > 0 {
			msg.Blocks = &slack.Blocks{BlockSet: blocks}
		}
		if err := s.post(ctx, o.responseURL, msg); err != nil {
			s.log.WarnContext(ctx, "respond", "error", err)
		}
		return
	}
	if s.cfg.API == nil {
		s.log.WarnContext(ctx, "no way to reply: no response_url and no Web API")
		return
	}
	ch, err := s.cfg.API.DM(ctx, o.user)
	if err == nil {
		opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
		if len(blocks) > 0 {
			opts = append(opts, slack.MsgOptionBlocks(blocks...))
		}
		err = s.cfg.API.PostEphemeral(ctx, ch, o.user, opts...)
	}
	if err != nil {
		s.log.WarnContext(ctx, "reply in DM", "user", o.user, "error", err)
	}
}

func (s *Server) warn(ctx context.Context, o origin, err error, op string) {
	s.reply(ctx, o, ":warning: "+s.userMessage(ctx, err, op))
}

// withoutRedirects returns a copy of hc (or of a default client with a
// 10-second timeout) that hands a 3xx back instead of following it. The
// response_url check trusts one host; a redirect from it would carry the
// message, a revealed secret among them, to a host nobody checked. The
// caller's client is left untouched.
func withoutRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// post sends an ephemeral reply to a response_url, but only to a trusted host,
// and never on to wherever that host redirects (withoutRedirects).
func (s *Server) post(ctx context.Context, responseURL string, msg *slack.WebhookMessage) error {
	if !s.trustedResponseURL(responseURL) {
		return fmt.Errorf("refusing response_url on untrusted host")
	}
	return slack.PostWebhookCustomHTTPContext(ctx, responseURL, s.cfg.HTTPClient, msg)
}

func (s *Server) trustedResponseURL(responseURL string) bool {
	u, err := url.Parse(responseURL)
	return err == nil && responseURL != "" && s.trustedResponseHost(u)
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

// ackText is an immediate private answer to a slash command.
func ackText(text string) any {
	return map[string]string{"response_type": "ephemeral", "text": text}
}
