// Package btp is a client of SAP's btp CLI server protocol, limited to what
// credbot needs: create, get, list and delete of security/api-credential in a
// subaccount, a directory or the global account (approval.Issuer), and
// assign, unassign and read-back of role collections for just-in-time access
// (approval.RoleAssigner, rolecollection.go).
//
// The protocol is the one the btp CLI and SAP's Terraform provider speak (see
// shared/reference/btp-cli-server-protocol.md): a login that yields a session id
// in a header, then POST /command/<version>/security/api-credential?<action> with
// {"paramValues":{...}} whose values are all strings. Every response has two
// status layers: the CLI server's outer HTTP status and the backend's status in
// X-Cpcli-Backend-Status. Errors are *Error values that carry both.
//
// The one-time secret of a new credential is returned as an approval.Secret,
// whose every printing redacts, and it never reaches an error or a log line.
package btp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/credbot/credbot/internal/approval"
)

// DefaultServerURL is SAP's central btp CLI server.
const DefaultServerURL = "https://cli.btp.cloud.sap"

// DefaultProtocolVersion is the protocol version pinned in every URL path. It is
// the only place the version lives; the server answers 412 once it considers
// the version outdated (ErrProtocolOutdated), and then this must be bumped.
const DefaultProtocolVersion = "v2.106.1"

// Defaults for retries. The reference client uses 6 retries from 1 s to 120 s;
// we stay a little shorter because a mint sits behind a durable queue that
// retries Temporary errors itself.
const (
	DefaultMaxRetries = 5
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

const (
	// sessionMaxAge is when we log in again even if the server has not yet
	// answered 401: SAP documents sessions as valid for 24 hours.
	sessionMaxAge = 23 * time.Hour
	// maxRetryAfter bounds how long we wait for a server-requested Retry-After
	// before giving the error back to the caller (as Temporary).
	maxRetryAfter = 5 * time.Minute
	// loginTimeout bounds a login that runs on behalf of several callers.
	loginTimeout     = 3 * time.Minute
	defaultUserAgent = "credbot-btp/1 (+https://github.com/credbot/credbot)"
)

// Config says where the btp CLI server is and who the bot is there.
//
// Exactly one login flow is used, chosen in this order:
//   - JWT assertion, when Assertion or TokenSource is set (needs IdP);
//   - X.509 passcode, when TLSClientCertificate is set (needs TLSClientKey,
//     TLSIdPURL and Username);
//   - password, with Username and Password (default IdP when IdP is "").
type Config struct {
	ServerURL     string // BTP_CLI_SERVER_URL, default DefaultServerURL
	GlobalAccount string // BTP_GLOBALACCOUNT: the global account's subdomain, not its GUID

	Username string // BTP_USERNAME
	Password string // BTP_PASSWORD
	IdP      string // BTP_IDP: custom IdP as the btp CLI's --idp; "" for the default (SAP ID service)

	// Assertion is a JWT the custom IdP accepts as a login (BTP_ASSERTION).
	Assertion string
	// TokenSource supplies the JWT assertion instead of Assertion, for
	// short-lived workload tokens. Its token's "id_token" extra is used when
	// present, otherwise its AccessToken.
	TokenSource oauth2.TokenSource

	// X.509 login through an SAP Cloud Identity Services tenant: the client
	// certificate obtains a one-time passcode from TLSIdPURL, which then serves
	// as the password. TLSClientCertificate and TLSClientKey are PEM text or,
	// when they do not start with "-----BEGIN", paths of PEM files.
	TLSClientCertificate string // BTP_TLS_CLIENT_CERTIFICATE
	TLSClientKey         string // BTP_TLS_CLIENT_KEY
	TLSIdPURL            string // BTP_TLS_IDP_URL, e.g. https://tenant.accounts.ondemand.com

	ProtocolVersion string       // BTP_PROTOCOL_VERSION, default DefaultProtocolVersion
	HTTPClient      *http.Client // copied to never follow redirects; default: a client with a 2-minute timeout
	UserAgent       string
	Logger          *slog.Logger // default: discard

	// VerifyCredentials makes Create fetch a client_credentials token from the
	// new credential's tokenurl before returning it (BTP_VERIFY_CREDENTIALS,
	// on unless set to false; ConfigFromEnv sets it).
	VerifyCredentials bool

	// MaxRetries bounds the retries of one request; 0 means DefaultMaxRetries
	// and a negative value disables retries. MinBackoff and MaxBackoff bound the
	// exponential backoff (with full jitter); 0 means the defaults.
	MaxRetries             int
	MinBackoff, MaxBackoff time.Duration

	// Observe, when set, is told about every round trip to the CLI server:
	// the operation (login, create, get, list, delete), its outcome (ok,
	// refused, rate_limited, server_error, unreachable) and how long it took.
	Observe func(op, outcome string, took time.Duration)
}

// ConfigFromEnv reads the environment variables SAP's Terraform provider uses,
// plus BTP_PROTOCOL_VERSION and BTP_VERIFY_CREDENTIALS.
func ConfigFromEnv(getenv func(string) string) Config {
	// Verification is on unless turned off: a credential that cannot get a
	// token is worse than none, since its requester finds out only when it
	// is too late to ask again. An unparsable value is refused by the bot's
	// configuration check; here it keeps the safe default.
	verify := true
	if v, err := strconv.ParseBool(getenv("BTP_VERIFY_CREDENTIALS")); err == nil {
		verify = v
	}
	return Config{
		ServerURL:            getenv("BTP_CLI_SERVER_URL"),
		GlobalAccount:        getenv("BTP_GLOBALACCOUNT"),
		Username:             getenv("BTP_USERNAME"),
		Password:             getenv("BTP_PASSWORD"),
		IdP:                  getenv("BTP_IDP"),
		Assertion:            getenv("BTP_ASSERTION"),
		TLSClientCertificate: getenv("BTP_TLS_CLIENT_CERTIFICATE"),
		TLSClientKey:         getenv("BTP_TLS_CLIENT_KEY"),
		TLSIdPURL:            getenv("BTP_TLS_IDP_URL"),
		ProtocolVersion:      getenv("BTP_PROTOCOL_VERSION"),
		VerifyCredentials:    verify,
	}
}

// loginFlow is the way the client proves its identity to the CLI server.
type loginFlow int

const (
	flowPassword loginFlow = iota
	flowAssertion
	flowX509
)

func (f loginFlow) String() string {
	switch f {
	case flowAssertion:
		return "jwt-assertion"
	case flowX509:
		return "x509-passcode"
	}
	return "password"
}

// Client talks to one btp CLI server as one identity. It is safe for concurrent
// use; concurrent callers share one session and one login.
type Client struct {
	cfg       Config
	base      *url.URL
	flow      loginFlow
	httpc     *http.Client
	idpHTTP   *http.Client // mTLS client for the passcode, X.509 flow only
	loginCert *keyPair     // its certificate, X.509 flow only
	reach     reach        // did the server answer last time, for Health
	log       *slog.Logger

	// Seams for tests: the clock and the wait between retries.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	randMu sync.Mutex
	rand   *rand.Rand

	sessMu   sync.Mutex
	sess     *session
	inflight *loginCall
}

var _ approval.Issuer = (*Client)(nil)

// New checks cfg and returns a client. It does not contact the server; the
// first operation logs in.
func New(cfg Config) (*Client, error) {
	if cfg.ServerURL == "" {
		cfg.ServerURL = DefaultServerURL
	}
	if cfg.ProtocolVersion == "" {
		cfg.ProtocolVersion = DefaultProtocolVersion
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	// Every problem is collected, in the order of the settings, so that an
	// operator fixes one list instead of one setting per restart.
	var errs []error
	base, err := url.Parse(strings.TrimRight(cfg.ServerURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		errs = append(errs, fmt.Errorf("btp: BTP_CLI_SERVER_URL %q must be an absolute http(s) URL, like %s", cfg.ServerURL, DefaultServerURL))
	}
	if !strings.HasPrefix(cfg.ProtocolVersion, "v") {
		errs = append(errs, fmt.Errorf("btp: BTP_PROTOCOL_VERSION %q must look like %s", cfg.ProtocolVersion, DefaultProtocolVersion))
	}
	if cfg.GlobalAccount == "" {
		errs = append(errs, errors.New("btp: the global account subdomain (BTP_GLOBALACCOUNT) is required"))
	} else if err := (approval.Scope{Kind: approval.ScopeGlobalAccount, ID: cfg.GlobalAccount}).Validate(); err != nil ||
		(approval.Scope{Kind: approval.ScopeSubaccount, ID: cfg.GlobalAccount}).Validate() == nil {
		// A GUID is a well-formed subdomain, but it is the classic mistake:
		// the login would fail with a puzzling 404.
		errs = append(errs, fmt.Errorf("btp: BTP_GLOBALACCOUNT %q must be the global account's subdomain, not its GUID or display name", cfg.GlobalAccount))
	}

	c := &Client{
		cfg:   cfg,
		base:  base,
		httpc: withoutRedirects(cfg.HTTPClient),
		log:   cfg.Logger,
		now:   time.Now,
		sleep: sleepCtx,
		rand:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	switch {
	case cfg.Assertion != "" || cfg.TokenSource != nil:
		c.flow = flowAssertion
		if cfg.IdP == "" {
			errs = append(errs, errors.New("btp: a JWT assertion login needs the custom IdP (BTP_IDP)"))
		}
	case cfg.TLSClientCertificate != "":
		c.flow = flowX509
		if cfg.TLSClientKey == "" || cfg.TLSIdPURL == "" || cfg.Username == "" {
			errs = append(errs, errors.New("btp: an X.509 login needs BTP_TLS_CLIENT_CERTIFICATE, BTP_TLS_CLIENT_KEY, BTP_TLS_IDP_URL and BTP_USERNAME"))
		}
		if cfg.TLSIdPURL != "" {
			idp, err := url.Parse(strings.TrimRight(cfg.TLSIdPURL, "/"))
			if err != nil || idp.Scheme != "https" || idp.Host == "" {
				errs = append(errs, fmt.Errorf("btp: BTP_TLS_IDP_URL %q must be an https URL", cfg.TLSIdPURL))
			} else if c.cfg.IdP == "" {
				// The btp CLI names a custom IdP by its host; the IAS tenant that
				// issues the passcode is the IdP that must accept it.
				c.cfg.IdP = idp.Host
			}
		}
		if cfg.TLSClientKey != "" {
			pair, err := loadKeyPair(cfg.TLSClientCertificate, cfg.TLSClientKey)
			if err != nil {
				errs = append(errs, err)
				break
			}
			c.loginCert = &keyPair{cert: cfg.TLSClientCertificate, key: cfg.TLSClientKey, log: c.log, pair: pair}
			c.loginCert.stamp, _ = c.loginCert.stampNow()
			c.idpHTTP = mtlsClient(c.httpc, c.loginCert.get)
		}
	case cfg.Username != "" && cfg.Password != "":
		c.flow = flowPassword
	default:
		errs = append(errs, errors.New("btp: no login configured: set BTP_USERNAME and BTP_PASSWORD, BTP_ASSERTION, or the BTP_TLS_* variables"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// loadKeyPair accepts PEM text or file paths for the X.509 login.
func loadKeyPair(cert, key string) (tls.Certificate, error) {
	read := func(what, v string) ([]byte, error) {
		if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
			return []byte(v), nil
		}
		b, err := os.ReadFile(v)
		var pe *fs.PathError
		if err != nil && what == "BTP_TLS_CLIENT_KEY" && errors.As(err, &pe) {
			// The path is the value: if it is key material without its
			// -----BEGIN line, the error must not show it.
			return nil, fmt.Errorf("btp: reading %s: it is neither PEM text (-----BEGIN …) nor a file credbot can read (%w); its text is not shown", what, pe.Err)
		}
		if err != nil {
			return nil, fmt.Errorf("btp: reading %s: %w", what, err)
		}
		return b, nil
	}
	cb, err := read("BTP_TLS_CLIENT_CERTIFICATE", cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := read("BTP_TLS_CLIENT_KEY", key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		// The error text of X509KeyPair never includes key material.
		return tls.Certificate{}, fmt.Errorf("btp: X.509 login certificate and key: %w", err)
	}
	return pair, nil
}

// withoutRedirects returns a copy of hc (or of a default client with a 2-minute
// timeout) that hands a 3xx back instead of following it. Go's client follows a
// 307/308 with the body and with every header but Authorization and cookies,
// whatever the host: the password or assertion of a login, the session id of a
// command, the new secret of a token request would go wherever the answer
// points. A redirect is reported instead (redirectMessage); the caller's client
// is left untouched.
func withoutRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	c := *hc
	c.CheckRedirect = refuseRedirect
	return &c
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redirectMessage names where a refused redirect pointed, resolved against the
// URL that answered, and says what to do about it.
func redirectMessage(from *url.URL, location, fix string) string {
	host := "a location it did not name"
	if from == nil {
		from = &url.URL{}
	}
	if u, err := from.Parse(location); location != "" && err == nil && u.Host != "" {
		host = clean(u.Host)
	}
	return "BTP answered with a redirect to " + host + "; credbot does not follow redirects, " + fix
}

// mtlsClient derives a client that presents pair, keeping base's timeout and,
// when it is an *http.Transport, its settings (proxy, root CAs). Like every
// client here it never follows a redirect: the next host would get the
// client certificate's handshake and the request.
func mtlsClient(base *http.Client, get func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *http.Client {
	var tr *http.Transport
	if t, ok := base.Transport.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.Certificates = nil
	tr.TLSClientConfig.GetClientCertificate = get
	return &http.Client{Transport: tr, Timeout: base.Timeout, CheckRedirect: refuseRedirect}
}

// keyPair is the X.509 login's certificate and key. Given as files (a mounted
// Kubernetes TLS secret, which cert-manager renews in place), they are read
// again whenever either file changes, so that a renewed certificate is used
// from the next login on, without a restart.
type keyPair struct {
	cert, key string // PEM text, or file paths
	log       *slog.Logger

	mu     sync.Mutex
	pair   tls.Certificate
	stamp  string // size and modification time of both files when pair was read
	failed string // the stamp of files that did not load, so it is said once
}

func (k *keyPair) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.pair
	return &p, nil
}

// stampNow describes the files as they are now; PEM text has no stamp.
func (k *keyPair) stampNow() (string, error) {
	var b strings.Builder
	for _, v := range []string{k.cert, k.key} {
		if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
			return "", nil
		}
		fi, err := os.Stat(v) // follows the symlinks a Secret volume swaps
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// refresh reads the files again if they changed, and reports whether the
// certificate did. A change that does not load (a half-written renewal, a key
// that does not match) keeps the previous pair, and says so once.
func (k *keyPair) refresh() bool {
	st, err := k.stampNow()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil || st == "" || st == k.stamp || st == k.failed {
		return false
	}
	pair, err := loadKeyPair(k.cert, k.key)
	if err != nil {
		k.failed = st
		k.log.Warn("the BTP client certificate files changed but do not load; logging in with the previous certificate until they do",
			"error", err.Error())
		return false
	}
	k.pair, k.stamp, k.failed = pair, st, ""
	attrs := []any{}
	if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	k.log.Info("the BTP client certificate changed on disk and was reloaded", attrs...)
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff is the wait before retry number attempt (0-based): full jitter over
// an exponentially growing window, at least the server's Retry-After.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	window := c.cfg.MinBackoff << min(attempt, 30)
	if window <= 0 || window > c.cfg.MaxBackoff {
		window = c.cfg.MaxBackoff
	}
	c.randMu.Lock()
	d := c.cfg.MinBackoff/2 + time.Duration(c.rand.Int64N(int64(window)))
	c.randMu.Unlock()
	return max(min(d, c.cfg.MaxBackoff), retryAfter)
}
