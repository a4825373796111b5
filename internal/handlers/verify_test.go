package handlers

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Slack's documented worked example (slack-platform.md §1).
func TestSignMatchesSlackTestVector(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := Sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", []byte(body))
	want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// watchedBody records whether anyone read the request body.
type watchedBody struct {
	r    io.Reader
	read atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

func (b *watchedBody) Close() error { return nil }

func TestUnsignedOrStaleRequestBodyIsNeverRead(t *testing.T) {
	const secret = "signing-secret"
	now := time.Unix(1_700_000_000, 0)
	s := NewServer(refuser{}, Config{SigningSecret: secret, Now: func() time.Time { return now }})
	defer s.Close()
	h := s.Handler()
	fresh := strconv.FormatInt(now.Unix(), 10)
	stale := strconv.FormatInt(now.Add(-SignatureWindow-time.Second).Unix(), 10)
	future := strconv.FormatInt(now.Add(SignatureWindow+time.Second).Unix(), 10)
	body := strings.Repeat("x", MaxBody) // what an attacker would like us to read

	for name, hdr := range map[string]map[string]string{
		"no headers":         {},
		"no signature":       {"X-Slack-Request-Timestamp": fresh},
		"no timestamp":       {"X-Slack-Signature": "v0=00"},
		"malformed time":     {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"},
		"stale timestamp":    {"X-Slack-Request-Timestamp": stale, "X-Slack-Signature": Sign(secret, stale, []byte(body))},
		"too far in future":  {"X-Slack-Request-Timestamp": future, "X-Slack-Signature": Sign(secret, future, []byte(body))},
		"empty signature":    {"X-Slack-Request-Timestamp": fresh, "X-Slack-Signature": ""},
		"not a v0 signature": {"X-Slack-Request-Timestamp": fresh, "X-Slack-Signature": "v1=" + strings.Repeat("0", 64)},
		"short signature":    {"X-Slack-Request-Timestamp": fresh, "X-Slack-Signature": "v0=00"},
	} {
		t.Run(name, func(t *testing.T) {
			b := &watchedBody{r: strings.NewReader(body)}
			req := httptest.NewRequest(http.MethodPost, "/slack/commands", b)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.Code)
			}
			if b.read.Load() {
				t.Errorf("the body of a request that cannot be genuine was read")
			}
			if got := w.Header().Get("Connection"); got != "close" {
				t.Errorf("Connection %q, want close: the server must not drain the unread body either", got)
			}
		})
	}
}

func TestSignedRequestsAreStillSizeLimitedThenVerified(t *testing.T) {
	const secret = "signing-secret"
	now := time.Unix(1_700_000_000, 0)
	s := NewServer(refuser{}, Config{SigningSecret: secret, Now: func() time.Time { return now }})
	defer s.Close()
	h := s.Handler()
	ts := strconv.FormatInt(now.Unix(), 10)
	send := func(body, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	big := strings.Repeat("x", MaxBody+1)
	if got := send(big, Sign(secret, ts, []byte(big))); got != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized signed body: status %d, want 413", got)
	}
	if got := send("ssl_check=1", Sign("another-secret", ts, []byte("ssl_check=1"))); got != http.StatusUnauthorized {
		t.Errorf("wrong signature: status %d, want 401", got)
	}
	if got := send("ssl_check=1", Sign(secret, ts, []byte("ssl_check=1"))); got != http.StatusOK {
		t.Errorf("genuine request: status %d, want 200", got)
	}
}
