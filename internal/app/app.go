// Package app wires credbot together: configuration from the environment, the
// Redis store, the Casbin policy, the BTP client, the Slack handlers and the
// background loops (mint queue, deadlines, policy reload).
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/store"
	"github.com/redis/go-redis/v9"
	"github.com/slack-go/slack"
)

// Config is everything the bot reads from its environment.
type Config struct {
	ListenAddr      string
	SlackBotToken   string
	SigningSecret   string
	SlackAPIURL     string
	ApprovalChannel string
	ResponseHosts   []string
	RedisURL        string
	KeyPrefix       string
	PolicyDir       string
	SecretKey       string
	PendingTTL      time.Duration
	ClaimWindow     time.Duration
	RescueAfter     time.Duration
	SweepInterval   time.Duration
	BTP             btp.Config
}

// ConfigFromEnv reads the documented variables (see README).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		ListenAddr:      or(getenv("CREDBOT_LISTEN_ADDR"), ":3000"),
		SlackBotToken:   getenv("SLACK_BOT_TOKEN"),
		SigningSecret:   getenv("SLACK_SIGNING_SECRET"),
		SlackAPIURL:     or(getenv("SLACK_API_URL"), "https://slack.com/api/"),
		ApprovalChannel: getenv("CREDBOT_APPROVAL_CHANNEL"),
		RedisURL:        getenv("REDIS_URL"),
		KeyPrefix:       or(getenv("CREDBOT_KEY_PREFIX"), "credbot"),
		PolicyDir:       or(getenv("CREDBOT_POLICY_DIR"), "policies"),
		SecretKey:       getenv("CREDBOT_SECRET_KEY"),
		BTP:             btp.ConfigFromEnv(getenv),
	}
	if h := getenv("CREDBOT_RESPONSE_HOSTS"); h != "" {
		c.ResponseHosts = strings.Split(h, ",")
	}
	var err error
	for _, d := range []struct {
		env  string
		def  time.Duration
		into *time.Duration
	}{
		{"CREDBOT_PENDING_TTL", 24 * time.Hour, &c.PendingTTL},
		{"CREDBOT_CLAIM_WINDOW", 15 * time.Minute, &c.ClaimWindow},
		{"CREDBOT_RESCUE_AFTER", 2 * time.Minute, &c.RescueAfter},
		{"CREDBOT_SWEEP_INTERVAL", 5 * time.Second, &c.SweepInterval},
	} {
		*d.into = d.def
		if v := getenv(d.env); v != "" {
			if *d.into, err = time.ParseDuration(v); err != nil || *d.into <= 0 {
				return c, fmt.Errorf("%s: %q is not a positive duration like 15m", d.env, v)
			}
		}
	}
	if !strings.HasSuffix(c.SlackAPIURL, "/") {
		c.SlackAPIURL += "/"
	}
	return c, nil
}

// Validate reports every missing or malformed setting at once.
func (c Config) Validate() error {
	var errs []error
	need := map[string]string{
		"SLACK_BOT_TOKEN": c.SlackBotToken, "SLACK_SIGNING_SECRET": c.SigningSecret,
		"CREDBOT_APPROVAL_CHANNEL": c.ApprovalChannel, "REDIS_URL": c.RedisURL, "CREDBOT_SECRET_KEY": c.SecretKey,
	}
	for _, k := range []string{"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CREDBOT_APPROVAL_CHANNEL", "REDIS_URL", "CREDBOT_SECRET_KEY"} {
		if need[k] == "" {
			errs = append(errs, fmt.Errorf("%s is not set", k))
		}
	}
	if c.SecretKey != "" {
		if _, err := approval.ParseSealerKey(c.SecretKey); err != nil {
			errs = append(errs, fmt.Errorf("CREDBOT_SECRET_KEY: %w", err))
		}
	}
	return errors.Join(errs...)
}

// App is a running bot.
type App struct {
	cfg      Config
	log      *slog.Logger
	rdb      redis.UniversalClient
	Store    *store.Store
	Policy   *policy.Engine
	Service  *approval.Service
	handlers *handlers.Server
	srv      *http.Server
	ln       net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Deps lets tests and local mode supply parts; nil fields are built from Config.
type Deps struct {
	Redis  redis.UniversalClient
	Issuer approval.Issuer
	Clock  approval.Clock
}

// New builds the bot from cfg; Start runs it.
func New(ctx context.Context, cfg Config, deps Deps, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sealer, err := approval.ParseSealerKey(cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, rdb: deps.Redis}
	if a.rdb == nil {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		a.rdb = redis.NewClient(opts)
	}
	if a.Store, err = store.New(ctx, a.rdb, cfg.KeyPrefix); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if a.Policy, err = policy.Load(ctx, policy.Options{Dir: cfg.PolicyDir, Logger: log}); err != nil {
		return nil, fmt.Errorf("policy in %s: %w", cfg.PolicyDir, err)
	}
	issuer := deps.Issuer
	if issuer == nil {
		bc := cfg.BTP
		bc.Logger = log
		if issuer, err = btp.New(bc); err != nil {
			return nil, fmt.Errorf("btp: %w", err)
		}
	}
	api := slack.New(cfg.SlackBotToken, slack.OptionAPIURL(cfg.SlackAPIURL))
	a.Service = approval.NewService(a.Store, a.Policy, issuer, handlers.NewNotifier(api, cfg.ApprovalChannel),
		sealer, deps.Clock, log, approval.Config{PendingTTL: cfg.PendingTTL, ClaimWindow: cfg.ClaimWindow})
	a.handlers = handlers.NewServer(a.Service, handlers.Config{
		SigningSecret: cfg.SigningSecret, ResponseHosts: cfg.ResponseHosts, Logger: log, Ready: a.ready,
	})
	return a, nil
}

func (a *App) ready(ctx context.Context) error {
	if err := a.Store.Ping(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if ok, detail := a.Policy.Health(); !ok {
		return fmt.Errorf("policy: %s", detail)
	}
	return nil
}

// Start listens and runs the background loops until Close.
func (a *App) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return err
	}
	a.ln = ln
	ctx, a.cancel = context.WithCancel(ctx)
	a.srv = &http.Server{Handler: a.handlers.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	consumer := consumerName()
	a.spawn(func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", "err", err)
		}
	})
	a.spawn(func() { a.Service.RunMinter(ctx, consumer, a.cfg.RescueAfter) })
	a.spawn(func() { a.Policy.Run(ctx) })
	a.spawn(func() {
		t := time.NewTicker(a.cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := a.Service.SweepDeadlines(ctx); err != nil {
					a.log.Warn("sweep deadlines", "err", err)
				}
			}
		}
	})
	a.log.Info("credbot listening", "addr", ln.Addr().String(), "consumer", consumer)
	return nil
}

func (a *App) spawn(f func()) {
	a.wg.Add(1)
	go func() { defer a.wg.Done(); f() }()
}

// Addr is where the bot listens.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Close stops serving, finishes acked work and stops the loops.
func (a *App) Close() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.srv.Shutdown(ctx)
		cancel()
	}
	a.handlers.Close()
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
}

func consumerName() string {
	h, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", h, os.Getpid(), hex.EncodeToString(b))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
