package btp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// sink is the other host a redirect points at. Anything it hears is a leak: a
// followed login carries the password or the assertion, a followed command the
// session id, a followed token request the new client secret.
type sink struct {
	srv  *httptest.Server
	host string
	mu   sync.Mutex
	got  []string
}

func newSink(t *testing.T, tlsServer bool) *sink {
	t.Helper()
	s := &sink{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got = append(s.got, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
	})
	if tlsServer {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.srv.Close)
	u, _ := url.Parse(s.srv.URL)
	s.host = u.Host
	return s
}

// heard returns what reached the sink. The client returns only after the
// redirect has been followed or refused, so an empty answer is final.
func (s *sink) heard() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func redirectTo(status int, location string) btptest.Fault {
	return btptest.Fault{Status: status, Times: -1, Header: http.Header{"Location": {location}}}
}

// wantRedirectRefusal checks that err is the clear, final refusal of a
// redirect to host.
func wantRedirectRefusal(t *testing.T, err error, host string) {
	t.Helper()
	var e *btp.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want a *btp.Error", err)
	}
	if !strings.Contains(err.Error(), "redirect to "+host) || !strings.Contains(err.Error(), "does not follow redirects") {
		t.Errorf("err = %q, want it to name the redirect to %s", err, host)
	}
	if e.Temporary() || errors.Is(err, btp.ErrAmbiguous) {
		t.Errorf("err = %v: a redirect is a configuration problem, not something to retry", err)
	}
}

func TestLoginRedirectIsNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			elsewhere := newSink(t, false)
			f := newFixture(t, btptest.Options{})
			fault := redirectTo(status, elsewhere.srv.URL+"/login/"+btp.DefaultProtocolVersion)
			fault.Action = "login"
			f.srv.Inject(fault)

			_, err := f.client.List(context.Background(), subaccount)
			wantRedirectRefusal(t, err, elsewhere.host)
			if got := elsewhere.heard(); len(got) != 0 {
				t.Errorf("the redirect target received %v; it must receive nothing (the login carries the password)", got)
			}
			if n := f.srv.Count("login"); n != 1 {
				t.Errorf("logins %d, want 1: a redirect is not retried", n)
			}
		})
	}
}

func TestCommandRedirectIsNotFollowed(t *testing.T) {
	for _, action := range []string{"create", "get"} {
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(action+"/"+http.StatusText(status), func(t *testing.T) {
				elsewhere := newSink(t, false)
				f := newFixture(t, btptest.Options{})
				fault := redirectTo(status, elsewhere.srv.URL+"/command/"+btp.DefaultProtocolVersion+"/security/api-credential?"+action)
				fault.Action = action
				f.srv.Inject(fault)

				var err error
				if action == "create" {
					_, err = f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "redirected"})
				} else {
					_, err = f.client.Get(context.Background(), subaccount, "redirected")
				}
				wantRedirectRefusal(t, err, elsewhere.host)
				if got := elsewhere.heard(); len(got) != 0 {
					t.Errorf("the redirect target received %v; it must receive nothing (commands carry the session id)", got)
				}
				// Refused before execution: no retry, and for a create no
				// resolution by name either.
				if n := f.srv.Count(action); n != 1 {
					t.Errorf("%s requests %d, want 1", action, n)
				}
				if action == "create" {
					wantCounts(t, f.srv, 1, 0, 0)
				}
			})
		}
	}
}

func TestTokenRedirectIsNotFollowed(t *testing.T) {
	elsewhere := newSink(t, false)
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = true })
	fault := redirectTo(http.StatusTemporaryRedirect, elsewhere.srv.URL+"/oauth/token")
	fault.Action = "token"
	f.srv.Inject(fault)

	_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "verified"})
	if !errors.Is(err, btp.ErrVerification) {
		t.Fatalf("Create = %v, want ErrVerification", err)
	}
	wantRedirectRefusal(t, err, elsewhere.host)
	if got := elsewhere.heard(); len(got) != 0 {
		t.Errorf("the redirect target received %v; it must receive nothing (the token request carries the new secret)", got)
	}
	if live := f.srv.Live(subaccount); len(live) != 0 {
		t.Errorf("an unverified credential was left behind: %v", live)
	}
}

func TestPasscodeRedirectIsNotFollowed(t *testing.T) {
	cert, key := testCertificate(t)
	// httptest's TLS servers share one certificate, so the IdP's client
	// trusts the sink too: only the refusal to follow keeps it out.
	elsewhere := newSink(t, true)
	ias := httptest.NewUnstartedServer(http.RedirectHandler(elsewhere.srv.URL+"/service/users/passcode", http.StatusTemporaryRedirect))
	ias.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	ias.StartTLS()
	t.Cleanup(ias.Close)

	f := newFixture(t, btptest.Options{}, func(c *btp.Config) {
		c.Username, c.Password = "tech@acme.example", ""
		c.TLSClientCertificate, c.TLSClientKey, c.TLSIdPURL = cert, key, ias.URL
		c.HTTPClient = ias.Client()
	})
	if _, err := f.client.List(context.Background(), subaccount); err == nil {
		t.Fatalf("List succeeded without a passcode")
	}
	if got := elsewhere.heard(); len(got) != 0 {
		t.Errorf("the redirect target received %v; it must receive nothing (it would see the client certificate)", got)
	}
	if n := f.srv.Count("login"); n != 0 {
		t.Errorf("logins %d, want 0: there was no passcode to log in with", n)
	}
}
