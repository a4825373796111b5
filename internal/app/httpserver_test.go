package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// httpTestGuard bounds how long a test waits for an event that must come; it fails
// the test rather than pacing it.
const httpTestGuard = 30 * time.Second

// serveHardened runs newHTTPServer(h) on ln and stops it when the test ends, waiting
// for Serve to return.
func serveHardened(t *testing.T, ln net.Listener, h http.Handler) *http.Server {
	t.Helper()
	srv := newHTTPServer(h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		case <-time.After(httpTestGuard):
			t.Errorf("Serve did not return after Close")
		}
	})
	return srv
}

// getOnConn sends one HTTP/1.1 request on conn, which stays open for the next.
func getOnConn(t *testing.T, conn net.Conn, r *bufio.Reader) *http.Response {
	t.Helper()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: credbot\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestHTTPServerRefusesOversizedHeaders(t *testing.T) {
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHardened(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	url := "http://" + ln.Addr().String() + "/slack/commands"
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request with 64 KiB of headers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: status %d, want 431", resp.StatusCode)
	}

	// Slack's own requests carry a few hundred bytes of headers.
	req, _ = http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("0", 64))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ordinary request: status %d, want 200", resp.StatusCode)
	}
}

func TestHTTPServerHasEveryTimeout(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("timeouts read-header %v, read %v, write %v, idle %v: a slow client must not hold a connection forever",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if srv.MaxHeaderBytes != maxHeaderBytes {
		t.Errorf("MaxHeaderBytes %d, want %d", srv.MaxHeaderBytes, maxHeaderBytes)
	}
}

func TestConnectionsBeyondTheCapWaitUntilOneCloses(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := capConnections(inner, 2)
	full := make(chan struct{}, 8)
	ln.full = func() {
		select {
		case full <- struct{}{}:
		default:
		}
	}
	var firstClosed atomic.Bool
	var servedEarly atomic.Bool
	serveHardened(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Third") != "" && !firstClosed.Load() {
			servedEarly.Store(true)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}

	// Two connections fill the cap and stay open (keep-alive).
	c1, r1 := dial()
	getOnConn(t, c1, r1)
	c2, r2 := dial()
	getOnConn(t, c2, r2)
	select {
	case <-full:
	case <-time.After(httpTestGuard):
		t.Fatal("the listener took a third connection slot: no cap")
	}

	// A third connection is queued by the kernel but not served...
	c3, r3 := dial()
	if _, err := io.WriteString(c3, "GET / HTTP/1.1\r\nHost: credbot\r\nX-Third: 1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// ...until one of the first two closes.
	firstClosed.Store(true)
	c1.Close()
	_ = c3.SetReadDeadline(time.Now().Add(httpTestGuard))
	resp, err := http.ReadResponse(r3, nil)
	if err != nil {
		t.Fatalf("the third connection was not served after one closed: %v", err)
	}
	resp.Body.Close()
	if servedEarly.Load() {
		t.Errorf("the third connection was served while the cap was reached")
	}
	// The server still stops promptly while at the cap (serveHardened's cleanup).
	getOnConn(t, c2, r2)
}
