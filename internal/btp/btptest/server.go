// Package btptest is an emulator of SAP's btp CLI server, limited to login,
// security/api-credential, security/role-collection and security/user
// (roles.go), faithful to the recorded traffic in
// shared/fixtures/btp-cli-server and to shared/reference/btp-cli-server-protocol.md.
// Tests use it through NewServer; the bot's local mode serves NewHandler.
//
// Besides the protocol it serves an OAuth token endpoint at every issued
// tokenurl, which grants client_credentials only to live credentials with the
// right secret, so that a test can prove the secret it holds really works.
//
// Where the real server's behaviour is not recorded, the emulator makes an
// assumption and says so in a comment marked "Assumption".
package btptest

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

// Defaults of Options.
const (
	DefaultGlobalAccount = "acme-ga"
	DefaultUser          = "btp-bot@acme.example"
	DefaultPassword      = "local-password"
	DefaultSubaccount    = "11111111-2222-4333-8444-555555555555"
	DefaultDirectory     = "22222222-3333-4444-8555-666666666666"
	DefaultSessionTTL    = 24 * time.Hour
)

// MessageNotSentToBackend is the CLI server's X-Cpcli-Server-Message on a 504
// that never reached the backend (recorded), which makes it safe to retry.
const MessageNotSentToBackend = "A timeout was reached while preparing the command execution. The command execution request was not sent to the backend."

// Options configure an emulated global account. Zero values get defaults.
type Options struct {
	GlobalAccount string            // subdomain, default DefaultGlobalAccount
	Users         map[string]string // user → password, default DefaultUser/DefaultPassword
	IdP           string            // custom IdP logins must name; "" = default IdP only
	Subaccounts   []string          // GUIDs, default [DefaultSubaccount]
	Directories   []string          // GUIDs, default [DefaultDirectory]
	SessionTTL    time.Duration     // sliding session lifetime, default 24 h
	// MinProtocolVersion makes older protocol versions in the URL fail with
	// 412, e.g. "v2.106.1". "" accepts any v2.x.
	MinProtocolVersion string
	Logger             *slog.Logger
	// Assertions are the JWTs a JWT-assertion login accepts, mapped to the
	// user they log in. Such a login needs a custom IdP, as at SAP.
	Assertions map[string]string
	// Origins are the identity providers' origin keys users may come from,
	// besides sap.default (alias ldap), e.g. "sap.custom".
	Origins []string
	// RoleCollections replaces the role collections each kind of scope offers
	// (DefaultRoleCollections).
	RoleCollections map[approval.ScopeKind][]string
	// TLS makes NewServer serve HTTPS and ask for client certificates, so that
	// certificate credentials can get tokens over mutual TLS. Use Client.
	TLS bool
}

// Fault changes the answers to the next requests of one action.
type Fault struct {
	Action string // login, create, get, list, delete, token, assign, unassign
	// Object narrows Action to one command, e.g. "security/user" or
	// "security/role-collection"; "" matches any (security/api-credential's
	// get and security/user's get share the action word).
	Object string
	Times  int // how many requests it hits: 0 means once, negative means every one

	Status     int           // outer HTTP status to answer instead of the real one
	RetryAfter time.Duration // sent as Retry-After (whole seconds, rounded up)
	Header     http.Header   // extra response headers, e.g. X-Cpcli-Server-Message
	Latency    time.Duration // delay before answering (cut short if the client gives up)

	// DropAfterCommit performs the operation, then closes the connection
	// without an answer: the client cannot know that it happened.
	DropAfterCommit bool
	// Commit performs the operation before answering with Status (a 5xx that
	// comes after the backend acted). Without it a Status fault happens
	// before the operation.
	Commit bool
	// BackendStatus answers outer 200 with this X-Cpcli-Backend-Status and
	// Body, instead of performing the operation.
	BackendStatus int
	Body          string
}

// Request is one entry of the request log.
type Request struct {
	Time          time.Time
	Method        string
	Path          string
	Action        string // login, create, get, list, delete, token, assign, unassign, or ""
	Object        string // the command, e.g. security/api-credential; "" for a login or token
	Headers       http.Header
	Params        map[string]string // paramValues; for a login its body, password and jwt redacted
	Body          []byte            // raw command body (never a login body)
	Status        int               // outer status; 0 when the connection was dropped
	BackendStatus int               // X-Cpcli-Backend-Status, 0 when absent
	Dropped       bool
}

// Server is the emulator. It implements http.Handler.
type Server struct {
	opts Options
	log  *slog.Logger
	ts   *httptest.Server

	mu       sync.Mutex
	sessions map[string]*session
	subs     map[string]bool
	dirs     map[string]bool
	creds    map[approval.Scope]map[string]*credential
	clients  map[clientKey]*oauthClient
	users    map[approval.Scope]map[userKey]*shadowUser
	rcs      map[approval.Scope]map[string]bool // role collections per scope
	origins  map[string]bool
	secrets  []string
	reqs     []Request
	counts   map[string]int // requests per action, kept whatever KeepLast drops
	keep     int            // KeepLast's bound; 0 keeps every request
	faults   []*Fault
}

type session struct {
	user    string
	expires time.Time
}

type clientKey struct {
	scope    approval.Scope
	readOnly bool
}

// oauthClient is the platform-managed OAuth client that all credentials of one
// scope and access level share (reference §2.5).
type oauthClient struct {
	id, xsappname, instanceID string
}

type credential struct {
	name        string
	readOnly    bool
	certificate string // non-empty for a certificate credential
	secret      string // clientsecret, or the private key of a certificate credential
	client      *oauthClient
}

// NewServer starts the emulator on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	s := NewHandler(opts)
	if !opts.TLS {
		s.ts = httptest.NewServer(s)
		return s
	}
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.ts.StartTLS()
	return s
}

// Client returns an HTTP client that trusts a started server's certificate.
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return http.DefaultClient
	}
	return s.ts.Client()
}

// NewHandler returns the emulator without starting it, to serve with an
// http.Server of one's own.
func NewHandler(opts Options) *Server {
	if opts.GlobalAccount == "" {
		opts.GlobalAccount = DefaultGlobalAccount
	}
	// Own copies: the caller may keep changing its maps and slices.
	opts.Users, opts.Assertions = maps.Clone(opts.Users), maps.Clone(opts.Assertions)
	opts.Subaccounts, opts.Directories = slices.Clone(opts.Subaccounts), slices.Clone(opts.Directories)
	if len(opts.Users) == 0 {
		opts.Users = map[string]string{DefaultUser: DefaultPassword}
	}
	if len(opts.Subaccounts) == 0 {
		opts.Subaccounts = []string{DefaultSubaccount}
	}
	if len(opts.Directories) == 0 {
		opts.Directories = []string{DefaultDirectory}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	s := &Server{
		opts:     opts,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		sessions: map[string]*session{},
		subs:     map[string]bool{},
		dirs:     map[string]bool{},
		creds:    map[approval.Scope]map[string]*credential{},
		clients:  map[clientKey]*oauthClient{},
		users:    map[approval.Scope]map[userKey]*shadowUser{},
		rcs:      map[approval.Scope]map[string]bool{},
		origins:  map[string]bool{approval.DefaultUserOrigin: true},
	}
	for _, o := range opts.Origins {
		s.origins[approval.NormalizeOrigin(o)] = true
	}
	for _, id := range opts.Subaccounts {
		s.subs[strings.ToLower(id)] = true
	}
	for _, id := range opts.Directories {
		s.dirs[strings.ToLower(id)] = true
	}
	return s
}

// URL is the base URL of a started server, for Config.ServerURL.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close stops a started server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
}

// GlobalAccount is the emulated global account's subdomain.
func (s *Server) GlobalAccount() string { return s.opts.GlobalAccount }

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// Count returns how many requests of action the server received, faulted or
// not (also those KeepLast no longer keeps).
func (s *Server) Count(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[action]
}

// CountCommand is Count for one command's action, e.g.
// CountCommand("security/role-collection", "assign").
func (s *Server) CountCommand(object, action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[object+"?"+action]
}

// KeepLast bounds the request log to the newest n entries (0: keep all), so
// that a long load run measures the bot's memory, not the emulator's log.
func (s *Server) KeepLast(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = n
}

// Live returns the sorted names of the live credentials in scope.
func (s *Server) Live(scope approval.Scope) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.creds[key(scope)] {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Secrets returns every secret the server ever issued: client secrets and the
// private keys of certificate credentials. Tests scan logs and stores for them.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secrets)
}

// Inject queues a fault. Faults of one action apply in the order injected.
func (s *Server) Inject(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults drops every queued fault, e.g. one injected for every request.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// ExpireSessions ends every session, so the next command gets 401.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

func key(scope approval.Scope) approval.Scope {
	return approval.Scope{Kind: scope.Kind, ID: strings.ToLower(scope.ID)}
}

// takeFault pops the next fault for action, if any.
func (s *Server) takeFault(action, object string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Action != action || (f.Object != "" && f.Object != object) {
			continue
		}
		out := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return &out
	}
	return nil
}

// reply is an answer before it is written.
type reply struct {
	status  int
	backend int // X-Cpcli-Backend-Status; 0 = none
	header  http.Header
	body    []byte
}

func newReply(status int) *reply { return &reply{status: status, header: http.Header{}} }

// backendReply is the CLI server's outer 200 around a backend answer.
func backendReply(backend int, body any) *reply {
	r := newReply(http.StatusOK)
	r.backend = backend
	switch b := body.(type) {
	case nil:
	case []byte:
		r.body = b
	case string:
		r.body = []byte(b)
	default:
		r.body, _ = json.Marshal(b)
	}
	return r
}

func backendError(backend int, msg string) *reply {
	return backendReply(backend, map[string]string{"error": msg})
}

func serverMessage(status int, msg string) *reply {
	r := newReply(status)
	r.header.Set("X-Cpcli-Server-Message", msg)
	return r
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	entry := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Headers: r.Header.Clone()}
	if entry.Headers.Get("Authorization") != "" {
		// A token request's basic auth carries a client secret.
		entry.Headers.Set("Authorization", "[REDACTED]")
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))

	var (
		action  string
		version string
		object  string
		handle  func() *reply
	)
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/login/"):
		action, version = "login", strings.TrimPrefix(path, "/login/")
		handle = func() *reply { return s.login(r, body, &entry) }
	case strings.HasPrefix(path, "/command/"):
		rest := strings.TrimPrefix(path, "/command/")
		version, object, _ = strings.Cut(rest, "/")
		action = r.URL.RawQuery
		entry.Body = body
		handle = func() *reply { return s.command(r, object, action, body, &entry) }
	case strings.HasPrefix(path, "/zones/") && strings.HasSuffix(path, "/oauth/token"):
		action = "token"
		handle = func() *reply { return s.token(r, body) }
	default:
		handle = func() *reply { return newReply(http.StatusNotFound) }
	}
	entry.Action = action

	if action == "login" || strings.HasPrefix(path, "/command/") {
		if !validVersion(version) {
			handle = func() *reply { return newReply(http.StatusNotFound) }
		} else if s.opts.MinProtocolVersion != "" && compareVersions(version, s.opts.MinProtocolVersion) < 0 {
			handle = func() *reply {
				return serverMessage(http.StatusPreconditionFailed,
					fmt.Sprintf("Protocol version %s is outdated; update your client to %s or later.", version, s.opts.MinProtocolVersion))
			}
		}
	}
	if r.Method != http.MethodPost {
		handle = func() *reply { return newReply(http.StatusMethodNotAllowed) }
	}

	entry.Object = object
	f := s.takeFault(action, object)
	if f != nil && f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	var rep *reply
	switch {
	case f == nil || (f.Status == 0 && f.BackendStatus == 0 && !f.DropAfterCommit):
		rep = handle()
	case f.DropAfterCommit:
		handle()
		entry.Dropped = true
		s.record(entry)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	case f.Status != 0:
		if f.Commit {
			handle()
		}
		rep = faultReply(f)
	default:
		if f.Commit {
			handle()
		}
		rep = backendReply(f.BackendStatus, f.Body)
	}
	if f != nil {
		for k, vs := range f.Header {
			for _, v := range vs {
				rep.header.Add(k, v)
			}
		}
		if f.RetryAfter > 0 {
			rep.header.Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		}
	}
	s.write(w, rep)
	entry.Status, entry.BackendStatus = rep.status, rep.backend
	s.record(entry)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "btp emulator",
		slog.String("action", action), slog.String("path", path), slog.Int("status", rep.status),
		slog.Int("backend_status", rep.backend), slog.String("correlation_id", r.Header.Get("X-Correlationid")))
}

// faultReply is the CLI server's own answer with an injected status.
func faultReply(f *Fault) *reply {
	rep := newReply(f.Status)
	if f.Status == http.StatusTooManyRequests {
		// The CLI server's rate-limit body (reference §1.5).
		rep.body = []byte(`{"error":{"code":11006,"message":"Request rate limit exceeded. Try again later.","target":"/command","details":[]}}`)
	}
	return rep
}

func (s *Server) write(w http.ResponseWriter, rep *reply) {
	h := w.Header()
	for k, vs := range rep.header {
		h[k] = vs
	}
	h.Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	h.Set("X-Vcap-Request-Id", randomUUID())
	if rep.backend != 0 {
		h.Set("X-Cpcli-Backend-Status", strconv.Itoa(rep.backend))
		if len(rep.body) > 0 {
			h.Set("X-Cpcli-Backend-Mediatype", "application/json")
		}
	}
	if len(rep.body) > 0 || rep.status == http.StatusOK {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

func (s *Server) record(e Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[e.Action]++
	if e.Object != "" {
		s.counts[e.Object+"?"+e.Action]++
	}
	s.reqs = append(s.reqs, e)
	if s.keep > 0 && len(s.reqs) > 2*s.keep {
		// Drop the oldest in one copy now and then, not one by one.
		s.reqs = append(s.reqs[:0:0], s.reqs[len(s.reqs)-s.keep:]...)
	}
}

// login implements POST /login/<version> for the password and JWT flows.
func (s *Server) login(r *http.Request, body []byte, entry *Request) *reply {
	var req struct {
		CustomIdP string `json:"customIdp"`
		Subdomain string `json:"subdomain"`
		UserName  string `json:"userName"`
		Password  string `json:"password"`
		JWT       string `json:"jwt"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return newReply(http.StatusBadRequest)
	}
	entry.Params = map[string]string{"customIdp": req.CustomIdP, "subdomain": req.Subdomain, "userName": req.UserName}
	if req.Password != "" {
		entry.Params["password"] = "[REDACTED]"
	}
	if req.JWT != "" {
		entry.Params["jwt"] = "[REDACTED]"
	}
	if req.Subdomain != s.opts.GlobalAccount {
		return newReply(http.StatusNotFound)
	}
	// Assumption: a login naming another IdP than the configured one is
	// refused like a wrong password.
	if req.CustomIdP != s.opts.IdP {
		return newReply(http.StatusUnauthorized)
	}
	user := ""
	switch {
	case req.JWT != "":
		if u, ok := s.opts.Assertions[req.JWT]; ok && s.opts.IdP != "" {
			user = u
		}
	default:
		if pw, ok := s.opts.Users[req.UserName]; ok && req.Password != "" &&
			subtle.ConstantTimeCompare([]byte(pw), []byte(req.Password)) == 1 {
			user = req.UserName
		}
	}
	if user == "" {
		return newReply(http.StatusUnauthorized)
	}
	id := randomHex(24)
	s.mu.Lock()
	s.sessions[id] = &session{user: user, expires: time.Now().Add(s.opts.SessionTTL)}
	s.mu.Unlock()
	issuer := cmp.Or(s.opts.IdP, "accounts.sap.com")
	rep := newReply(http.StatusOK)
	rep.header.Set("X-Cpcli-Sessionid", id)
	rep.body, _ = json.Marshal(map[string]string{"issuer": issuer, "mail": user})
	return rep
}

// command implements POST /command/<version>/security/api-credential?<action>.
func (s *Server) command(r *http.Request, object, action string, body []byte, entry *Request) *reply {
	s.mu.Lock()
	sess, ok := s.sessions[r.Header.Get("X-Cpcli-Sessionid")]
	if ok && time.Now().After(sess.expires) {
		delete(s.sessions, r.Header.Get("X-Cpcli-Sessionid"))
		ok = false
	}
	if ok {
		sess.expires = time.Now().Add(s.opts.SessionTTL) // renewed with each command
	}
	s.mu.Unlock()
	if !ok {
		// Assumption: an unknown or expired session is an outer 401 (reference §1.3).
		return newReply(http.StatusUnauthorized)
	}
	if sd := r.Header.Get("X-Cpcli-Subdomain"); sd != s.opts.GlobalAccount {
		return serverMessage(http.StatusForbidden,
			fmt.Sprintf("Global account '%s' does not exist and thus did not entitle you to execute the command.", sd))
	}
	switch object {
	case "security/api-credential", "security/role-collection", "security/user":
	default:
		return serverMessage(http.StatusNotFound, "Unknown command "+object+"?"+action)
	}
	params, err := paramValues(body)
	if err != nil {
		// Assumption: a malformed body is the backend's 400.
		return backendError(http.StatusBadRequest, err.Error())
	}
	entry.Params = params

	var scope approval.Scope
	n := 0
	for k, kind := range map[string]approval.ScopeKind{
		"subaccount": approval.ScopeSubaccount, "directory": approval.ScopeDirectory, "globalAccount": approval.ScopeGlobalAccount,
	} {
		if v, ok := params[k]; ok {
			n++
			scope = approval.Scope{Kind: kind, ID: v}
			if v == "" {
				// Recorded: an empty scope value is the CLI server's own
				// outer 400, with an empty body and no X-Cpcli-* header.
				return newReply(http.StatusBadRequest)
			}
		}
	}
	if n != 1 {
		// Assumption: the real server's answer without a scope is not recorded.
		return backendError(http.StatusBadRequest, "Specify exactly one of subaccount, directory or globalAccount.")
	}
	if rep := s.checkScope(scope); rep != nil {
		return rep
	}
	switch object {
	case "security/role-collection":
		return s.roleCollection(r, action, scope, params)
	case "security/user":
		return s.userCommand(r, action, scope, params)
	}
	switch action {
	case "create":
		return s.create(r, scope, params)
	case "get":
		return s.get(r, scope, params["name"])
	case "list":
		return s.list(r, scope)
	case "delete":
		return s.delete(r, scope, params["name"])
	}
	return serverMessage(http.StatusNotFound, "Unknown command "+object+"?"+action)
}

// paramValues decodes {"paramValues":{...}} and insists on string values, as
// the reference client sends them for api-credential.
func paramValues(body []byte) (map[string]string, error) {
	var req struct {
		ParamValues map[string]any `json:"paramValues"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("Malformed request body: %v", err)
	}
	out := make(map[string]string, len(req.ParamValues))
	for k, v := range req.ParamValues {
		sv, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("Parameter '%s' must be a string.", k)
		}
		out[k] = sv
	}
	return out, nil
}

func (s *Server) checkScope(scope approval.Scope) *reply {
	id := strings.ToLower(scope.ID)
	switch scope.Kind {
	case approval.ScopeSubaccount:
		if !s.subs[id] {
			return serverMessage(http.StatusForbidden,
				fmt.Sprintf("Subaccount '%s' does not exist and thus did not entitle you to execute the command.", scope.ID))
		}
	case approval.ScopeDirectory:
		if !s.dirs[id] {
			return serverMessage(http.StatusForbidden,
				fmt.Sprintf("Directory '%s' does not exist and thus did not entitle you to execute the command.", scope.ID))
		}
	case approval.ScopeGlobalAccount:
		if scope.ID != s.opts.GlobalAccount {
			// Assumption: modelled on the recorded subaccount/directory message.
			return serverMessage(http.StatusForbidden,
				fmt.Sprintf("Global account '%s' does not exist and thus did not entitle you to execute the command.", scope.ID))
		}
	}
	return nil
}

// zone is what XSUAA reports about the identity zone of a scope.
type zone struct {
	guid         string // subaccountid, tenantid, zoneid, identityzoneid
	identityzone string
	base         string // URL of the emulated XSUAA zone
}

func (s *Server) zoneOf(r *http.Request, scope approval.Scope) zone {
	z := zone{guid: strings.ToLower(scope.ID), identityzone: strings.ToLower(scope.ID)}
	switch scope.Kind {
	case approval.ScopeSubaccount:
		z.identityzone = s.zoneName(key(scope))
	case approval.ScopeGlobalAccount:
		// The global account scope reports the GA's GUID, not its subdomain.
		z.guid = nameUUID("ga:" + s.opts.GlobalAccount)
		z.identityzone = s.opts.GlobalAccount
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	z.base = scheme + "://" + r.Host + "/zones/" + z.identityzone
	return z
}

// clientFor returns the shared OAuth client of a scope and access level.
// Callers hold s.mu.
func (s *Server) clientFor(scope approval.Scope, readOnly bool) *oauthClient {
	k := clientKey{key(scope), readOnly}
	if c, ok := s.clients[k]; ok {
		return c
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s|%t", k.scope, readOnly)
	n := 100000 + h.Sum32()%900000
	access := "full-access"
	if readOnly {
		access = "read-only"
	}
	c := &oauthClient{
		id:         fmt.Sprintf("sb-%s!a%d", access, n),
		xsappname:  fmt.Sprintf("%s!a%d", access, n),
		instanceID: randomUUID(),
	}
	s.clients[k] = c
	return c
}

// obj is a JSON object that keeps its key order, so answers read like the
// recordings.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.k)
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func (s *Server) create(r *http.Request, scope approval.Scope, p map[string]string) *reply {
	name := p["name"]
	if name == "" {
		// Assumption: the server names a credential created without a name.
		name = "api-credential-" + randomHex(4)
	}
	readOnly := false
	switch p["readOnly"] {
	case "", "false":
	case "true":
		readOnly = true
	default:
		return backendError(http.StatusBadRequest, "The value of readOnly must be true or false.")
	}
	var cert, secret string
	if given := p["certificate"]; given != "" {
		subject, ok := parsePEMCertificate(given)
		if !ok {
			return backendError(http.StatusBadRequest, "The certificate is not valid PEM format.")
		}
		// Assumption: the recordings redact certificate and key; SAP calls the
		// returned certificate "computed based on the one passed" and the key
		// "generated", so we issue a new key pair for the same subject.
		cert, secret = computeCertificate(subject)
	} else {
		secret = randomUUID() + "$EMU" + base64.RawURLEncoding.EncodeToString(randomBytes(24)) + "="
	}

	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(scope)
	if _, dup := s.creds[k][name]; dup {
		// Assumption: a duplicate name is refused with backend 409 and an error
		// body; the real answer is not recorded (reference §6).
		return backendError(http.StatusConflict, fmt.Sprintf("An API credential with name '%s' already exists.", name))
	}
	c := &credential{name: name, readOnly: readOnly, certificate: cert, secret: secret, client: s.clientFor(scope, readOnly)}
	if s.creds[k] == nil {
		s.creds[k] = map[string]*credential{}
	}
	s.creds[k][name] = c
	s.secrets = append(s.secrets, secret)

	host := strings.TrimPrefix(strings.TrimPrefix(z.base, "http://"), "https://")
	uaadomain, _, _ := strings.Cut(host, "/")
	var out obj
	if cert == "" {
		out = obj{
			{"tenantmode", "dedicated"}, {"subaccountid", z.guid}, {"credential-type", "secret"},
			{"clientid", c.client.id}, {"tokenurl", c.tokenURL(z)}, {"xsappname", c.client.xsappname},
			{"clientsecret", secret}, {"serviceInstanceId", c.client.instanceID}, {"url", z.base},
			{"uaadomain", uaadomain}, {"apiurl", apiURL(z)}, {"identityzone", z.identityzone},
			{"identityzoneid", z.guid}, {"tenantid", z.guid}, {"name", name}, {"zoneid", z.guid},
			{"read-only", readOnly},
		}
	} else {
		out = obj{
			{"tenantmode", "dedicated"}, {"subaccountid", z.guid}, {"clientid", c.client.id},
			{"credential-type", "client certificate"}, {"tokenurl", c.tokenURL(z)}, {"clientx509enabled", false},
			{"xsappname", c.client.xsappname}, {"certificate", cert}, {"serviceInstanceId", c.client.instanceID},
			{"url", z.base}, {"uaadomain", uaadomain}, {"apiurl", apiURL(z)}, {"certurl", z.base + "/cert"},
			{"identityzone", z.identityzone}, {"identityzoneid", z.guid}, {"tenantid", z.guid}, {"name", name},
			{"zoneid", z.guid}, {"certificate-pinning", false}, {"read-only", readOnly},
			{"key", secret},
		}
	}
	return backendReply(http.StatusOK, out)
}

func (c *credential) tokenURL(z zone) string {
	if c.certificate != "" {
		return z.base + "/cert/oauth/token"
	}
	return z.base + "/oauth/token"
}

func apiURL(z zone) string { return z.base + "/api" }

// summary is the reduced shape of get and list, with camelCase clientId.
func (c *credential) summary(z zone) obj {
	o := obj{
		{"credential-type", "secret"}, {"tokenurl", c.tokenURL(z)}, {"clientId", c.client.id},
		{"apiurl", apiURL(z)},
	}
	if c.certificate != "" {
		o[0].v = "client certificate"
		o = append(o, kv{"certificate", c.certificate})
	}
	return append(o, kv{"name", c.name}, kv{"read-only", c.readOnly})
}

func notFound(z zone, name string) *reply {
	// Assumption: modelled on the recorded XSUAA 404 of role-collection?get.
	return backendError(http.StatusNotFound, fmt.Sprintf("No entity found with values = [[%s, %s]]", z.guid, name))
}

func (s *Server) get(r *http.Request, scope approval.Scope, name string) *reply {
	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[key(scope)][name]
	if !ok {
		return notFound(z, name)
	}
	return backendReply(http.StatusOK, c.summary(z))
}

// list answers a bare array of get-shaped items. Assumption: not recorded;
// a third-party script reads it as a top-level array (reference §2.4).
func (s *Server) list(r *http.Request, scope approval.Scope) *reply {
	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	byName := s.creds[key(scope)]
	items := []obj{}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		items = append(items, byName[name].summary(z))
	}
	return backendReply(http.StatusOK, items)
}

func (s *Server) delete(r *http.Request, scope approval.Scope, name string) *reply {
	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(scope)
	if _, ok := s.creds[k][name]; !ok {
		// Assumption: deleting an unknown name is a backend 404 like get.
		return notFound(z, name)
	}
	delete(s.creds[k], name)
	return backendReply(http.StatusOK, "{}")
}

// token is the XSUAA token endpoint of a zone: client_credentials only, and
// only for a live credential presenting its secret (basic auth or form) or,
// on the /cert/ endpoint over TLS, its certificate.
func (s *Server) token(r *http.Request, body []byte) *reply {
	deny := func(status int, code string) *reply {
		rep := newReply(status)
		rep.body, _ = json.Marshal(map[string]string{"error": code, "error_description": "Bad credentials"})
		return rep
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("grant_type") != "client_credentials" {
		return deny(http.StatusBadRequest, "unsupported_grant_type")
	}
	zoneName := strings.TrimPrefix(r.URL.Path, "/zones/")
	zoneName, certPath := strings.CutSuffix(strings.TrimSuffix(zoneName, "/oauth/token"), "/cert")
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-encoded inside Basic auth.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for scope, byName := range s.creds {
		if s.zoneName(scope) != zoneName {
			continue
		}
		for _, c := range byName {
			if c.client.id != id {
				continue
			}
			ok := false
			switch {
			case certPath && c.certificate != "":
				ok = r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && samePEMCertificate(c.certificate, r.TLS.PeerCertificates[0].Raw)
			case !certPath && c.certificate == "":
				ok = secret != "" && subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) == 1
			}
			if ok {
				rep := newReply(http.StatusOK)
				rep.body, _ = json.Marshal(map[string]any{
					"access_token": "emu-token-" + randomHex(16), "token_type": "bearer",
					"expires_in": 43199, "scope": "uaa.resource", "jti": randomHex(16),
				})
				return rep
			}
		}
	}
	return deny(http.StatusUnauthorized, "unauthorized")
}

// zoneName is the identityzone of a scope, as zoneOf computes it. Callers
// hold s.mu.
func (s *Server) zoneName(scope approval.Scope) string {
	switch scope.Kind {
	case approval.ScopeSubaccount:
		// Like a subaccount subdomain: readable, and unique enough here.
		return "sa-" + scope.ID[:min(8, len(scope.ID))]
	case approval.ScopeGlobalAccount:
		return s.opts.GlobalAccount
	}
	return scope.ID
}

func parsePEMCertificate(v string) (pkix.Name, bool) {
	block, _ := pem.Decode([]byte(v))
	if block == nil || block.Type != "CERTIFICATE" {
		return pkix.Name{}, false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return pkix.Name{}, false
	}
	return c.Subject, true
}

// computeCertificate issues a client certificate with a fresh key for subject.
func computeCertificate(subject pkix.Name) (certPEM, keyPEM string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	serial := new(big.Int).SetBytes(randomBytes(16))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

func samePEMCertificate(pemText string, der []byte) bool {
	block, _ := pem.Decode([]byte(pemText))
	return block != nil && subtle.ConstantTimeCompare(block.Bytes, der) == 1
}

func validVersion(v string) bool {
	if !strings.HasPrefix(v, "v") || len(v) < 2 {
		return false
	}
	for _, part := range strings.Split(v[1:], ".") {
		if _, err := strconv.Atoi(part); err != nil {
			return false
		}
	}
	return true
}

// compareVersions orders "v2.106.1"-style versions numerically.
func compareVersions(a, b string) int {
	pa := strings.Split(strings.TrimPrefix(a, "v"), ".")
	pb := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func randomUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// nameUUID derives a stable GUID from a name, for the global account's GUID.
func nameUUID(name string) string {
	h := fnv.New128a()
	h.Write([]byte(name))
	b := h.Sum(nil)
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}
