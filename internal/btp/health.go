package btp

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// reach remembers whether the CLI server answered the last time it was
// called, so that health can tell "BTP is unreachable" without spending a
// call of the bot's rate budget on a probe.
type reach struct {
	mu       sync.Mutex
	lastOK   time.Time
	lastFail time.Time
	failErr  error
}

// observe records one round trip: a transport error, a gateway failure or an
// outer rate limit means the server could not be reached or could not serve.
func (r *reach) observe(now time.Time, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil, status == http.StatusBadGateway, status == http.StatusServiceUnavailable,
		status == http.StatusGatewayTimeout, status == http.StatusTooManyRequests:
		r.lastFail, r.failErr = now, err
		if err == nil {
			r.failErr = &Error{Op: "call", StatusCode: status, Message: http.StatusText(status)}
		}
	default:
		r.lastOK = now
	}
}

func (r *reach) failing() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastFail.After(r.lastOK) {
		return r.failErr
	}
	return nil
}

// Health reports whether the bot can work at BTP: it logs in if it has no
// session (a failing login returns its real cause: a wrong password, an
// outdated protocol version, an unknown global account, …), and reports the
// last call's failure if the server has not answered since.
func (c *Client) Health(ctx context.Context) error {
	if _, err := c.session(ctx, newCorrelationID(), nil); err != nil {
		return err
	}
	return c.reach.failing()
}
