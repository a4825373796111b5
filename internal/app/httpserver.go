package app

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the HTTP server that takes Slack's Request URLs, the probes and
// /metrics. Slack signs a request of a few kilobytes with a few hundred bytes
// of headers and wants an answer within 3 seconds, so anything far beyond that
// is a client we owe nothing.
const (
	// maxConnections caps open connections; more wait in the kernel's accept
	// queue until one closes, so a flood of idle or slow connections costs a
	// bounded number of goroutines and buffers.
	maxConnections = 1024
	// maxHeaderBytes caps a request's header block (Go answers 431 beyond it).
	maxHeaderBytes = 16 << 10

	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	// writeTimeout runs from the end of the request headers to the end of the
	// response; every handler answers in well under Slack's 3 seconds.
	writeTimeout = 30 * time.Second
	// idleTimeout frees a keep-alive connection's slot under maxConnections.
	idleTimeout = 60 * time.Second
)

// listen opens addr for the HTTP server, capped at maxConnections.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return capConnections(ln, maxConnections), nil
}

// newHTTPServer serves h with every timeout set and the header block bounded.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// cappedListener accepts a connection only while fewer than cap(slots) are
// open; beyond that Accept waits until one closes (as x/net's
// netutil.LimitListener does, which we do not depend on for this alone).
type cappedListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	// full, when set, is called each time Accept has to wait for a slot: a
	// seam for tests, which must see the cap reached without sleeping.
	full func()
}

func capConnections(ln net.Listener, n int) *cappedListener {
	return &cappedListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *cappedListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.full != nil {
			l.full()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &cappedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close also ends an Accept that is waiting for a slot, so that the server
// can shut down while at the cap.
func (l *cappedListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// cappedConn gives its slot back on the first Close.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
