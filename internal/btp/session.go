package btp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// session is a logged-in identity at the CLI server. The server returns its id
// only in the X-Cpcli-Sessionid header of the login response.
type session struct {
	id        string
	customIdP string // sent back as X-Cpcli-Customidp on every command
	issuer    string
	mail      string
	obtained  time.Time
}

// loginCall is one login in progress that any number of callers wait for.
type loginCall struct {
	done chan struct{}
	s    *session
	err  error
}

// session returns a usable session, logging in when there is none, when the
// current one is older than sessionMaxAge, or when it is stale (the server has
// just rejected it). Concurrent callers share one login: the first starts it,
// the rest wait for the same result.
func (c *Client) session(ctx context.Context, corr string, stale *session) (*session, error) {
	c.sessMu.Lock()
	if s := c.sess; s != nil && s != stale && c.now().Sub(s.obtained) < sessionMaxAge {
		c.sessMu.Unlock()
		return s, nil
	}
	lc := c.inflight
	if lc == nil {
		lc = &loginCall{done: make(chan struct{})}
		c.inflight = lc
		// The login runs on behalf of every waiter, so one caller giving up
		// must not cancel it for the others; it is bounded by loginTimeout.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loginTimeout)
		go func() {
			defer cancel()
			s, err := c.login(lctx)
			c.sessMu.Lock()
			c.inflight = nil
			if err == nil {
				c.sess = s
			}
			c.sessMu.Unlock()
			lc.s, lc.err = s, err
			close(lc.done)
		}()
	}
	c.sessMu.Unlock()
	select {
	case <-lc.done:
		return lc.s, lc.err
	case <-ctx.Done():
		// The login goes on for the other callers; say why it has not
		// succeeded yet (a readiness check's "context deadline exceeded"
		// alone sends an operator nowhere).
		err := ctx.Err()
		if last := c.reach.failing(); last != nil {
			err = fmt.Errorf("%w while the login is retried; its last attempt: %v", err, last)
		}
		return nil, &Error{Op: "login", Err: err, transport: true, CorrelationID: corr}
	}
}

// loginRequest is the body of every login flow; key order follows the
// recordings.
type loginRequest struct {
	CustomIdP string `json:"customIdp"`
	Subdomain string `json:"subdomain"`
	UserName  string `json:"userName"`
	Password  string `json:"password"`
	JWT       string `json:"jwt,omitempty"`
}

// login performs the configured login flow once (with retries of transient
// failures) and returns the new session.
func (c *Client) login(ctx context.Context) (*session, error) {
	cl := &call{
		op:   "login",
		path: "/login/" + c.cfg.ProtocolVersion,
		corr: newCorrelationID(),
	}
	cl.body = func(ctx context.Context) ([]byte, error) {
		req := loginRequest{CustomIdP: c.cfg.IdP, Subdomain: c.cfg.GlobalAccount}
		switch c.flow {
		case flowPassword:
			req.UserName, req.Password = c.cfg.Username, c.cfg.Password
		case flowAssertion:
			jwt, err := c.assertion()
			if err != nil {
				return nil, err
			}
			req.JWT = jwt
		case flowX509:
			// A passcode is good for one login, so every attempt fetches one.
			pc, err := c.passcode(ctx)
			if err != nil {
				return nil, err
			}
			req.UserName, req.Password = c.cfg.Username, pc
		}
		return jsonBody(req)
	}
	resp, err := c.do(ctx, cl)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "btp login failed",
			slog.String("flow", c.flow.String()), slog.String("correlation_id", cl.corr), slog.String("error", err.Error()))
		return nil, err
	}
	id := resp.header.Get(hdrSessionID)
	if id == "" {
		e := c.newError(cl)
		e.StatusCode, e.Err, e.Message = resp.status, ErrProtocol, "login response without "+hdrSessionID
		return nil, e
	}
	var who struct {
		Issuer string `json:"issuer"`
		Mail   string `json:"mail"`
	}
	_ = json.Unmarshal(resp.body, &who) // informational only; the body may be empty
	s := &session{id: id, customIdP: c.cfg.IdP, issuer: who.Issuer, mail: who.Mail, obtained: c.now()}
	c.log.LogAttrs(ctx, slog.LevelInfo, "btp login",
		slog.String("flow", c.flow.String()), slog.String("btp_user", who.Mail), slog.String("issuer", who.Issuer),
		slog.String("global_account", c.cfg.GlobalAccount), slog.String("correlation_id", cl.corr))
	return s, nil
}

// assertion returns the JWT for an assertion login.
func (c *Client) assertion() (string, error) {
	if c.cfg.TokenSource == nil {
		return c.cfg.Assertion, nil
	}
	tok, err := c.cfg.TokenSource.Token()
	if err != nil {
		return "", fmt.Errorf("JWT assertion from token source: %w", err)
	}
	if id, ok := tok.Extra("id_token").(string); ok && id != "" {
		return id, nil
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("JWT assertion from token source: empty token")
	}
	return tok.AccessToken, nil
}

// passcode asks the IAS tenant for a one-time passcode, authenticating with the
// client certificate (mutual TLS).
func (c *Client) passcode(ctx context.Context) (string, error) {
	u := strings.TrimRight(c.cfg.TLSIdPURL, "/") + "/service/users/passcode"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if c.loginCert.refresh() {
		// A pooled connection would still present the old certificate.
		c.idpHTTP.CloseIdleConnections()
	}
	resp, err := c.idpHTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("passcode from %s: %w", c.cfg.TLSIdPURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("passcode from %s: %w", c.cfg.TLSIdPURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The body of an error is not echoed: it is the IdP's, not ours to log.
		return "", fmt.Errorf("passcode from %s: status %d", c.cfg.TLSIdPURL, resp.StatusCode)
	}
	var pc struct {
		Passcode string `json:"passcode"`
	}
	if err := json.Unmarshal(b, &pc); err != nil || pc.Passcode == "" {
		return "", fmt.Errorf("passcode from %s: response without a passcode", c.cfg.TLSIdPURL)
	}
	return pc.Passcode, nil
}
