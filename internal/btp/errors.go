package btp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

// Sentinels for conditions that have no counterpart in the approval package.
// Match them with errors.Is on any error the Client returns.
var (
	// ErrProtocolOutdated is the server's HTTP 412: it considers the pinned
	// protocol version (Config.ProtocolVersion) too old. Bump the version.
	ErrProtocolOutdated = errors.New("btp: protocol version outdated")
	// ErrRateLimited is an HTTP 429 from the CLI server or its backend.
	ErrRateLimited = errors.New("btp: rate limited")
	// ErrServerTimeout is the CLI server's HTTP 504.
	ErrServerTimeout = errors.New("btp: server timeout")
	// ErrLogin is a login the server refused: wrong credentials, unknown
	// global account or custom IdP. It is a configuration problem, not a
	// missing credential, so it deliberately does not match approval.ErrNotFound.
	ErrLogin = errors.New("btp: login failed")
	// ErrProtocol is a response that breaks the protocol, e.g. an outer 200
	// without X-Cpcli-Backend-Status, or a create without a secret.
	ErrProtocol = errors.New("btp: protocol violation")
	// ErrVerification is a freshly created credential whose token endpoint
	// refused a client_credentials grant (Config.VerifyCredentials).
	// It matches approval.ErrUnverified, so the lifecycle can say so.
	ErrVerification = fmt.Errorf("btp: credential verification failed: %w", approval.ErrUnverified)
	// ErrAmbiguous matches a create whose outcome could not be resolved: a
	// credential of that name may exist at BTP without anyone holding its
	// secret. Delete it by name before trying again. Such errors are Temporary.
	ErrAmbiguous = errors.New("btp: create outcome unknown")
)

// notSentToBackend is how the CLI server says that a 504 happened before the
// command reached the backend, which makes even a create safe to repeat.
const notSentToBackend = "not sent to the backend"

// Error is a failure of one call to the btp CLI server. It carries both status
// layers and the correlation id, and matches the approval sentinels with
// errors.Is: backend 404 is approval.ErrNotFound, any 403 approval.ErrForbidden,
// backend 400 approval.ErrInvalid, an existing name approval.ErrConflict.
//
// An Error never holds secret material: messages come from the server's error
// fields and headers, which describe requests, and requests carry no secrets.
type Error struct {
	Op            string         // login, create, get, list, delete, verify
	Name          string         // credential name, if any
	Scope         approval.Scope // zero for login
	StatusCode    int            // outer HTTP status of the CLI server; 0 for a network error
	BackendStatus int            // X-Cpcli-Backend-Status; 0 when absent
	Message       string         // the server's explanation
	CorrelationID string         // X-Correlationid of the call
	RetryAfter    time.Duration  // from Retry-After, when the server sent one
	Err           error          // underlying cause (network error, sentinel), may be nil

	// transport marks a request that failed on the network, without an answer.
	transport bool
	// ambiguous marks a create whose outcome is unknown: the request may have
	// reached the backend. Create resolves it by name.
	ambiguous bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("btp ")
	b.WriteString(e.Op)
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	if e.Scope != (approval.Scope{}) {
		fmt.Fprintf(&b, " in %s", e.Scope)
	}
	b.WriteString(": ")
	switch {
	case e.StatusCode == 0 && e.Err != nil:
		b.WriteString(e.Err.Error())
	case e.BackendStatus >= 400:
		fmt.Fprintf(&b, "backend status %d", e.BackendStatus)
	case e.StatusCode != 0:
		fmt.Fprintf(&b, "status %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.StatusCode != 0 && e.Err != nil && !isSentinel(e.Err) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	fmt.Fprintf(&b, " [correlation id %s]", e.CorrelationID)
	return b.String()
}

func isSentinel(err error) bool {
	switch err {
	case ErrProtocolOutdated, ErrRateLimited, ErrServerTimeout, ErrLogin, ErrProtocol, ErrVerification, ErrAmbiguous,
		approval.ErrInvalid, approval.ErrNotFound, approval.ErrConflict, approval.ErrForbidden:
		return true
	}
	return false
}

var _ approval.Temporary = (*Error)(nil)

// Unwrap returns the underlying cause, e.g. a *net.OpError or context.Canceled.
func (e *Error) Unwrap() error { return e.Err }

// Is maps the two status layers onto the sentinels callers match.
func (e *Error) Is(target error) bool {
	switch target {
	case approval.ErrNotFound:
		return e.BackendStatus == http.StatusNotFound
	case approval.ErrForbidden:
		return e.StatusCode == http.StatusForbidden || e.BackendStatus == http.StatusForbidden
	case approval.ErrInvalid:
		return e.BackendStatus == http.StatusBadRequest && !e.alreadyExists()
	case approval.ErrConflict:
		return e.BackendStatus == http.StatusConflict || e.alreadyExists()
	case ErrProtocolOutdated:
		return e.StatusCode == http.StatusPreconditionFailed
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests || e.BackendStatus == http.StatusTooManyRequests
	case ErrServerTimeout:
		return e.StatusCode == http.StatusGatewayTimeout
	case ErrAmbiguous:
		return e.ambiguous
	}
	return false
}

// alreadyExists recognises a duplicate-name refusal. The real server's answer is
// not recorded (reference §6); we accept backend 409 or any backend 4xx whose
// message says the name exists.
func (e *Error) alreadyExists() bool {
	if e.BackendStatus < 400 || e.BackendStatus >= 500 {
		return false
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "already exist")
}

// Temporary reports whether trying again later may succeed: the network failed,
// or the server was overloaded or timed out and our retries ran out.
func (e *Error) Temporary() bool {
	if e.transport || e.ambiguous {
		return true
	}
	return retryableStatus(e.StatusCode) ||
		e.BackendStatus == http.StatusTooManyRequests || e.BackendStatus >= 500
}

var _ approval.Throttled = (*Error)(nil)

// Throttled reports a 429 from the CLI server or its backend, with the wait
// its Retry-After asked for (0 when it gave none), for callers that spread
// many calls (the inventory) and must slow down.
func (e *Error) Throttled() (time.Duration, bool) {
	return e.RetryAfter, e.Is(ErrRateLimited)
}

// retryableStatus is the set of outer statuses worth repeating a request for.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads Retry-After as delta-seconds (fractions tolerated) or an
// HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
