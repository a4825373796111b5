package handlers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBody caps every Slack request body; Slack's own payloads are far smaller.
const MaxBody = 1 << 20

// SignatureWindow is how far a request's timestamp may be from now.
const SignatureWindow = 5 * time.Minute

var (
	errBadSignature = errors.New("slack signature does not match")
	errStale        = errors.New("slack request timestamp outside the 5-minute window")
	errMissing      = errors.New("slack signature headers missing")
	errTooLarge     = errors.New("request body too large")
)

// Sign computes Slack's v0 signature of body at timestamp ts.
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// verifier checks a request against the signing secret before anything parses it.
type verifier struct {
	secret string
	now    func() time.Time
}

// read returns the raw body of a genuine Slack request, or the HTTP status to
// answer with: 413 for an oversized body, 401 for anything not signed by Slack.
//
// The headers and the timestamp window are checked before the body is touched,
// so that a request that cannot be genuine costs us no read of up to MaxBody;
// its connection is closed rather than drained. Only then is the body read,
// within MaxBody, and its HMAC compared in constant time.
func (v verifier) read(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	ts := r.Header.Get("X-Slack-Request-Timestamp")
	sig := r.Header.Get("X-Slack-Signature")
	if err := v.checkHeaders(ts, sig); err != nil {
		w.Header().Set("Connection", "close")
		return nil, http.StatusUnauthorized, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, errTooLarge
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if !hmac.Equal([]byte(Sign(v.secret, ts, body)), []byte(sig)) {
		return nil, http.StatusUnauthorized, errBadSignature
	}
	return body, 0, nil
}

// checkHeaders refuses what no body can redeem: missing headers, a signature
// that is not v0's shape, or a timestamp outside the window.
func (v verifier) checkHeaders(ts, sig string) error {
	if ts == "" || sig == "" {
		return errMissing
	}
	if !strings.HasPrefix(sig, "v0=") || len(sig) != len("v0=")+sha256.Size*2 {
		return errBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errStale
	}
	if d := v.now().Sub(time.Unix(sec, 0)); d > SignatureWindow || d < -SignatureWindow {
		return errStale
	}
	return nil
}
