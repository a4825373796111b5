package btptest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/btp/internal/cassette"
)

// wire is a bare protocol client, so that these tests see exactly what the
// emulator answers.
type wire struct {
	t       *testing.T
	base    string
	session string
	version string
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) backend() string { return a.header.Get("X-Cpcli-Backend-Status") }

func (a answer) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return m
}

func newWire(t *testing.T, s *btptest.Server) *wire {
	return &wire{t: t, base: s.URL(), version: "v2.106.1"}
}

func (w *wire) post(path string, body string, header http.Header) answer {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.base+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Cpcli-Format", "json")
	req.Header.Set("X-Correlationid", "0f0f0f0f-0000-4000-8000-000000000000")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return answer{resp.StatusCode, resp.Header, b.Bytes()}
}

func (w *wire) login(user, password string) answer {
	w.t.Helper()
	body, _ := json.Marshal(map[string]string{"customIdp": "", "subdomain": btptest.DefaultGlobalAccount, "userName": user, "password": password})
	a := w.post("/login/"+w.version, string(body)+"\n", nil)
	if a.status == http.StatusOK {
		w.session = a.header.Get("X-Cpcli-Sessionid")
	}
	return a
}

func (w *wire) command(action string, params map[string]any) answer {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{"paramValues": params})
	return w.post("/command/"+w.version+"/security/api-credential?"+action, string(body)+"\n", http.Header{
		"X-Cpcli-Sessionid": {w.session}, "X-Cpcli-Subdomain": {btptest.DefaultGlobalAccount}, "X-Cpcli-Customidp": {""},
	})
}

func start(t *testing.T, opts btptest.Options) (*btptest.Server, *wire) {
	t.Helper()
	s := btptest.NewServer(opts)
	t.Cleanup(s.Close)
	w := newWire(t, s)
	if a := w.login(btptest.DefaultUser, btptest.DefaultPassword); a.status != http.StatusOK || w.session == "" {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	return s, w
}

func testCertificate(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestEmulatorAnswersRecordedRequestsWithRecordedShapes sends every recorded
// api-credential request (scope ids swapped for the emulator's, redacted
// certificates for real ones) and holds the answers to the recorded ones:
// both status layers, the backend media type and the key set of the body.
func TestEmulatorAnswersRecordedRequestsWithRecordedShapes(t *testing.T) {
	dir := cassette.Require(t)
	cassettes, err := cassette.APICredential(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert := testCertificate(t)
	for _, cs := range cassettes {
		t.Run(cs.Name, func(t *testing.T) {
			_, w := start(t, btptest.Options{})
			n := 0
			for _, it := range cs.Interactions {
				if !it.Request.IsAPICredential() {
					continue
				}
				n++
				p, err := it.Request.Params()
				if err != nil {
					t.Fatal(err)
				}
				params := map[string]any{}
				for k, v := range p {
					params[k] = v
				}
				for k, id := range map[string]string{"subaccount": btptest.DefaultSubaccount, "directory": btptest.DefaultDirectory, "globalAccount": btptest.DefaultGlobalAccount} {
					if _, ok := params[k]; ok {
						params[k] = id
					}
				}
				if params["certificate"] == cassette.Redacted {
					params["certificate"] = cert
					if strings.Contains(cs.Name, "invalid_certificate") {
						params["certificate"] = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
					}
				}
				got := w.command(it.Request.Action(), params)
				rec := it.Response
				what := it.Request.Action()
				if got.status != rec.Code {
					t.Errorf("%s: status %d, recorded %d", what, got.status, rec.Code)
				}
				for _, h := range []string{"X-Cpcli-Backend-Status", "X-Cpcli-Backend-Mediatype", "Content-Type"} {
					if g, r := got.header.Get(h), cassette.Header(rec.Headers, h); g != r {
						t.Errorf("%s: %s = %q, recorded %q", what, h, g, r)
					}
				}
				wantKeys, err := cassette.Keys(rec.Body)
				if err != nil {
					t.Fatalf("recorded body: %v", err)
				}
				if g := keys(got.object(t)); !slices.Equal(g, wantKeys) {
					t.Errorf("%s: keys %v, recorded %v", what, g, wantKeys)
				}
				if rec.Body == `{"error":"The certificate is not valid PEM format."}` && string(got.body) != rec.Body {
					t.Errorf("%s: body %s, recorded %s", what, got.body, rec.Body)
				}
			}
			if n == 0 {
				t.Fatal("no api-credential interactions")
			}
		})
	}
}

func TestEmulatorLoginShape(t *testing.T) {
	s := btptest.NewServer(btptest.Options{})
	defer s.Close()
	w := newWire(t, s)
	if a := w.login(btptest.DefaultUser, "wrong"); a.status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", a.status)
	}
	a := w.login(btptest.DefaultUser, btptest.DefaultPassword)
	if a.status != http.StatusOK || a.header.Get("X-Cpcli-Sessionid") == "" {
		t.Fatalf("login: %d %v", a.status, a.header)
	}
	if got := keys(a.object(t)); !slices.Equal(got, []string{"issuer", "mail"}) {
		t.Errorf("login body keys %v", got)
	}
	body := `{"customIdp":"","subdomain":"other-ga","userName":"` + btptest.DefaultUser + `","password":"` + btptest.DefaultPassword + `"}`
	if a := w.post("/login/v2.106.1", body, nil); a.status != http.StatusNotFound {
		t.Errorf("unknown global account: %d", a.status)
	}
	for _, r := range s.Requests() {
		if r.Action == "login" && r.Params["password"] != "[REDACTED]" {
			t.Errorf("request log keeps the password: %v", r.Params)
		}
	}
}

func TestEmulatorRefusesOutdatedProtocolWith412(t *testing.T) {
	s := btptest.NewServer(btptest.Options{MinProtocolVersion: "v2.106.1"})
	defer s.Close()
	w := newWire(t, s)
	w.version = "v2.97.0"
	if a := w.login(btptest.DefaultUser, btptest.DefaultPassword); a.status != http.StatusPreconditionFailed {
		t.Errorf("old version login: %d", a.status)
	}
	w.version = "v2.106.1"
	if a := w.login(btptest.DefaultUser, btptest.DefaultPassword); a.status != http.StatusOK {
		t.Errorf("current version login: %d", a.status)
	}
	w.version = "v2.200.0"
	if a := w.command("list", map[string]any{"subaccount": btptest.DefaultSubaccount}); a.status != http.StatusOK {
		t.Errorf("newer version command: %d", a.status)
	}
}

func TestEmulatorExpiredSessionIs401(t *testing.T) {
	s, w := start(t, btptest.Options{})
	if a := w.command("list", map[string]any{"subaccount": btptest.DefaultSubaccount}); a.status != http.StatusOK || string(a.body) != "[]" {
		t.Fatalf("list: %d %s", a.status, a.body)
	}
	s.ExpireSessions()
	if a := w.command("list", map[string]any{"subaccount": btptest.DefaultSubaccount}); a.status != http.StatusUnauthorized {
		t.Errorf("after ExpireSessions: %d", a.status)
	}
}

func TestEmulatorSessionTTLIsSliding(t *testing.T) {
	_, w := start(t, btptest.Options{SessionTTL: time.Nanosecond})
	if a := w.command("list", map[string]any{"subaccount": btptest.DefaultSubaccount}); a.status != http.StatusUnauthorized {
		t.Errorf("session older than its TTL: %d", a.status)
	}
}

func TestEmulatorUnknownScopeIsOuter403WithServerMessage(t *testing.T) {
	_, w := start(t, btptest.Options{})
	for _, tc := range []struct{ key, id, want string }{
		{"subaccount", "00000000-0000-0000-0000-000000000000", "Subaccount '00000000-0000-0000-0000-000000000000' does not exist and thus did not entitle you to execute the command."},
		{"directory", "00000000-0000-0000-0000-000000000000", "Directory '00000000-0000-0000-0000-000000000000' does not exist and thus did not entitle you to execute the command."},
		{"globalAccount", "other-ga", "Global account 'other-ga' does not exist and thus did not entitle you to execute the command."},
	} {
		a := w.command("create", map[string]any{tc.key: tc.id, "name": "x", "readOnly": "false"})
		if a.status != http.StatusForbidden || a.backend() != "" || len(a.body) != 0 || a.header.Get("X-Cpcli-Server-Message") != tc.want {
			t.Errorf("%s: %d backend=%q body=%q message=%q", tc.key, a.status, a.backend(), a.body, a.header.Get("X-Cpcli-Server-Message"))
		}
	}
}

func TestEmulatorInsistsOnOneScopeAndStringParams(t *testing.T) {
	_, w := start(t, btptest.Options{})
	if a := w.command("create", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "x", "readOnly": false}); a.backend() != "400" {
		t.Errorf("bool readOnly: %d %s %s", a.status, a.backend(), a.body)
	}
	if a := w.command("list", map[string]any{"subaccount": btptest.DefaultSubaccount, "directory": btptest.DefaultDirectory}); a.backend() != "400" {
		t.Errorf("two scopes: %d %s", a.status, a.backend())
	}
	if a := w.command("list", map[string]any{}); a.backend() != "400" {
		t.Errorf("no scope: %d %s", a.status, a.backend())
	}
}

func TestEmulatorSharesOneClientIDPerScopeAndAccess(t *testing.T) {
	s, w := start(t, btptest.Options{})
	sa := map[string]any{"subaccount": btptest.DefaultSubaccount}
	create := func(name, ro string) map[string]any {
		p := map[string]any{"name": name, "readOnly": ro}
		for k, v := range sa {
			p[k] = v
		}
		a := w.command("create", p)
		if a.backend() != "200" {
			t.Fatalf("create %s: %s %s", name, a.backend(), a.body)
		}
		return a.object(t)
	}
	a, b, ro := create("a", "false"), create("b", "false"), create("ro", "true")
	if a["clientid"] != b["clientid"] || !strings.HasPrefix(a["clientid"].(string), "sb-full-access!a") {
		t.Errorf("full-access client ids %v, %v", a["clientid"], b["clientid"])
	}
	if !strings.HasPrefix(ro["clientid"].(string), "sb-read-only!a") || ro["read-only"] != true {
		t.Errorf("read-only credential %v", ro)
	}
	if a["clientsecret"] == b["clientsecret"] {
		t.Errorf("two credentials share a secret")
	}
	if dup := w.command("create", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "a", "readOnly": "false"}); dup.backend() != "409" || dup.object(t)["error"] == nil {
		t.Errorf("duplicate name: %s %s", dup.backend(), dup.body)
	}
	g := w.command("get", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "a", "readOnly": "false"}).object(t)
	if g["clientId"] != a["clientid"] || g["clientsecret"] != nil {
		t.Errorf("get: %v", g)
	}
	l := w.command("list", sa)
	var items []map[string]any
	if err := json.Unmarshal(l.body, &items); err != nil || len(items) != 3 || items[0]["name"] != "a" {
		t.Errorf("list is not a bare array of get shapes: %s", l.body)
	}
	if nf := w.command("get", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "zzz"}); nf.backend() != "404" || !strings.Contains(nf.object(t)["error"].(string), "No entity found") {
		t.Errorf("get unknown: %s %s", nf.backend(), nf.body)
	}
	if d := w.command("delete", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "a"}); d.backend() != "200" || string(d.body) != "{}" {
		t.Errorf("delete: %s %s", d.backend(), d.body)
	}
	if d := w.command("delete", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "a"}); d.backend() != "404" {
		t.Errorf("delete again: %s", d.backend())
	}
	if got := s.Live(approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}); !slices.Equal(got, []string{"b", "ro"}) {
		t.Errorf("Live = %v", got)
	}
	if got := s.Secrets(); len(got) != 3 || !slices.Contains(got, a["clientsecret"].(string)) {
		t.Errorf("Secrets = %d entries", len(got))
	}
	if s.Count("create") != 4 || s.Count("login") != 1 {
		t.Errorf("Count create=%d login=%d", s.Count("create"), s.Count("login"))
	}
}

func TestEmulatorTokenEndpointGrantsOnlyLiveCredentialsWithTheirSecret(t *testing.T) {
	_, w := start(t, btptest.Options{})
	c := w.command("create", map[string]any{"directory": btptest.DefaultDirectory, "name": "tok", "readOnly": "false"}).object(t)
	id, secret, tokenURL := c["clientid"].(string), c["clientsecret"].(string), c["tokenurl"].(string)
	grant := func(basic bool, id, secret string) int {
		form := url.Values{"grant_type": {"client_credentials"}}
		if !basic {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
		}
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := grant(true, id, secret); got != http.StatusOK {
		t.Errorf("basic auth with the secret: %d", got)
	}
	if got := grant(false, id, secret); got != http.StatusOK {
		t.Errorf("form auth with the secret: %d", got)
	}
	if got := grant(true, id, secret+"x"); got != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", got)
	}
	w.command("delete", map[string]any{"directory": btptest.DefaultDirectory, "name": "tok"})
	if got := grant(true, id, secret); got != http.StatusUnauthorized {
		t.Errorf("deleted credential: %d", got)
	}
}

func TestEmulatorFaultsApplyInOrderAndRunOut(t *testing.T) {
	s, w := start(t, btptest.Options{})
	sa := map[string]any{"subaccount": btptest.DefaultSubaccount}
	s.Inject(btptest.Fault{Action: "list", Times: 2, Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond})
	s.Inject(btptest.Fault{Action: "list", Status: http.StatusGatewayTimeout, Header: http.Header{"X-Cpcli-Server-Message": {btptest.MessageNotSentToBackend}}})
	for i := 0; i < 2; i++ {
		a := w.command("list", sa)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "2" || a.backend() != "" {
			t.Errorf("429 #%d: %d Retry-After=%q", i, a.status, a.header.Get("Retry-After"))
		}
	}
	if a := w.command("list", sa); a.status != http.StatusGatewayTimeout || a.header.Get("X-Cpcli-Server-Message") != btptest.MessageNotSentToBackend {
		t.Errorf("504: %d %v", a.status, a.header)
	}
	if a := w.command("list", sa); a.status != http.StatusOK {
		t.Errorf("after the faults ran out: %d", a.status)
	}
	s.Inject(btptest.Fault{Action: "get", BackendStatus: 503, Body: `{"error":"XSUAA unavailable"}`})
	if a := w.command("get", map[string]any{"subaccount": btptest.DefaultSubaccount, "name": "x"}); a.status != 200 || a.backend() != "503" {
		t.Errorf("backend fault: %d %s", a.status, a.backend())
	}
	statuses := []int{}
	for _, r := range s.Requests() {
		if r.Action == "list" {
			statuses = append(statuses, r.Status)
		}
	}
	if !slices.Equal(statuses, []int{429, 429, 504, 200}) {
		t.Errorf("request log statuses %v", statuses)
	}
}

func TestEmulatorDropAfterCommitCreatesButNeverAnswers(t *testing.T) {
	s, w := start(t, btptest.Options{})
	s.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
	body := `{"paramValues":{"name":"dropped","readOnly":"false","subaccount":"` + btptest.DefaultSubaccount + `"}}`
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/command/v2.106.1/security/api-credential?create", strings.NewReader(body))
	req.Header.Set("X-Cpcli-Sessionid", w.session)
	req.Header.Set("X-Cpcli-Subdomain", btptest.DefaultGlobalAccount)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped create answered %d", resp.StatusCode)
	}
	if got := s.Live(approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}); !slices.Equal(got, []string{"dropped"}) {
		t.Errorf("Live = %v, want the committed credential", got)
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; !last.Dropped || last.Status != 0 || last.Params["name"] != "dropped" {
		t.Errorf("request log entry %+v", last)
	}
}

func (w *wire) commandOf(object, action string, params map[string]any) answer {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{"paramValues": params})
	return w.post("/command/"+w.version+"/"+object+"?"+action, string(body)+"\n", http.Header{
		"X-Cpcli-Sessionid": {w.session}, "X-Cpcli-Subdomain": {btptest.DefaultGlobalAccount}, "X-Cpcli-Customidp": {""},
	})
}

// TestEmulatorAnswersRecordedRoleCollectionRequestsWithRecordedShapes sends
// every recorded security/role-collection and security/user request (scope
// ids swapped for the emulator's; the hand-edited read-backs left out) and
// holds the answers to the recorded ones: both status layers, the media
// type, the key set of the body (and of a listed user), error bodies.
func TestEmulatorAnswersRecordedRoleCollectionRequestsWithRecordedShapes(t *testing.T) {
	dir := cassette.Require(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "role-collection", "*.yaml"))
	if len(paths) != 8 {
		t.Fatalf("found %d role-collection recordings, want 8", len(paths))
	}
	n := 0
	for _, p := range paths {
		cs, err := cassette.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(cs.Name, func(t *testing.T) {
			s, w := start(t, btptest.Options{Origins: []string{"sap.custom", "iasprovidertestblr-platform"}})
			for _, it := range cs.Interactions {
				path := it.Request.Path()
				object := ""
				for _, o := range []string{"security/role-collection", "security/user"} {
					if strings.HasSuffix(path, "/"+o) {
						object = o
					}
				}
				if object == "" || cassette.Header(it.Request.Headers, "X-Correlationid") == "fixture-drift-detection-fix" {
					continue
				}
				n++
				rp, err := it.Request.Params()
				if err != nil {
					t.Fatal(err)
				}
				params := map[string]any{}
				var scope approval.Scope
				for k, v := range rp {
					params[k] = v
					id, kind := map[string]string{"subaccount": btptest.DefaultSubaccount, "directory": btptest.DefaultDirectory, "globalAccount": btptest.DefaultGlobalAccount}[k],
						map[string]approval.ScopeKind{"subaccount": approval.ScopeSubaccount, "directory": approval.ScopeDirectory, "globalAccount": approval.ScopeGlobalAccount}[k]
					if id != "" && v != "" {
						params[k], scope = id, approval.Scope{Kind: kind, ID: id}
					}
				}
				rec := it.Response
				if object == "security/user" && it.Request.Action() == "get" {
					// The user exists at SAP with what it holds.
					var u struct{ RoleCollections []string }
					json.Unmarshal([]byte(rec.Body), &u)
					for _, rc := range u.RoleCollections {
						s.AssignRoleCollection(scope, rc, approval.BTPUser{Origin: rp["origin"], Name: rp["userName"]})
					}
				}
				if rp["showUserAssignments"] == "true" {
					var users struct {
						Items []struct{ Email, Origin string }
					}
					json.Unmarshal([]byte(rec.Body), &users)
					for _, u := range users.Items {
						s.AssignRoleCollection(scope, rp["roleCollectionName"], approval.BTPUser{Origin: u.Origin, Name: u.Email})
					}
				}
				got := w.commandOf(object, it.Request.Action(), params)
				what := object + "?" + it.Request.Action()
				if got.status != rec.Code {
					t.Errorf("%s: status %d, recorded %d (%s)", what, got.status, rec.Code, got.body)
				}
				for _, h := range []string{"X-Cpcli-Backend-Status", "X-Cpcli-Backend-Mediatype", "Content-Type"} {
					if g, r := got.header.Get(h), cassette.Header(rec.Headers, h); g != r {
						t.Errorf("%s: %s = %q, recorded %q", what, h, g, r)
					}
				}
				if rec.Body == "" {
					if len(got.body) != 0 {
						t.Errorf("%s: body %q, recorded none", what, got.body)
					}
					continue
				}
				if strings.HasPrefix(rec.Body, "[") {
					if !strings.HasPrefix(string(got.body), "[") {
						t.Errorf("%s: body %s, recorded an array", what, got.body)
					}
					continue
				}
				wantKeys, err := cassette.Keys(rec.Body)
				if err != nil {
					t.Fatalf("recorded body: %v", err)
				}
				obj := got.object(t)
				if g := keys(obj); !slices.Equal(g, wantKeys) {
					t.Errorf("%s: keys %v, recorded %v", what, g, wantKeys)
				}
				if strings.Contains(rec.Body, `"error"`) && string(got.body) != rec.Body {
					t.Errorf("%s: body %s, recorded %s", what, got.body, rec.Body)
				}
				var recObj struct{ Items []map[string]any }
				json.Unmarshal([]byte(rec.Body), &recObj)
				if len(recObj.Items) > 0 {
					items, _ := obj["items"].([]any)
					if len(items) != len(recObj.Items) {
						t.Fatalf("%s: %d users listed, recorded %d", what, len(items), len(recObj.Items))
					}
					if g, r := keys(items[0].(map[string]any)), keys(recObj.Items[0]); !slices.Equal(g, r) {
						t.Errorf("%s: item keys %v, recorded %v", what, g, r)
					}
				}
			}
		})
	}
	if n < 15 {
		t.Errorf("only %d recorded requests sent", n)
	}
}
