package btp_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// dialLog records every address the client dials, and connects only to
// loopback ones (the emulator), so that a regression cannot reach the network.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	if host, _, _ := net.SplitHostPort(addr); !strings.HasPrefix(host, "127.") {
		return nil, errors.New("test dialer: no connections off this machine")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *dialLog) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

func TestVerificationSendsASecretOnlyOverHTTPSOrToLoopback(t *testing.T) {
	for _, tc := range []struct {
		tokenURL string
		host     string // what a dial would name
		sent     bool
	}{
		{"http://example.invalid/oauth/token", "example.invalid:80", false},
		{"http://192.0.2.1/oauth/token", "192.0.2.1:80", false},
		{"http://localhost.example.invalid/oauth/token", "localhost.example.invalid:80", false},
		{"http://127.0.0.1.example.invalid/oauth/token", "127.0.0.1.example.invalid:80", false},
		{"ftp://example.invalid/oauth/token", "example.invalid:21", false},
		{"http:///oauth/token", ":80", false},
		// Loopback keeps plain http, for the emulator and local mode. Nothing
		// listens on port 1, so these are sent and then fail to connect.
		{"http://localhost:1/oauth/token", "localhost:1", true},
		{"http://LOCALHOST.:1/oauth/token", "LOCALHOST.:1", true},
		{"http://127.5.5.5:1/oauth/token", "127.5.5.5:1", true},
		{"http://[::1]:1/oauth/token", "[::1]:1", true},
		{"https://example.invalid/oauth/token", "example.invalid:443", true},
	} {
		t.Run(tc.tokenURL, func(t *testing.T) {
			dials := &dialLog{}
			f := newFixture(t, btptest.Options{}, func(c *btp.Config) {
				c.VerifyCredentials = true
				c.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: dials.dial}}
			})
			// A create answer whose tokenurl the test chooses.
			f.srv.Inject(btptest.Fault{Action: "create", BackendStatus: http.StatusOK, Body: `{"credential-type":"secret",` +
				`"clientid":"sb-full-access!a1","clientsecret":"plain-http-secret","tokenurl":"` + tc.tokenURL + `",` +
				`"url":"https://acme.example","apiurl":"https://api.acme.example","name":"cleartext","read-only":false}`})

			_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "cleartext"})
			var e *btp.Error
			if !errors.Is(err, btp.ErrVerification) || !errors.As(err, &e) {
				t.Fatalf("Create = %v, want ErrVerification", err)
			}
			dialled := slices.Contains(dials.all(), tc.host)
			switch {
			case tc.sent && !dialled:
				t.Errorf("no dial of %s (dials %v): verification should have been attempted", tc.host, dials.all())
			case !tc.sent && dialled:
				t.Errorf("dialled %s: a secret must never leave for a non-https token URL", tc.host)
			case !tc.sent && (e.Temporary() || !strings.Contains(err.Error(), "https")):
				t.Errorf("Create = %v, want a permanent refusal that asks for https", err)
			}
			if strings.Contains(err.Error(), "plain-http-secret") || strings.Contains(f.logs.String(), "plain-http-secret") {
				t.Errorf("the secret leaked into the error or the logs")
			}
		})
	}
}

func TestVerificationOverPlainHTTPToLoopbackStillWorks(t *testing.T) {
	// The emulator serves http on 127.0.0.1, as local mode does.
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = true })
	is, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "local"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !strings.HasPrefix(is.Credential.TokenURL, "http://127.0.0.1:") {
		t.Fatalf("token URL %q, want the emulator's plain loopback one", is.Credential.TokenURL)
	}
	if n := f.srv.Count("token"); n == 0 {
		t.Errorf("no token request: verification did not run")
	}
}
