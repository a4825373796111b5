package btp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

func TestExpiredSessionLogsInOnceAndRetries(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "s"}); err != nil {
		t.Fatal(err)
	}
	f.srv.ExpireSessions()
	if _, err := f.client.Get(ctx, subaccount, "s"); err != nil {
		t.Fatalf("Get after expiry: %v", err)
	}
	if n := f.srv.Count("login"); n != 2 {
		t.Errorf("logins %d, want 2", n)
	}
	var seq []string
	for _, r := range f.srv.Requests() {
		seq = append(seq, r.Action+":"+http.StatusText(r.Status))
	}
	want := []string{"login:OK", "create:OK", "get:Unauthorized", "login:OK", "get:OK"}
	if len(seq) != len(want) {
		t.Fatalf("requests %v, want %v", seq, want)
	}
	for i := range want {
		if seq[i] != want[i] {
			t.Fatalf("requests %v, want %v", seq, want)
		}
	}
}

func TestExpiredSessionDuringCreateIsRetriedWithoutLookup(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	if _, err := f.client.List(ctx, subaccount); err != nil {
		t.Fatal(err)
	}
	f.srv.ExpireSessions()
	if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "after-401"}); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, f.srv, 2, 0, 0)
}

func TestPersistent401FailsAfterExactlyOneRelogin(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "get", Times: -1, Status: http.StatusUnauthorized})
	_, err := f.client.Get(context.Background(), subaccount, "x")
	var e *btp.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Temporary() {
		t.Fatalf("Get = %v", err)
	}
	if f.srv.Count("login") != 2 || f.srv.Count("get") != 2 {
		t.Errorf("logins %d, gets %d; want 2 and 2", f.srv.Count("login"), f.srv.Count("get"))
	}
}

func TestConcurrentCallersShareOneLogin(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	// A slow login makes every caller arrive while it is in flight.
	f.srv.Inject(btptest.Fault{Action: "login", Latency: 20 * time.Millisecond})
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					_, err = f.client.List(context.Background(), allScopes[i%3])
				} else {
					_, err = f.client.Get(context.Background(), allScopes[i%3], "nope")
					if errors.Is(err, approval.ErrNotFound) {
						err = nil
					}
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	run()
	if n := f.srv.Count("login"); n != 1 {
		t.Errorf("20 concurrent callers caused %d logins, want 1", n)
	}
	f.srv.ExpireSessions()
	run()
	if n := f.srv.Count("login"); n != 2 {
		t.Errorf("after expiry 20 concurrent callers caused %d more logins, want 1", n-1)
	}
}

func TestConcurrentCreatesAreAllDistinctAndLive(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			name := "c-" + string(rune('a'+i))
			if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: directory, Name: name}); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if live := f.srv.Live(directory); len(live) != 20 || failed.Load() != 0 {
		t.Errorf("live %d, failed %d", len(live), failed.Load())
	}
}

func TestSessionIsRenewedBeforeItIsADayOld(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	var mu sync.Mutex
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	btp.SetNow(f.client, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	if _, err := f.client.List(ctx, subaccount); err != nil {
		t.Fatal(err)
	}
	advance(12 * time.Hour)
	if _, err := f.client.List(ctx, subaccount); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count("login"); n != 1 {
		t.Fatalf("logins after 12h: %d, want 1", n)
	}
	advance(11*time.Hour + time.Minute)
	if _, err := f.client.List(ctx, subaccount); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Count("login"); n != 2 {
		t.Errorf("logins after 23h: %d, want 2", n)
	}
}

func TestLoginRidesOutCleanGatewayTimeouts(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "login", Times: 3, Status: http.StatusGatewayTimeout,
		Header: http.Header{"X-Cpcli-Server-Message": {btptest.MessageNotSentToBackend}}})
	if _, err := f.client.List(context.Background(), subaccount); err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := f.srv.Count("login"); n != 4 {
		t.Errorf("logins %d, want 4 (three 504s as recorded, then success)", n)
	}
}

func TestWrongPasswordIsALoginErrorNotRetried(t *testing.T) {
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.Password = "wrong" })
	_, err := f.client.Get(context.Background(), subaccount, "x")
	var e *btp.Error
	if !errors.Is(err, btp.ErrLogin) || !errors.As(err, &e) || e.Temporary() || e.Op != "login" {
		t.Fatalf("Get with a wrong password = %v", err)
	}
	if errors.Is(err, approval.ErrNotFound) {
		t.Errorf("a login failure must not look like a missing credential")
	}
	if n := f.srv.Count("login"); n != 1 {
		t.Errorf("logins %d, want 1", n)
	}
}

func TestUnknownGlobalAccountIsALoginErrorNotNotFound(t *testing.T) {
	f := newFixture(t, btptest.Options{GlobalAccount: "real-ga"}, func(c *btp.Config) { c.GlobalAccount = "typo-ga" })
	err := f.client.Delete(context.Background(), subaccount, "x")
	if !errors.Is(err, btp.ErrLogin) || errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Delete = %v, want ErrLogin and not ErrNotFound", err)
	}
}

func TestOutdatedProtocolVersionIsReported(t *testing.T) {
	f := newFixture(t, btptest.Options{MinProtocolVersion: "v2.200.0"})
	_, err := f.client.List(context.Background(), subaccount)
	var e *btp.Error
	if !errors.Is(err, btp.ErrProtocolOutdated) || !errors.As(err, &e) || e.Temporary() || e.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("List = %v, want ErrProtocolOutdated", err)
	}
	if f.srv.Count("login") != 1 {
		t.Errorf("a 412 must not be retried")
	}
	// Bumping the pinned version is the fix.
	g := newFixture(t, btptest.Options{MinProtocolVersion: "v2.200.0"}, func(c *btp.Config) { c.ProtocolVersion = "v2.200.0" })
	if _, err := g.client.List(context.Background(), subaccount); err != nil {
		t.Errorf("with the new version: %v", err)
	}
}

func TestJWTAssertionLogin(t *testing.T) {
	const idp = "acme.accounts.example"
	opts := btptest.Options{IdP: idp, Assertions: map[string]string{"eyJ.assertion.sig": "ci@acme.example"}}
	for name, edit := range map[string]func(*btp.Config){
		"Assertion": func(c *btp.Config) { c.Username, c.Password, c.Assertion = "", "", "eyJ.assertion.sig" },
		"TokenSource": func(c *btp.Config) {
			c.Username, c.Password = "", ""
			c.TokenSource = oauth2.StaticTokenSource((&oauth2.Token{AccessToken: "ignored"}).WithExtra(map[string]any{"id_token": "eyJ.assertion.sig"}))
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, opts, edit)
			if _, err := f.client.List(context.Background(), subaccount); err != nil {
				t.Fatalf("List: %v", err)
			}
			for _, r := range f.srv.Requests() {
				switch r.Action {
				case "login":
					if r.Params["jwt"] != "[REDACTED]" || r.Params["customIdp"] != idp || r.Params["userName"] != "" {
						t.Errorf("login params %v", r.Params)
					}
				case "list":
					if got := r.Headers.Get("X-Cpcli-Customidp"); got != idp {
						t.Errorf("X-Cpcli-Customidp %q, want %q", got, idp)
					}
				}
			}
		})
	}
	if _, err := btp.New(btp.Config{GlobalAccount: "acme-ga", Assertion: "x"}); err == nil {
		t.Errorf("an assertion login without a custom IdP must be refused")
	}
}

// fakeIAS is an SAP Cloud Identity Services tenant that hands out a passcode
// to the holder of a client certificate.
func fakeIAS(t *testing.T, clientCertPEM, passcode string) *httptest.Server {
	t.Helper()
	block, _ := pem.Decode([]byte(clientCertPEM))
	want, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ias := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/service/users/passcode" {
			http.NotFound(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !r.TLS.PeerCertificates[0].Equal(want) {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"passcode":"` + passcode + `"}`))
	}))
	ias.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ias.StartTLS()
	t.Cleanup(ias.Close)
	return ias
}

func TestX509PasscodeLogin(t *testing.T) {
	cert, key := testCertificate(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string]bool{"PEM text": false, "file paths": true} {
		t.Run(name, func(t *testing.T) {
			ias := fakeIAS(t, cert, "314159")
			idpHost := ias.Listener.Addr().String()
			f := newFixture(t, btptest.Options{IdP: idpHost, Users: map[string]string{"tech@acme.example": "314159"}},
				func(c *btp.Config) {
					c.Username, c.Password = "tech@acme.example", ""
					c.TLSClientCertificate, c.TLSClientKey, c.TLSIdPURL = cert, key, ias.URL
					if files {
						c.TLSClientCertificate, c.TLSClientKey = certFile, keyFile
					}
					c.HTTPClient = ias.Client() // trusts the fake tenant's server certificate
				})
			if _, err := f.client.List(context.Background(), subaccount); err != nil {
				t.Fatalf("List: %v", err)
			}
			r := f.srv.Requests()[0]
			if r.Action != "login" || r.Params["userName"] != "tech@acme.example" || r.Params["customIdp"] != idpHost {
				t.Errorf("login %v", r.Params)
			}
		})
	}
	if _, err := btp.New(btp.Config{GlobalAccount: "acme-ga", TLSClientCertificate: cert}); err == nil {
		t.Errorf("an X.509 login without key, IdP URL and user must be refused")
	}
}

func TestConfigFromEnvAndDefaults(t *testing.T) {
	env := map[string]string{
		"BTP_CLI_SERVER_URL": "https://cli.example", "BTP_GLOBALACCOUNT": "acme-ga",
		"BTP_USERNAME": "u", "BTP_PASSWORD": "p", "BTP_IDP": "idp.example",
		"BTP_ASSERTION": "jwt", "BTP_TLS_CLIENT_CERTIFICATE": "c", "BTP_TLS_CLIENT_KEY": "k",
		"BTP_TLS_IDP_URL": "https://ias.example", "BTP_PROTOCOL_VERSION": "v2.107.0", "BTP_VERIFY_CREDENTIALS": "true",
	}
	cfg := btp.ConfigFromEnv(func(k string) string { return env[k] })
	want := btp.Config{ServerURL: "https://cli.example", GlobalAccount: "acme-ga", Username: "u", Password: "p",
		IdP: "idp.example", Assertion: "jwt", TLSClientCertificate: "c", TLSClientKey: "k",
		TLSIdPURL: "https://ias.example", ProtocolVersion: "v2.107.0", VerifyCredentials: true}
	if cfg.ServerURL != want.ServerURL || cfg.GlobalAccount != want.GlobalAccount || cfg.Username != want.Username ||
		cfg.Password != want.Password || cfg.IdP != want.IdP || cfg.Assertion != want.Assertion ||
		cfg.TLSClientCertificate != want.TLSClientCertificate || cfg.TLSClientKey != want.TLSClientKey ||
		cfg.TLSIdPURL != want.TLSIdPURL || cfg.ProtocolVersion != want.ProtocolVersion || !cfg.VerifyCredentials {
		t.Errorf("ConfigFromEnv = %+v", cfg)
	}
	for name, cfg := range map[string]btp.Config{
		"no global account": {Username: "u", Password: "p"},
		"GA name":           {GlobalAccount: "ACME Global", Username: "u", Password: "p"},
		"GA GUID":           {GlobalAccount: "03760ecf-9d89-4189-a92a-1c7efed09298", Username: "u", Password: "p"},
		"no login":          {GlobalAccount: "acme-ga"},
		"bad URL":           {ServerURL: "cli.btp.cloud.sap", GlobalAccount: "acme-ga", Username: "u", Password: "p"},
	} {
		if _, err := btp.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// A renewed client certificate (cert-manager rewrites the mounted Secret in
// place) is used from the next login on, without a restart; a renewal that does
// not load keeps the previous certificate working.
func TestRenewedClientCertificateIsUsedAtTheNextLogin(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(cert, key string, at time.Time) {
		t.Helper()
		for f, v := range map[string]string{certFile: cert, keyFile: key} {
			if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	oldCert, oldKey := testCertificate(t)
	newCert, newKey := testCertificate(t)
	write(oldCert, oldKey, time.Now().Add(-time.Hour))

	var mu sync.Mutex
	var presented []string // the subject serial of each client certificate the IdP saw
	ias := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		presented = append(presented, r.TLS.PeerCertificates[0].SerialNumber.String())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"passcode":"314159"}`))
	}))
	ias.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ias.StartTLS()
	t.Cleanup(ias.Close)
	f := newFixture(t, btptest.Options{IdP: ias.Listener.Addr().String(), Users: map[string]string{"tech@acme.example": "314159"}},
		func(c *btp.Config) {
			c.Username, c.Password = "tech@acme.example", ""
			c.TLSClientCertificate, c.TLSClientKey, c.TLSIdPURL = certFile, keyFile, ias.URL
			c.HTTPClient = ias.Client()
		})
	serial := func(certPEM string) string {
		block, _ := pem.Decode([]byte(certPEM))
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber.String()
	}
	login := func() string {
		t.Helper()
		f.srv.ExpireSessions()
		if _, err := f.client.List(context.Background(), subaccount); err != nil {
			t.Fatalf("List: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		return presented[len(presented)-1]
	}
	if got := login(); got != serial(oldCert) {
		t.Fatalf("first login presented %s, want the old certificate", got)
	}
	write(newCert, "not a key", time.Now()) // a half-written renewal
	if got := login(); got != serial(oldCert) {
		t.Fatalf("a renewal that does not load: presented %s, want the old certificate still", got)
	}
	if !strings.Contains(f.logs.String(), "do not load") {
		t.Errorf("the broken renewal was not reported: %s", f.logs.String())
	}
	write(newCert, newKey, time.Now().Add(time.Minute))
	if got := login(); got != serial(newCert) {
		t.Fatalf("after renewal presented %s, want the new certificate %s", got, serial(newCert))
	}
}
