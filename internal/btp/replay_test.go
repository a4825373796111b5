package btp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/internal/cassette"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func fixturesDir(t *testing.T) string {
	t.Helper()
	return cassette.Require(t)
}

// replayer serves a cassette's recorded responses in order and checks that
// each request of ours has the recorded request's shape.
type replayer struct {
	t        *testing.T
	mu       sync.Mutex
	logins   []cassette.Interaction // still to serve, in recorded order
	lastOK   *cassette.Interaction
	commands []cassette.Interaction
	next     int
}

func newReplayer(t *testing.T, c *cassette.Cassette) *replayer {
	r := &replayer{t: t}
	for _, it := range c.Interactions {
		switch {
		case it.Request.IsLogin():
			r.logins = append(r.logins, it)
		case it.Request.IsAPICredential():
			r.commands = append(r.commands, it)
		}
	}
	return r
}

func (rp *replayer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	t := rp.t
	body, _ := io.ReadAll(req.Body)
	rp.mu.Lock()
	var it cassette.Interaction
	if strings.HasPrefix(req.URL.Path, "/login/") {
		switch {
		case len(rp.logins) > 0:
			it = rp.logins[0]
			rp.logins = rp.logins[1:]
			if it.Response.Code == http.StatusOK {
				ok := it
				rp.lastOK = &ok
			}
		case rp.lastOK != nil:
			it = *rp.lastOK
		default:
			rp.mu.Unlock()
			t.Errorf("unexpected login")
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		rp.mu.Unlock()
		checkRequest(t, it.Request, req, body)
		if !jsonEqual(t, it.Request.Body, string(body)) {
			t.Errorf("login body %s, recorded %s", body, it.Request.Body)
		}
	} else {
		if rp.next >= len(rp.commands) {
			rp.mu.Unlock()
			t.Errorf("unexpected command %s?%s %s", req.URL.Path, req.URL.RawQuery, body)
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		it = rp.commands[rp.next]
		rp.next++
		rp.mu.Unlock()
		checkRequest(t, it.Request, req, body)
		checkParams(t, it.Request, body)
	}
	for k, vs := range it.Response.Headers {
		if k == "Content-Length" || k == "Date" {
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(it.Response.Code)
	io.WriteString(w, it.Response.Body)
}

// checkRequest compares method, path, query word and headers.
func checkRequest(t *testing.T, rec cassette.Request, req *http.Request, body []byte) {
	t.Helper()
	what := rec.Method + " " + rec.Path() + "?" + rec.Action()
	if req.Method != rec.Method || req.URL.Path != rec.Path() || req.URL.RawQuery != rec.Action() {
		t.Errorf("request %s %s?%s, recorded %s", req.Method, req.URL.Path, req.URL.RawQuery, what)
	}
	for name, vals := range rec.Headers {
		got, ok := req.Header[http.CanonicalHeaderKey(name)]
		if !ok {
			t.Errorf("%s: header %s missing", what, name)
			continue
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Type", "X-Cpcli-Format", "X-Cpcli-Subdomain", "X-Cpcli-Customidp", "X-Cpcli-Sessionid":
			if !reflect.DeepEqual(got, vals) {
				t.Errorf("%s: header %s = %q, recorded %q", what, name, got, vals)
			}
		case "X-Correlationid":
			if len(got) != 1 || !uuidRE.MatchString(got[0]) {
				t.Errorf("%s: correlation id %q is not a UUID", what, got)
			}
		}
	}
	for name := range req.Header {
		if strings.HasPrefix(name, "X-") && cassette.Header(rec.Headers, name) == "" {
			if _, recorded := rec.Headers[name]; !recorded {
				t.Errorf("%s: header %s was not in the recording", what, name)
			}
		}
	}
	if req.Header.Get("Authorization") != "" {
		t.Errorf("%s: Authorization header sent", what)
	}
	if !strings.HasSuffix(string(body), "\n") || !strings.HasSuffix(rec.Body, "\n") {
		t.Errorf("%s: body %q should end in a newline like the recording", what, body)
	}
}

// checkParams compares paramValues: same keys, string values, equal unless the
// recorder redacted them.
func checkParams(t *testing.T, rec cassette.Request, body []byte) {
	t.Helper()
	want, err := rec.Params()
	if err != nil {
		t.Fatalf("recorded params: %v", err)
	}
	var got struct {
		ParamValues map[string]any `json:"paramValues"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Errorf("our body %q: %v", body, err)
		return
	}
	if len(got.ParamValues) != len(want) {
		t.Errorf("%s: paramValues %v, recorded %v", rec.Action(), got.ParamValues, want)
	}
	for k, w := range want {
		g, ok := got.ParamValues[k].(string)
		if !ok {
			t.Errorf("%s: paramValues[%s] = %#v, want a string", rec.Action(), k, got.ParamValues[k])
			continue
		}
		if w != cassette.Redacted && g != w {
			t.Errorf("%s: paramValues[%s] = %q, recorded %q", rec.Action(), k, g, w)
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func field(t *testing.T, body, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("recorded body %q: %v", body, err)
	}
	return m[key]
}

func str(v any) string { s, _ := v.(string); return s }

// TestReplayRecordedAPICredentialTraffic plays every recorded api-credential
// exchange (three scopes; secret, certificate, read-only and invalid
// certificate) against our client: the requests must have the recorded shape
// and every recorded response must decode.
func TestReplayRecordedAPICredentialTraffic(t *testing.T) {
	dir := fixturesDir(t)
	cassettes, err := cassette.APICredential(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cassettes) != 12 {
		t.Fatalf("found %d api-credential recordings, want 12", len(cassettes))
	}
	cert, _ := testCertificate(t)
	for _, cs := range cassettes {
		t.Run(cs.Name, func(t *testing.T) {
			rp := newReplayer(t, cs)
			if len(rp.logins) == 0 || len(rp.commands) == 0 {
				t.Fatal("recording has no login or no api-credential command")
			}
			srv := httptest.NewServer(rp)
			defer srv.Close()
			var login struct {
				CustomIdp, Subdomain, UserName, Password string
			}
			if err := json.Unmarshal([]byte(rp.logins[0].Request.Body), &login); err != nil {
				t.Fatal(err)
			}
			c, err := btp.New(btp.Config{
				ServerURL: srv.URL, GlobalAccount: login.Subdomain, IdP: login.CustomIdp,
				Username: login.UserName, Password: login.Password,
				MaxRetries: 5, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			btp.SetSleep(c, (&sleeps{}).sleep)
			ctx := context.Background()

			for _, it := range rp.commands {
				p, err := it.Request.Params()
				if err != nil {
					t.Fatal(err)
				}
				var scope approval.Scope
				switch {
				case p["subaccount"] != "":
					scope = approval.Scope{Kind: approval.ScopeSubaccount, ID: p["subaccount"]}
				case p["directory"] != "":
					scope = approval.Scope{Kind: approval.ScopeDirectory, ID: p["directory"]}
				default:
					scope = approval.Scope{Kind: approval.ScopeGlobalAccount, ID: p["globalAccount"]}
				}
				resp := it.Response
				backend := cassette.Header(resp.Headers, "X-Cpcli-Backend-Status")
				switch it.Request.Action() {
				case "create":
					spec := approval.CredentialSpec{Scope: scope, Name: p["name"], ReadOnly: p["readOnly"] == "true"}
					if _, ok := p["certificate"]; ok {
						// A non-PEM text never reaches the server...
						bad := spec
						bad.Certificate = "not-a-pem"
						if _, err := c.Create(ctx, bad); !errors.Is(err, approval.ErrInvalid) {
							t.Errorf("Create with non-PEM certificate = %v, want ErrInvalid", err)
						}
						// ...so we send a real one, and the recorded answer decides.
						spec.Certificate = cert
					}
					is, err := c.Create(ctx, spec)
					if backend == "400" {
						var e *btp.Error
						if !errors.Is(err, approval.ErrInvalid) || !errors.As(err, &e) {
							t.Fatalf("Create = %v, want ErrInvalid", err)
						}
						if e.StatusCode != 200 || e.BackendStatus != 400 || e.Message != str(field(t, resp.Body, "error")) {
							t.Errorf("decoded error %+v from %s", e, resp.Body)
						}
						continue
					}
					if err != nil {
						t.Fatalf("Create: %v", err)
					}
					cr := is.Credential
					if cr.Name != str(field(t, resp.Body, "name")) || cr.Type != str(field(t, resp.Body, "credential-type")) ||
						cr.ClientID != str(field(t, resp.Body, "clientid")) || cr.TokenURL != str(field(t, resp.Body, "tokenurl")) ||
						cr.APIURL != str(field(t, resp.Body, "apiurl")) || cr.URL != str(field(t, resp.Body, "url")) ||
						cr.ReadOnly != field(t, resp.Body, "read-only").(bool) || cr.Scope != scope {
						t.Errorf("Create decoded %+v from %s", cr, resp.Body)
					}
					if cr.Type == btp.TypeClientCertificate {
						if secretField(is.Secret, "certificate") != cassette.Redacted || secretField(is.Secret, "key") != cassette.Redacted {
							t.Errorf("certificate secret not decoded: %d fields", len(is.Secret.Fields()))
						}
					} else if secretField(is.Secret, "clientsecret") != cassette.Redacted {
						t.Errorf("client secret not decoded")
					}
				case "get":
					cr, err := c.Get(ctx, scope, p["name"])
					if err != nil {
						t.Fatalf("Get: %v", err)
					}
					if cr.Name != str(field(t, resp.Body, "name")) || cr.ClientID != str(field(t, resp.Body, "clientId")) ||
						cr.Type != str(field(t, resp.Body, "credential-type")) || cr.TokenURL != str(field(t, resp.Body, "tokenurl")) ||
						cr.ReadOnly != field(t, resp.Body, "read-only").(bool) || cr.ClientID == "" {
						t.Errorf("Get decoded %+v from %s", cr, resp.Body)
					}
				case "delete":
					if err := c.Delete(ctx, scope, p["name"]); err != nil {
						t.Fatalf("Delete: %v", err)
					}
				default:
					t.Fatalf("unexpected recorded action %q", it.Request.Action())
				}
			}
			rp.mu.Lock()
			defer rp.mu.Unlock()
			if rp.next != len(rp.commands) {
				t.Errorf("replayed %d of %d recorded commands", rp.next, len(rp.commands))
			}
		})
	}
}

// TestRecordedErrorShapesDecode serves the other recorded error shapes of the
// same server (outer 403 with a server message, backend 403 with a backend
// message, backend 404 with an error body) to our api-credential calls.
func TestRecordedErrorShapesDecode(t *testing.T) {
	dir := fixturesDir(t)
	cases := []struct {
		file          string
		target        error
		outer, inner  int
		wantInMessage string
	}{
		{"list_resource_directory_role_collection_access_forbidden", approval.ErrForbidden, 403, 0, "does not exist and thus did not entitle you"},
		{"resource_directory_role.not_security_enabled", approval.ErrForbidden, 200, 403, "You are not authorized to use this command."},
		{"datasource_globalaccount_role_collection.role_collection_not_available", approval.ErrNotFound, 200, 404, "No entity found with values"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			cs, err := cassette.Load(dir + "/" + tc.file + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			var login, answer *cassette.Interaction
			for i := range cs.Interactions {
				it := &cs.Interactions[i]
				if it.Request.IsLogin() && it.Response.Code == 200 && login == nil {
					login = it
				}
				if !it.Request.IsLogin() && (it.Response.Code != 200 || cassette.Header(it.Response.Headers, "X-Cpcli-Backend-Status") >= "400") {
					answer = it
				}
			}
			if login == nil || answer == nil {
				t.Fatal("recording lacks a login or an error answer")
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				it := answer
				if strings.HasPrefix(r.URL.Path, "/login/") {
					it = login
				}
				for k, vs := range it.Response.Headers {
					if k != "Content-Length" {
						w.Header()[k] = vs
					}
				}
				w.WriteHeader(it.Response.Code)
				io.WriteString(w, it.Response.Body)
			}))
			defer srv.Close()
			c, err := btp.New(btp.Config{ServerURL: srv.URL, GlobalAccount: "terraformintcanary", IdP: "identityProvider",
				Username: "john.doe@int.test", Password: "testUserPassword", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(context.Background(), directory, "x")
			var e *btp.Error
			if !errors.Is(err, tc.target) || !errors.As(err, &e) {
				t.Fatalf("Get = %v, want %v", err, tc.target)
			}
			if e.StatusCode != tc.outer || e.BackendStatus != tc.inner || !strings.Contains(e.Message, tc.wantInMessage) {
				t.Errorf("decoded %+v", e)
			}
			if e.Temporary() {
				t.Errorf("a refusal must not be temporary")
			}
		})
	}
}
