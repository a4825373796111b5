package btp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/credbot/credbot/internal/approval"
)

// Protocol header names (reference §1.2, §1.5).
const (
	hdrCorrelationID  = "X-Correlationid"
	hdrFormat         = "X-Cpcli-Format"
	hdrSessionID      = "X-Cpcli-Sessionid"
	hdrSubdomain      = "X-Cpcli-Subdomain"
	hdrCustomIdP      = "X-Cpcli-Customidp"
	hdrBackendStatus  = "X-Cpcli-Backend-Status"
	hdrBackendMessage = "X-Cpcli-Backend-Message"
	hdrServerMessage  = "X-Cpcli-Server-Message"
)

// maxBody bounds what we read of any response; api-credential answers are a
// few kilobytes.
const maxBody = 4 << 20

// call is one logical request. Retries of it reuse the correlation id.
type call struct {
	op    string // login, create, get, list, delete
	path  string // path and query below the server URL
	body  func(ctx context.Context) ([]byte, error)
	corr  string
	scope approval.Scope
	name  string

	// command requests carry the session headers and re-login on 401.
	command bool
	// once marks a non-idempotent request (create): it is repeated only when
	// it certainly did not reach the backend, and any other failure after
	// sending is reported as ambiguous.
	once bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) newError(cl *call) *Error {
	return &Error{Op: cl.op, Name: cl.name, Scope: cl.scope, CorrelationID: cl.corr}
}

// do runs cl with retries and returns the first successful response: outer 200
// and (for commands) backend status below 400.
func (c *Client) do(ctx context.Context, cl *call) (*response, error) {
	var sess *session
	if cl.command {
		s, err := c.session(ctx, cl.corr, nil)
		if err != nil {
			return nil, err
		}
		sess = s
	}
	relogged := false
	for attempt := 0; ; attempt++ {
		start := time.Now()
		resp, wrote, err := c.roundTrip(ctx, cl, sess)
		if ctx.Err() == nil {
			status := 0
			if resp != nil {
				status = resp.status
			}
			c.reach.observe(c.now(), status, err)
		}
		if c.cfg.Observe != nil {
			c.cfg.Observe(cl.op, outcome(resp, err), time.Since(start))
		}
		var e *Error
		retry := false
		if err != nil {
			e = c.newError(cl)
			e.Err, e.transport = err, true
			switch {
			case ctx.Err() != nil:
				return nil, e
			case cl.once && wrote:
				// The server may have acted on the whole request.
				e.ambiguous = true
				return nil, e
			}
			retry = true
		} else {
			e = c.classify(cl, resp)
			if e == nil {
				return resp, nil
			}
			if resp.status == http.StatusUnauthorized && cl.command && !relogged {
				// The session expired or was revoked: one fresh login, then
				// the same request again. The server refused the command
				// before running it, so this is safe even for a create.
				relogged = true
				c.log.LogAttrs(ctx, slog.LevelInfo, "btp session rejected, logging in again",
					slog.String("op", cl.op), slog.String("correlation_id", cl.corr))
				s, lerr := c.session(ctx, cl.corr, sess)
				if lerr != nil {
					return nil, lerr
				}
				sess = s
				attempt--
				continue
			}
			retry = c.retryable(cl, e)
			if !retry && cl.once && ambiguousStatus(e) {
				e.ambiguous = true
			}
		}
		if !retry || attempt >= c.cfg.MaxRetries {
			return nil, e
		}
		if e.RetryAfter > maxRetryAfter {
			return nil, e
		}
		wait := c.backoff(attempt, e.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return nil, e
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "btp request failed, retrying",
			slog.String("op", cl.op), slog.String("correlation_id", cl.corr),
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.String("error", e.Error()))
		if err := c.sleep(ctx, wait); err != nil {
			if e.Err == nil || isSentinel(e.Err) {
				e.Err = err // the caller gave up; say so
			}
			return nil, e
		}
	}
}

// outcome names a round trip's result for metrics: ok, refused (the server or
// backend said no: 4xx), rate_limited (429 outside or inside), server_error
// (5xx), unreachable (no answer).
func outcome(resp *response, err error) string {
	if err != nil || resp == nil {
		return "unreachable"
	}
	status := resp.status
	if status < 300 {
		if b, perr := strconv.Atoi(resp.header.Get(hdrBackendStatus)); perr == nil {
			status = b
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "server_error"
	case status >= 400:
		return "refused"
	}
	return "ok"
}

// retryable says whether repeating cl after e is safe and useful.
func (c *Client) retryable(cl *call, e *Error) bool {
	if e.transport {
		return true // do() has already excluded a create that was sent
	}
	if e.BackendStatus != 0 || !retryableStatus(e.StatusCode) {
		// Backend errors inside an outer 200 are answers, not hiccups.
		return false
	}
	if !cl.once {
		return true
	}
	switch e.StatusCode {
	case http.StatusTooManyRequests:
		return true // refused before execution
	case http.StatusGatewayTimeout:
		return strings.Contains(e.Message, notSentToBackend)
	}
	return false
}

// ambiguousStatus says whether a failed create may nevertheless have created
// the credential: any 5xx except the documented clean 504.
func ambiguousStatus(e *Error) bool {
	if e.BackendStatus >= 500 {
		return true
	}
	if e.BackendStatus != 0 || e.StatusCode < 500 {
		return false
	}
	return !(e.StatusCode == http.StatusGatewayTimeout && strings.Contains(e.Message, notSentToBackend))
}

// roundTrip sends cl once. wrote reports whether the whole request reached the
// wire before a transport error, which is what makes a create ambiguous.
func (c *Client) roundTrip(ctx context.Context, cl *call, sess *session) (resp *response, wrote bool, err error) {
	body, err := cl.body(ctx)
	if err != nil {
		return nil, false, err
	}
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote = info.Err == nil },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost,
		c.base.String()+cl.path, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", c.cfg.UserAgent)
	h.Set(hdrFormat, "json")
	h.Set(hdrCorrelationID, cl.corr)
	if cl.command {
		h.Set(hdrSessionID, sess.id)
		h.Set(hdrSubdomain, c.cfg.GlobalAccount)
		h.Set(hdrCustomIdP, sess.customIdP)
	}
	hr, err := c.httpc.Do(req)
	if err != nil {
		return nil, wrote, err
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	if err != nil {
		// The server answered but the body broke off: it has acted.
		return nil, true, err
	}
	resp = &response{status: hr.StatusCode, header: hr.Header, body: b}
	return resp, true, nil
}

// classify turns a response into nil (success) or an *Error.
func (c *Client) classify(cl *call, r *response) *Error {
	e := c.newError(cl)
	e.StatusCode = r.status
	if ra := r.header.Get("Retry-After"); ra != "" {
		e.RetryAfter = parseRetryAfter(ra, c.now())
	}
	if r.status >= 300 && r.status < 400 {
		// Never followed (withoutRedirects), and never retried: the answer
		// will not change, and it means the configured URL is not the server.
		e.Message = redirectMessage(c.base, r.header.Get("Location"),
			"so set BTP_CLI_SERVER_URL to the server itself if that host is it")
		return e
	}
	if r.status != http.StatusOK {
		e.Message = errorMessage(r)
		switch r.status {
		case http.StatusPreconditionFailed:
			e.Err = ErrProtocolOutdated
			if e.Message == "" {
				e.Message = fmt.Sprintf("the server considers protocol %s outdated; update the client", c.cfg.ProtocolVersion)
			}
		case http.StatusUnauthorized:
			if cl.op == "login" {
				e.Err = ErrLogin
				if e.Message == "" {
					e.Message = "wrong user name, password, passcode or assertion"
				}
			} else if e.Message == "" {
				e.Message = "session not accepted"
			}
		case http.StatusNotFound:
			if cl.op == "login" {
				e.Err = ErrLogin
				if e.Message == "" {
					e.Message = fmt.Sprintf("global account %q or custom IdP not found", c.cfg.GlobalAccount)
				}
			}
		case http.StatusForbidden:
			if e.Message == "" {
				e.Message = "insufficient authorization"
			}
		case http.StatusTooManyRequests:
			e.Err = ErrRateLimited
		case http.StatusGatewayTimeout:
			e.Err = ErrServerTimeout
		}
		return e
	}
	if !cl.command {
		return nil
	}
	bs := r.header.Get(hdrBackendStatus)
	if bs == "" {
		e.Err = ErrProtocol
		e.Message = "response without " + hdrBackendStatus
		return e
	}
	n, err := strconv.Atoi(strings.TrimSpace(bs))
	if err != nil {
		e.Err = ErrProtocol
		e.Message = fmt.Sprintf("malformed %s %q", hdrBackendStatus, bs)
		return e
	}
	if n < 400 {
		return nil
	}
	e.BackendStatus = n
	e.Message = errorMessage(r)
	if e.Message == "" {
		e.Message = fmt.Sprintf("unknown error %d", n)
	}
	return e
}

// errorMessage finds the server's explanation: the body's error, ErrorMessage
// or description, else the backend's then the server's message header.
func errorMessage(r *response) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(r.body, &m) == nil {
		for _, k := range []string{"error", "ErrorMessage", "description", "message"} {
			raw, ok := m[k]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) == nil && s != "" {
				return clean(s)
			}
			// The CLI server's own 429 nests it: {"error":{"code":..,"message":".."}}.
			var nested struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(raw, &nested) == nil && nested.Message != "" {
				return clean(nested.Message)
			}
		}
	}
	for _, h := range []string{hdrBackendMessage, hdrServerMessage} {
		if v := r.header.Get(h); v != "" {
			return clean(v)
		}
	}
	return ""
}

// clean keeps a server message printable and short enough for a log line.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// newCorrelationID returns a random UUID (version 4), one per logical call.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// jsonBody encodes v as the reference client does: no HTML escaping, and a
// trailing newline.
func jsonBody(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
