package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/slack-go/slack"
)

func TestResponseURLRedirectIsNotFollowed(t *testing.T) {
	// The reveal's secret goes out through this path: a redirect from the
	// trusted response host must not carry it to another host.
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { leaked.Add(1) }))
	defer elsewhere.Close()
	trusted := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/hooks", http.StatusTemporaryRedirect))
	defer trusted.Close()
	trustedHost := mustHost(t, trusted.URL)

	given := &http.Client{}
	for _, tc := range []struct {
		name string
		hc   *http.Client
	}{{"given client", given}, {"default client", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			hc := tc.hc
			s := NewServer(refuser{}, Config{ResponseHosts: []string{trustedHost}, HTTPClient: hc})
			defer s.Close()
			msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: "client secret: s3cr3t"}
			if err := s.post(context.Background(), trusted.URL+"/commands/T1/1/abc", msg); err == nil {
				t.Errorf("post succeeded although the response host only redirected")
			}
			if n := leaked.Load(); n != 0 {
				t.Fatalf("the redirect target received %d requests; it must receive nothing", n)
			}
		})
	}
	if given.CheckRedirect != nil {
		t.Errorf("NewServer changed the caller's client; it must use a copy")
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
