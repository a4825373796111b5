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
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/store"
	"github.com/redis/go-redis/v9"
)

// Config is everything the bot reads from its environment.
type Config struct {
	ListenAddr    string
	SlackBotToken string
	SigningSecret string
	SlackAPIURL   string
	// SlackAppToken (xapp-…) switches Slack ingress from HTTP to Socket Mode.
	SlackAppToken string
	// AllowedTeams are the workspaces (T…) or Enterprise Grid orgs (E…) whose
	// members credbot serves; empty means the workspace it is installed in.
	AllowedTeams    []string
	ApprovalChannel string
	// EscalationChannel is told about requests that waited through
	// EscalateAfter reminders; empty disables escalation.
	EscalationChannel string
	// AuditChannel, when set, gets a copy of every audit entry.
	AuditChannel string
	// Break-glass: the alert channel (default: the audit channel, else the
	// approval channel), the escalation target (a channel or user id;
	// default: the escalation channel), the longest lifetime, the review
	// interval and the pattern a reason must match.
	BreakglassChannel       string
	BreakglassEscalation    string
	BreakglassLifetime      time.Duration
	BreakglassReview        time.Duration
	BreakglassReasonPattern *regexp.Regexp
	// Just-in-time role collections: the longest --for of /credbot assign,
	// and the origin (IdP) of the BTP user a Slack profile e-mail names.
	AssignMaxFor  time.Duration
	BTPUserOrigin string
	ResponseHosts []string
	RedisURL      string
	KeyPrefix     string
	PolicyDir     string
	SecretKey     string
	PendingTTL    time.Duration
	ClaimWindow   time.Duration
	RotationGrace time.Duration // a rotated credential lives on this long after the new one is revealed
	MaxLifetime   time.Duration
	RemindAfter   time.Duration
	EscalateAfter int
	RescueAfter   time.Duration
	MintWorkers   int // mint queue consumers in this replica; 0 makes it serve Slack only
	// Workers process the inbox of acknowledged Slack deliveries (0: this
	// replica records and acks only).
	Workers       int
	SweepInterval time.Duration
	// DrainTimeout bounds the graceful stop: finishing jobs in hand before
	// handing the rest back.
	DrainTimeout time.Duration
	// Retention is how long the record of a request that ended is kept in
	// Redis; the audit trail keeps its history.
	Retention time.Duration
	// The per-user limits (0: off) and the lookup cache (0: none).
	MaxPendingPerUser int
	CommandsPerMinute int
	LookupCache       time.Duration
	// InventoryInterval is how often one replica lists every scope of the
	// hierarchy at BTP and compares it with credbot's records (0: never).
	InventoryInterval time.Duration
	BTP               btp.Config

	// AuditKey MACs the audit trail: the current key, then previous ones.
	AuditKey string
	// AuditRetain is how many audit entries Redis keeps; older ones are
	// trimmed through a checkpoint.
	AuditRetain int64
	// AuditWebhookURL, when set, gets every audit entry, signed with
	// AuditWebhookSecret.
	AuditWebhookURL    string
	AuditWebhookSecret string
}

// ConfigFromEnv reads the documented variables (see README).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		ListenAddr:        or(getenv("CREDBOT_LISTEN_ADDR"), ":3000"),
		SlackBotToken:     getenv("SLACK_BOT_TOKEN"),
		SigningSecret:     getenv("SLACK_SIGNING_SECRET"),
		SlackAPIURL:       or(getenv("SLACK_API_URL"), "https://slack.com/api/"),
		SlackAppToken:     getenv("SLACK_APP_TOKEN"),
		AllowedTeams:      splitList(getenv("CREDBOT_ALLOWED_TEAMS")),
		ApprovalChannel:   getenv("CREDBOT_APPROVAL_CHANNEL"),
		EscalationChannel: getenv("CREDBOT_ESCALATION_CHANNEL"),
		AuditChannel:      getenv("CREDBOT_AUDIT_CHANNEL"),
		AuditKey:          getenv("CREDBOT_AUDIT_KEY"),
		AuditRetain:       1_000_000,
		AuditWebhookURL:   getenv("CREDBOT_AUDIT_WEBHOOK_URL"),
		EscalateAfter:     3,
		MintWorkers:       8,
		Workers:           8,
		MaxPendingPerUser: 5,
		CommandsPerMinute: 20,
		LookupCache:       30 * time.Second,
		RedisURL:          getenv("REDIS_URL"),
		KeyPrefix:         or(getenv("CREDBOT_KEY_PREFIX"), "credbot"),
		PolicyDir:         or(getenv("CREDBOT_POLICY_DIR"), "policies"),
		SecretKey:         getenv("CREDBOT_SECRET_KEY"),
		BTP:               btp.ConfigFromEnv(getenv),
	}
	if h := getenv("CREDBOT_RESPONSE_HOSTS"); h != "" {
		c.ResponseHosts = strings.Split(h, ",")
	}
	var err error
	var errs []error // every problem, reported at once
	for _, d := range []struct {
		env  string
		def  time.Duration
		into *time.Duration
	}{
		{"CREDBOT_PENDING_TTL", 24 * time.Hour, &c.PendingTTL},
		{"CREDBOT_CLAIM_WINDOW", 15 * time.Minute, &c.ClaimWindow},
		{"CREDBOT_MAX_LIFETIME", 90 * 24 * time.Hour, &c.MaxLifetime},
		{"CREDBOT_ROTATION_GRACE", 24 * time.Hour, &c.RotationGrace},
		{"CREDBOT_REMIND_AFTER", time.Hour, &c.RemindAfter},
		{"CREDBOT_RESCUE_AFTER", 2 * time.Minute, &c.RescueAfter},
		{"CREDBOT_SWEEP_INTERVAL", 5 * time.Second, &c.SweepInterval},
		{"CREDBOT_DRAIN_TIMEOUT", 20 * time.Second, &c.DrainTimeout},
		{"CREDBOT_RETENTION", store.DefaultRetention, &c.Retention},
		{"CREDBOT_BREAKGLASS_LIFETIME", 4 * time.Hour, &c.BreakglassLifetime},
		{"CREDBOT_BREAKGLASS_REVIEW", time.Hour, &c.BreakglassReview},
		{"CREDBOT_ASSIGN_MAX_FOR", approval.DefaultAssignMaxFor, &c.AssignMaxFor},
	} {
		*d.into = d.def
		if v := getenv(d.env); v != "" {
			if *d.into, err = ParseDuration(v); err != nil || *d.into <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration like 15m or 90d", d.env, v))
				*d.into = d.def
			}
		}
	}
	if c.Retention < 24*time.Hour {
		// A click on an old message must still find the request it ended.
		errs = append(errs, fmt.Errorf("CREDBOT_RETENTION: %q is shorter than a day", getenv("CREDBOT_RETENTION")))
	}
	for _, n := range []struct {
		env      string
		into     *int
		min, max int
		what     string
	}{
		{"CREDBOT_ESCALATE_AFTER", &c.EscalateAfter, 1, 100, "a number of reminders from 1 to 100"},
		{"CREDBOT_MINT_WORKERS", &c.MintWorkers, 0, 64, "a number from 0 to 64"},
		{"CREDBOT_WORKERS", &c.Workers, 0, 256, "a number from 0 to 256"},
		{"CREDBOT_MAX_PENDING_PER_USER", &c.MaxPendingPerUser, 0, 1000, "a number from 0 (no limit) to 1000"},
		{"CREDBOT_COMMANDS_PER_MINUTE", &c.CommandsPerMinute, 0, 10000, "a number from 0 (no limit) to 10000"},
	} {
		if v := getenv(n.env); v != "" {
			i, perr := strconv.Atoi(v)
			if perr != nil || i < n.min || i > n.max {
				errs = append(errs, fmt.Errorf("%s: %q is not %s", n.env, v, n.what))
				continue
			}
			*n.into = i
		}
	}
	c.InventoryInterval = time.Hour
	if v := getenv("CREDBOT_INVENTORY_INTERVAL"); v != "" {
		if c.InventoryInterval, err = parseInterval(v); err != nil {
			errs = append(errs, fmt.Errorf("CREDBOT_INVENTORY_INTERVAL: %q is not a duration of at least 1s like 1h or 30m, or off", v))
			c.InventoryInterval = time.Hour
		}
	}
	if v := getenv("CREDBOT_LOOKUP_CACHE"); v != "" {
		if c.LookupCache, err = ParseDuration(v); err != nil || c.LookupCache < 0 || c.LookupCache > 10*time.Minute {
			errs = append(errs, fmt.Errorf("CREDBOT_LOOKUP_CACHE: %q is not a duration from 0s (no cache) to 10m", v))
		}
	}
	c.BTPUserOrigin = or(getenv("CREDBOT_BTP_USER_ORIGIN"), approval.DefaultUserOrigin)
	if err := (approval.BTPUser{Origin: c.BTPUserOrigin, Name: "someone@example.com"}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("CREDBOT_BTP_USER_ORIGIN: %q is not an origin key like sap.default or mytenant-platform (BTP cockpit: Security > Trust Configuration, column Origin Key)", c.BTPUserOrigin))
		c.BTPUserOrigin = approval.DefaultUserOrigin
	}
	c.BreakglassChannel = getenv("CREDBOT_BREAKGLASS_CHANNEL")
	c.BreakglassEscalation = getenv("CREDBOT_BREAKGLASS_ESCALATION")
	pattern := or(getenv("CREDBOT_BREAKGLASS_REASON_PATTERN"), approval.DefaultBreakglassReason)
	if c.BreakglassReasonPattern, err = regexp.Compile(pattern); err != nil {
		errs = append(errs, fmt.Errorf("CREDBOT_BREAKGLASS_REASON_PATTERN: %q is not a Go regular expression (%v); e.g. %s matches INC-1234", pattern, err, approval.DefaultBreakglassReason))
		c.BreakglassReasonPattern = regexp.MustCompile(approval.DefaultBreakglassReason)
	} else if c.BreakglassReasonPattern.MatchString("") {
		errs = append(errs, fmt.Errorf("CREDBOT_BREAKGLASS_REASON_PATTERN: %q matches an empty reason, so it names no ticket; e.g. %s matches INC-1234", pattern, approval.DefaultBreakglassReason))
	}
	c.AuditWebhookSecret = getenv("CREDBOT_AUDIT_WEBHOOK_SECRET")
	if v := getenv("CREDBOT_AUDIT_RETAIN"); v != "" {
		if c.AuditRetain, err = strconv.ParseInt(v, 10, 64); err != nil || c.AuditRetain < 2 || c.AuditRetain > 1_000_000_000 {
			errs = append(errs, fmt.Errorf("CREDBOT_AUDIT_RETAIN: %q is not a number of entries from 2 to 1000000000", v))
		}
	}
	if !strings.HasSuffix(c.SlackAPIURL, "/") {
		c.SlackAPIURL += "/"
	}
	if v := getenv("BTP_VERIFY_CREDENTIALS"); v != "" {
		if _, perr := strconv.ParseBool(v); perr != nil {
			errs = append(errs, fmt.Errorf("BTP_VERIFY_CREDENTIALS: %q is not true or false", v))
		}
	}
	if _, _, lerr := logSettings(getenv, "json"); lerr != nil {
		errs = append(errs, lerr)
	}
	return c, errors.Join(errs...)
}

// LoadConfig reads the configuration from the environment and checks all of
// it at once: every variable's value (ConfigFromEnv), what Validate refuses,
// REDIS_URL's form (its errors never show the URL: it may hold a password)
// and the BTP login settings. An operator then fixes one list, not one
// problem per restart; nothing is reached over the network.
func LoadConfig(getenv func(string) string) (Config, error) {
	c, err := ConfigFromEnv(getenv)
	errs := []error{err, c.Validate()}
	if c.RedisURL != "" {
		rdb, rerr := NewRedis(c.RedisURL, 0)
		if rerr != nil {
			errs = append(errs, rerr)
		} else {
			_ = rdb.Close()
		}
	}
	if _, berr := btp.New(c.BTP); berr != nil {
		errs = append(errs, berr) // its errors say "btp: …" already
	}
	return c, errors.Join(errs...)
}

// Validate reports every missing or malformed setting at once.
func (c Config) Validate() error {
	var errs []error
	need := map[string]string{
		"SLACK_BOT_TOKEN": c.SlackBotToken, "SLACK_SIGNING_SECRET": c.SigningSecret,
		"CREDBOT_APPROVAL_CHANNEL": c.ApprovalChannel, "REDIS_URL": c.RedisURL, "CREDBOT_SECRET_KEY": c.SecretKey,
		"CREDBOT_AUDIT_KEY": c.AuditKey,
	}
	for _, k := range []string{"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CREDBOT_APPROVAL_CHANNEL", "REDIS_URL", "CREDBOT_SECRET_KEY", "CREDBOT_AUDIT_KEY"} {
		if need[k] == "" && (k != "SLACK_SIGNING_SECRET" || c.SlackAppToken == "") { // Socket Mode needs no signing secret
			errs = append(errs, fmt.Errorf("%s is not set", k))
		}
	}
	if c.SecretKey != "" {
		if _, err := approval.ParseSealerKey(c.SecretKey); err != nil {
			errs = append(errs, fmt.Errorf("CREDBOT_SECRET_KEY: %w", err))
		}
	}
	errs = append(errs, c.validateAudit()...)
	errs = append(errs, c.validateSlack()...)
	return errors.Join(errs...)
}

// channelIDRE is a Slack channel id: C… (public or private) or G… (older
// private channels).
var channelIDRE = regexp.MustCompile(`^[CG][A-Z0-9]+$`)

// validateSlack catches the values that look right to a person but are not
// what Slack's API takes, and says what to put instead.
func (c Config) validateSlack() []error {
	var errs []error
	switch t := c.SlackBotToken; {
	case t == "":
	case strings.HasPrefix(t, "xapp-"):
		errs = append(errs, errors.New("SLACK_BOT_TOKEN: an app-level token (xapp-…) was given where the bot token (xoxb-…) belongs; the xapp- token goes in SLACK_APP_TOKEN"))
	case strings.HasPrefix(t, "xoxp-"):
		errs = append(errs, errors.New("SLACK_BOT_TOKEN: a user token (xoxp-…) was given; credbot acts only as its bot: use the Bot User OAuth Token (xoxb-…)"))
	case !strings.HasPrefix(t, "xoxb-"):
		errs = append(errs, errors.New("SLACK_BOT_TOKEN: not a bot token (they start with xoxb-)"))
	}
	if t := c.SlackAppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		errs = append(errs, errors.New("SLACK_APP_TOKEN: not an app-level token (they start with xapp-; it needs the connections:write scope)"))
	}
	for _, ch := range []struct{ env, v string }{
		{"CREDBOT_APPROVAL_CHANNEL", c.ApprovalChannel}, {"CREDBOT_ESCALATION_CHANNEL", c.EscalationChannel}, {"CREDBOT_AUDIT_CHANNEL", c.AuditChannel},
		{"CREDBOT_BREAKGLASS_CHANNEL", c.BreakglassChannel},
	} {
		switch {
		case ch.v == "" || channelIDRE.MatchString(ch.v):
		case strings.HasPrefix(ch.v, "#"):
			errs = append(errs, fmt.Errorf("%s: %q is a channel name, not a channel ID; use the ID from the channel's details (it starts with C)", ch.env, ch.v))
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not a channel ID (C… from the channel's details)", ch.env, ch.v))
		}
	}
	switch t := c.BreakglassEscalation; {
	case t == "" || channelIDRE.MatchString(t) || userIDRE.MatchString(t):
	case strings.HasPrefix(t, "#"), strings.HasPrefix(t, "@"):
		errs = append(errs, fmt.Errorf("CREDBOT_BREAKGLASS_ESCALATION: %q is a name, not an ID; use a channel ID (C…, from the channel's details) or a user ID (U…, from the person's profile: Copy member ID)", t))
	default:
		errs = append(errs, fmt.Errorf("CREDBOT_BREAKGLASS_ESCALATION: %q is neither a channel ID (C…) nor a user ID (U…)", t))
	}
	return errs
}

// breakglassAlerts are where break-glass alerts go: the break-glass channel
// (default: the audit channel, else the approval channel) and the
// escalation target (default: the escalation channel).
func (c Config) breakglassAlerts() (channel, escalation string) {
	return or(c.BreakglassChannel, or(c.AuditChannel, c.ApprovalChannel)), or(c.BreakglassEscalation, c.EscalationChannel)
}

// userIDRE is a Slack user id (U…, or W… on Enterprise Grid).
var userIDRE = regexp.MustCompile(`^[UW][A-Z0-9]+$`)

// App is a running bot.
type App struct {
	cfg     Config
	log     *slog.Logger
	rdb     redis.UniversalClient
	Store   *store.Store
	Policy  *policy.Engine
	Service *approval.Service
	// Inventory compares BTP with credbot's records (inventory.go).
	Inventory *approval.Inventory
	handlers  *handlers.Server
	slack     *slackSide
	audit     *auditMirror // nil without CREDBOT_AUDIT_CHANNEL
	auditOut  *auditSink
	metrics   *metrics
	health    *health
	// routeChecks remembers which routed channels the bot is in (readiness).
	routeChecks routeChecks
	srv         *http.Server
	ln          net.Listener
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	// replica names this process in Redis: its liveness lease and the
	// consumer names of its workers ("<replica>/inbox-0", "<replica>/mint-0").
	replica string
	// started is when Start began: Socket Mode's first connection is given
	// socketFirstConnect before it counts as failing.
	started    time.Time
	stopTaking context.CancelFunc // workers and minters take no new job
	working    sync.WaitGroup     // workers and minters
}

// socketFirstConnect is how long a starting replica's first Socket Mode
// connection may take before /readyz and the log report it as not
// connected (under healthEvery, so the second round of checks tells).
const socketFirstConnect = 20 * time.Second

// replicaLease is how long a replica's liveness lease lasts without a
// heartbeat; its work is taken over within this plus the store's takeover
// interval (2 s) after it dies. The heartbeat renews it five times as often.
const replicaLease = 10 * time.Second

// Deps lets tests and local mode supply parts; nil fields are built from Config.
type Deps struct {
	Redis  redis.UniversalClient
	Issuer approval.Issuer
	Clock  approval.Clock
	Hooks  approval.Hooks
	// CommandLimit is local mode's per-user command limit when
	// CREDBOT_COMMANDS_PER_MINUTE is not set (0: none, as one simulated
	// requester drives every loop). load sets one no run reaches, so that
	// each ack counts its command as production's do. StartLocal only.
	CommandLimit int
}

// NewRedis connects to REDIS_URL: redis:// or rediss:// for one server,
// redis-sentinel://[user:pass@]host:port[,host:port…]/db?master_name=NAME for a
// Sentinel-managed primary (go-redis's failover URL with the sentinel addresses),
// or redis-cluster:// (rediss-cluster:// with TLS)
// [user:pass@]host:port[,host:port…][?options] for a Redis Cluster (go-redis's
// cluster URL with the seed nodes).
//
// blocking is how many goroutines will hold a connection in a blocking stream
// read (inbox and mint workers): unless REDIS_URL sets pool_size, the pool
// gets that many connections on top of go-redis's default, so that acks,
// transitions and audit writes never queue behind the readers.
func NewRedis(rawURL string, blocking int) (redis.UniversalClient, error) {
	pool := 0
	if u, err := url.Parse(rawURL); err == nil && !u.Query().Has("pool_size") {
		pool = 10*runtime.GOMAXPROCS(0) + blocking
	}
	for _, scheme := range []string{"redis-cluster", "rediss-cluster"} {
		rest, ok := strings.CutPrefix(rawURL, scheme+"://")
		if !ok {
			continue
		}
		u := strings.TrimSuffix(scheme, "-cluster") + "://" + withAddrParams(rest)
		if p, err := url.Parse(u); err == nil && p.Path != "" && p.Path != "/" && p.Path != "/0" {
			return nil, errors.New("REDIS_URL (cluster): a Redis Cluster has only database 0")
		}
		opts, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster): %w", withoutURL(err))
		}
		if opts.PoolTimeout == 0 {
			opts.PoolTimeout = poolTimeout
		}
		if pool > 0 {
			opts.PoolSize = pool
		}
		opts.ClusterStateReloadInterval = clusterStateReload
		return redis.NewClusterClient(opts), nil
	}
	if rest, ok := strings.CutPrefix(rawURL, "redis-sentinel://"); ok {
		opts, err := redis.ParseFailoverURL("redis://" + withAddrParams(rest))
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (sentinel): %w", withoutURL(err))
		}
		if opts.PoolTimeout == 0 {
			opts.PoolTimeout = poolTimeout
		}
		if opts.MasterName == "" {
			return nil, errors.New("REDIS_URL (sentinel): master_name=… is required")
		}
		if pool > 0 {
			opts.PoolSize = pool
		}
		return redis.NewFailoverClient(opts), nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", withoutURL(err))
	}
	if opts.PoolTimeout == 0 {
		opts.PoolTimeout = poolTimeout
	}
	if pool > 0 {
		opts.PoolSize = pool
	}
	return redis.NewClient(opts), nil
}

// withAddrParams turns "[auth@]h1,h2,h3[/db][?query]" into
// "[auth@]h1[/db]?[query&]addr=h2&addr=h3": go-redis takes the extra
// sentinels or cluster seeds as addr= parameters.
func withAddrParams(rest string) string {
	hostsEnd := strings.IndexAny(rest, "/?")
	if hostsEnd < 0 {
		hostsEnd = len(rest)
	}
	auth, hosts := "", rest[:hostsEnd]
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		auth, hosts = hosts[:at+1], hosts[at+1:]
	}
	list := strings.Split(hosts, ",")
	u := auth + list[0] + rest[hostsEnd:]
	for _, h := range list[1:] {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "addr=" + h
	}
	return u
}

// clusterStateReload is how often a cluster client re-reads which node holds
// which slot. go-redis re-reads at once on MOVED, but a primary that died
// sends no MOVED: with its default (60 s) writes would go on failing that
// long after the replica took over; this bounds it to a few seconds, for one
// CLUSTER SLOTS per client every 2 s.
const clusterStateReload = 2 * time.Second

// withoutURL drops the URL from a parse error: REDIS_URL may hold a password,
// and url.Error prints the whole URL.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("it does not parse as a URL (%w); its text is not shown, as it may hold a password", ue.Err)
	}
	return err
}

// poolTimeout is how long work waits for a Redis connection when a burst has
// them all busy. go-redis's default (read timeout + 1 s) turned a burst of 200
// requests on two cores into failed submissions; all of this work runs after
// Slack's ack, so waiting is better than failing. A pool_timeout in REDIS_URL
// overrides it.
const poolTimeout = 30 * time.Second

// ParseDuration accepts Go durations and whole days ("90d").
func ParseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("bad duration %q", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
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
		if a.rdb, err = NewRedis(cfg.RedisURL, cfg.Workers+cfg.MintWorkers); err != nil {
			return nil, err
		}
	}
	if a.Store, err = store.New(ctx, a.rdb, cfg.KeyPrefix); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// A person's list of request ids outlives every record in it: the ended
	// ones, kept for the retention, and the live ones, which live at most a
	// day more than pending TTL, claim window and lifetime together.
	a.Store.SetRetention(store.Retention{Ended: cfg.Retention,
		Lists: max(cfg.Retention, cfg.PendingTTL+cfg.ClaimWindow+cfg.MaxLifetime+24*time.Hour)})
	if err := a.useAuditConfig(cfg); err != nil {
		return nil, err
	}
	a.replica = consumerName()
	out := outboundClient(cfg)
	a.slack = newSlackSide(cfg, out, log)
	a.metrics = newMetrics()
	a.slack.api.Observe = a.metrics.slack
	if a.Policy, err = policy.Load(ctx, policy.Options{Dir: cfg.PolicyDir, Logger: log, Directory: a.slack.dir, Registerer: a.metrics.reg, LastGood: a.Store,
		Changed: a.policyChanged}); err != nil {
		return nil, fmt.Errorf("policy in %s: %w", cfg.PolicyDir, err)
	}
	issuer := deps.Issuer
	if issuer == nil {
		bc := cfg.BTP
		bc.Logger = log
		bc.Observe = a.metrics.btp
		if bc.HTTPClient == nil {
			bc.HTTPClient = out
		}
		if issuer, err = btp.New(bc); err != nil {
			return nil, err // its errors say "btp: …" already
		}
	}
	notifier := a.slack.notifier(cfg, a.Policy, log)
	lc := approval.Config{
		PendingTTL: cfg.PendingTTL, ClaimWindow: cfg.ClaimWindow, MaxLifetime: cfg.MaxLifetime, RotationGrace: cfg.RotationGrace,
		RemindAfter: cfg.RemindAfter, EscalateAfter: cfg.EscalateAfter, Hooks: deps.Hooks, Replica: a.replica,
		MaxPendingPerUser: cfg.MaxPendingPerUser, LookupCache: cfg.LookupCache,
		Breakglass: approval.BreakglassConfig{Lifetime: cfg.BreakglassLifetime, Review: cfg.BreakglassReview, Reason: cfg.BreakglassReasonPattern},
	}
	if ra, ok := issuer.(approval.RoleAssigner); ok {
		lc.Roles = ra // the btp client assigns role collections too
		lc.Assign = approval.AssignConfig{MaxFor: cfg.AssignMaxFor}
	}
	lc.AuditMirror = a.metrics.transition
	lc.Observer = a.metrics
	if cfg.AuditChannel != "" {
		a.audit = newAuditMirror(a.slack.api, cfg.AuditChannel, log)
		lc.AuditMirror = func(e approval.AuditEntry) { a.metrics.transition(e); a.audit.add(e) }
	}
	a.Service = approval.NewService(a.Store, a.Policy, issuer, notifier, sealer, deps.Clock, log, lc)
	a.Inventory = a.Service.Inventory(a.Store, a.Policy.Scopes, approval.InventoryConfig{Interval: cfg.InventoryInterval})
	hc := a.slack.handlerConfig(cfg, log, a.ready, a.Policy, a.Store.Once)
	hc.HTTPClient = &http.Client{Transport: out.Transport, Timeout: 10 * time.Second}
	hc.Inbox = a.Store
	hc.Inventory = a.Inventory
	hc.Limiter, hc.CommandsPerMinute = a.Store, cfg.CommandsPerMinute
	hc.BTPDown = func() error { return a.health.failing("btp") }
	hc.ObserveAck = a.metrics.ack
	a.handlers = handlers.NewServer(a.Service, hc)
	a.health = newHealth(a.dependencies(issuer), log, a.metrics.reg)
	a.metrics.watch(a.Store, cfg.SlackAppToken != "", a.handlers.SocketConnected)
	a.metrics.reg.MustRegister(&inventoryCollector{store: a.Store})
	return a, nil
}

// ready is /readyz: the background checks' report, with Redis checked live
// (it is what every request needs first, and it is cheap). A broken policy
// file does not fail it: the last good policy stays in force, and failing
// readiness would take every replica out of service at once over one bad
// ConfigMap; it shows as degraded instead.
func (a *App) ready(ctx context.Context) (bool, any) {
	ready, report := a.health.report()
	report["policy"] = a.Policy.Hash()
	report["replica"] = a.replica
	if err := a.Store.Writable(ctx, a.replica); err != nil {
		ready = false
		report["ready"] = false
		report["redis"] = depState{Critical: true, Error: err.Error(), Fix: fixFor("redis", err), Since: time.Now().UTC()}
	}
	return ready, report
}

// dependencies are what this replica needs, for readiness and doctor.
func (a *App) dependencies(issuer approval.Issuer) []dependency {
	deps := []dependency{
		{name: "redis", check: func(ctx context.Context) (error, bool) { return a.Store.Writable(ctx, a.replica), true }},
		{name: "redis_aof", check: func(ctx context.Context) (error, bool) {
			on, err := a.Store.AOF(ctx)
			if err == nil && !on {
				err = unmet("Redis does not append writes to a log (appendonly no)")
			}
			return err, false
		}},
		{name: "slack", check: func(ctx context.Context) (error, bool) {
			_, err := a.slack.api.AuthTest(ctx)
			if err != nil {
				return err, isSlackTokenError(err)
			}
			return nil, false
		}},
		{name: "policy", check: func(context.Context) (error, bool) {
			if ok, detail := a.Policy.Health(); !ok {
				return unmet("%s", detail), false
			}
			return nil, false
		}},
	}
	if b, ok := issuer.(interface{ Health(context.Context) error }); ok {
		deps = append(deps, dependency{name: "btp", check: func(ctx context.Context) (error, bool) { return b.Health(ctx), false }})
	}
	seen := map[string]bool{}
	for _, ch := range []string{a.cfg.ApprovalChannel, a.cfg.EscalationChannel, a.cfg.AuditChannel, a.cfg.BreakglassChannel, a.cfg.BreakglassEscalation} {
		if ch == "" || seen[ch] || !channelIDRE.MatchString(ch) { // a user id is a DM, not a channel to join
			continue
		}
		seen[ch] = true
		deps = append(deps, dependency{name: "channel:" + ch, check: func(ctx context.Context) (error, bool) {
			member, name, err := a.slack.api.ChannelMember(ctx, ch)
			if err == nil && !member {
				err = unmet("the bot is not a member of %s (#%s), so it cannot post there", ch, name)
			}
			return err, false
		}})
	}
	// The channels routes.yaml names change with the policy, so they are
	// read at each check. A request routed where the bot cannot post goes
	// to the approval channel instead: degraded, never critical.
	deps = append(deps, dependency{name: "channel:routes", check: func(ctx context.Context) (error, bool) {
		var channels []string
		for _, ch := range a.Policy.RouteChannels() {
			if ch != a.cfg.ApprovalChannel { // checked above
				channels = append(channels, ch)
			}
		}
		return a.routeChecks.check(ctx, channels, a.slack.api.ChannelMember, time.Now()), false
	}})
	if a.cfg.SlackAppToken != "" {
		deps = append(deps, dependency{name: "socket_mode", check: func(context.Context) (error, bool) {
			if a.handlers.SocketConnected() {
				return nil, false
			}
			if !a.handlers.SocketEverConnected() && time.Since(a.started) < socketFirstConnect {
				return errNotYet, false
			}
			return unmet("Socket Mode is not connected"), false
		}})
	}
	for i := range deps {
		name := deps[i].name
		if strings.HasPrefix(name, "channel:") {
			name = "channel:"
		}
		deps[i].fix = func(err error) string { return fixFor(name, err) }
	}
	return deps
}

// Start listens and runs the background loops until Close.
func (a *App) Start(ctx context.Context) error {
	ln, err := listen(a.cfg.ListenAddr)
	if err != nil {
		return err
	}
	a.ln = ln
	a.started = time.Now()
	ctx, a.cancel = context.WithCancel(ctx)
	mux := http.NewServeMux()
	mux.Handle("/", a.handlers.Handler())
	mux.Handle("GET /metrics", a.metrics.handler())
	a.srv = newHTTPServer(mux)
	// The lease first: work this replica takes must never look abandoned.
	if err := a.Store.Heartbeat(ctx, a.replica, replicaLease); err != nil {
		return fmt.Errorf("redis: take the replica lease: %w", err)
	}
	a.spawn(func() { a.heartbeat(ctx) })
	a.health.refresh(ctx) // before serving: /readyz answers from the first
	a.spawn(func() { a.health.run(ctx) })
	a.spawn(func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", "error", err)
		}
	})
	var take context.Context
	take, a.stopTaking = context.WithCancel(ctx)
	for i := range a.cfg.MintWorkers {
		a.working.Go(func() { a.Service.RunMinter(take, fmt.Sprintf("%s/mint-%d", a.replica, i), a.cfg.RescueAfter) })
	}
	a.working.Go(func() { a.handlers.RunWorkers(take, a.replica, a.cfg.Workers) })
	if a.cfg.SlackAppToken != "" {
		a.spawn(func() { a.slack.runSocketMode(ctx, a.handlers, a.log) })
	}
	a.spawn(func() { a.Policy.Run(ctx) })
	a.spawn(func() { a.runAuditTrim(ctx) })
	a.spawn(func() {
		// Once per start: what an earlier version kept forever gets its TTL.
		if n, err := a.Store.BoundOldKeys(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("give the keys an earlier credbot kept without a TTL theirs", "error", err)
		} else if n > 0 {
			a.log.Info("gave the keys an earlier credbot kept without a TTL theirs", "keys", n)
		}
	})
	if a.cfg.InventoryInterval > 0 {
		a.spawn(func() { a.Inventory.Run(ctx, a.replica) })
	}
	if a.auditOut.hook != nil {
		a.spawn(func() { a.auditOut.hook.run(ctx) })
	}
	if a.audit != nil {
		a.spawn(func() { a.audit.run(ctx) })
	}
	a.spawn(func() {
		every(ctx, a.cfg.SweepInterval, func() {
			if err := a.Service.SweepDeadlines(ctx); err != nil {
				a.log.Warn("sweep deadlines", "error", err)
			}
			// Done mint jobs are deleted when acknowledged; this removes
			// those an earlier version (or replica) only acknowledged.
			if _, err := a.Store.TrimMintQueue(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("trim the mint queue", "error", err)
			}
		})
	})
	version, revision := buildVersion()
	a.note(ctx, approval.AuditEntry{Event: approval.EventStart, Actor: "replica:" + a.replica,
		Result: fmt.Sprintf("started credbot %s (revision %s), policy %s", version, revision, a.Policy.Hash())})
	a.log.Info("credbot listening", "addr", ln.Addr().String(), "replica", a.replica,
		"workers", a.cfg.Workers, "mint_workers", a.cfg.MintWorkers)
	return nil
}

// policyChanged records every policy this replica puts in force, old hash →
// new hash, in the audit trail.
func (a *App) policyChanged(ctx context.Context, from, to, how string) {
	a.note(ctx, approval.AuditEntry{Event: approval.EventPolicy, Actor: "replica:" + a.replica, PolicyHash: to,
		Result: fmt.Sprintf("policy %s → %s: %s", or(shortHash(from), "none"), shortHash(to), how)})
}

// note writes an audit entry that changes no request; the trail is the
// record, so a failure is an error in the log.
func (a *App) note(ctx context.Context, e approval.AuditEntry) {
	e.At = time.Now().UTC()
	if err := a.Store.Note(ctx, e); err != nil {
		a.log.Error("could not write an audit entry", "event", e.Event, "error", err)
	}
}

func shortHash(h string) string { return h[:min(len(h), 12)] }

// heartbeat renews the replica's liveness lease until ctx ends. If it cannot
// for a whole lease, other replicas take this one's work over: harmless, as
// every job is idempotent, but worth an operator's eye.
func (a *App) heartbeat(ctx context.Context) {
	every(ctx, replicaLease/5, func() {
		if err := a.Store.Heartbeat(ctx, a.replica, replicaLease); err != nil && ctx.Err() == nil {
			a.log.Warn("could not renew this replica's lease in Redis; if this lasts, other replicas take over its work", "replica", a.replica, "error", err)
		}
	})
}

// every runs f every d until ctx ends (the first time after d).
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (a *App) spawn(f func()) {
	a.wg.Add(1)
	go func() { defer a.wg.Done(); f() }()
}

// Addr is where the bot listens.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Drain fails readiness and lets this replica's workers and minters finish
// the job in hand and take no new one, waiting for them up to DrainTimeout;
// the replica keeps serving and recording.
func (a *App) Drain() {
	a.handlers.Drain()
	if a.stopTaking == nil {
		return
	}
	a.stopTaking()
	done := make(chan struct{})
	go func() { a.working.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max(a.cfg.DrainTimeout, time.Second)):
		a.log.Warn("drain timed out; handing the unfinished jobs back to the other replicas", "replica", a.replica, "after", a.cfg.DrainTimeout)
	}
}

// Close drains and stops: readiness fails at once, workers and minters finish
// the job in hand (for up to DrainTimeout) and take no new one, the server
// stops, and the replica's lease is given up so that whatever is left is
// taken over by another replica at once instead of when the lease lapses.
// Requests acked meanwhile are in the inbox, for any replica.
func (a *App) Close() {
	a.Drain()
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
	if a.stopTaking != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := a.Store.Resign(ctx, a.replica); err != nil {
			a.log.Warn("could not give up the replica lease; other replicas take over when it lapses", "replica", a.replica, "error", err)
		}
		cancel()
	}
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
