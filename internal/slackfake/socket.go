package slackfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socketHub is Slack's side of Socket Mode: apps.connections.open hands out a
// WebSocket URL, each connection gets a hello, envelopes go to one connection
// each (round robin, as Slack spreads them), and acks come back by envelope id.
type socketHub struct {
	s *Server

	mu       sync.Mutex
	appToken string
	conns    []*socketConn
	changed  chan struct{} // closed and replaced when conns change
	acks     map[string]chan json.RawMessage
	seq      int
	rr       int
	closed   bool
	wg       sync.WaitGroup
}

type socketConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
	once sync.Once
}

func (c *socketConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *socketConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func newSocketHub(s *Server) *socketHub {
	return &socketHub{s: s, changed: make(chan struct{}), acks: map[string]chan json.RawMessage{}}
}

// EnableSocketMode makes apps.connections.open accept only appToken; until it
// is called, any app-level token (xapp-…) is accepted.
func (s *Server) EnableSocketMode(appToken string) {
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	s.socket.appToken = appToken
}

// SocketConnections is how many Socket Mode connections are open.
func (s *Server) SocketConnections() int {
	s.socket.mu.Lock()
	defer s.socket.mu.Unlock()
	return len(s.socket.conns)
}

// WaitSocketConnections blocks until exactly n connections are open.
func (s *Server) WaitSocketConnections(ctx context.Context, n int) error {
	h := s.socket
	for {
		h.mu.Lock()
		have, wake := len(h.conns), h.changed
		h.mu.Unlock()
		if have == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slackfake: %d of %d socket connections: %w", have, n, ctx.Err())
		case <-wake:
		}
	}
}

// DisconnectSockets asks every connected client to reconnect, as Slack does
// every few hours (reason "refresh_requested", "warning" or "link_disabled").
func (s *Server) DisconnectSockets(reason string) {
	h := s.socket
	h.mu.Lock()
	conns := append([]*socketConn(nil), h.conns...)
	h.mu.Unlock()
	for _, c := range conns {
		_ = c.write(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "slackfake"}})
	}
}

// Envelope sends one Socket Mode envelope of type typ ("slash_commands",
// "interactive", "events_api") and returns the payload of the bot's ack. It
// waits for a connection if none is open, and resends (with retry_attempt
// raised) if the connection it used closes before the ack, as Slack does.
func (s *Server) Envelope(ctx context.Context, typ string, payload any) (json.RawMessage, error) {
	h := s.socket
	h.mu.Lock()
	h.seq++
	id := fmt.Sprintf("env-%d", h.seq)
	ack := make(chan json.RawMessage, 1)
	h.acks[id] = ack
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.acks, id)
		h.mu.Unlock()
	}()
	for attempt := 0; ; attempt++ {
		c, err := h.pick(ctx)
		if err != nil {
			return nil, err
		}
		env := map[string]any{
			"envelope_id": id, "type": typ, "payload": payload,
			"accepts_response_payload": typ != "events_api", "retry_attempt": attempt,
		}
		if attempt > 0 {
			env["retry_reason"] = "timeout"
		}
		if err := c.write(env); err != nil {
			c.close()
			continue
		}
		select {
		case a := <-ack:
			return a, nil
		case <-c.done:
			// Lost with its connection: send it again on another.
		case <-ctx.Done():
			return nil, fmt.Errorf("slackfake: no ack for %s: %w", id, ctx.Err())
		}
	}
}

// pick returns the next open connection, waiting for one if there is none.
func (h *socketHub) pick(ctx context.Context) (*socketConn, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, errors.New("slackfake: closed")
		}
		if n := len(h.conns); n > 0 {
			h.rr++
			c := h.conns[h.rr%n]
			h.mu.Unlock()
			return c, nil
		}
		wake := h.changed
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("slackfake: no socket connection: %w", ctx.Err())
		case <-wake:
		}
	}
}

// open answers apps.connections.open.
func (h *socketHub) open(w http.ResponseWriter, r *http.Request, token string) {
	h.mu.Lock()
	ok := token == h.appToken || (h.appToken == "" && strings.HasPrefix(token, "xapp-"))
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		h.s.record(Call{Method: "apps.connections.open!invalid_auth"})
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	h.s.record(Call{Method: "apps.connections.open"})
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": "ws://" + r.Host + "/socket"})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (h *socketHub) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &socketConn{ws: ws, done: make(chan struct{})}
	// Ping before hello and then every second: slack-go reconnects when Slack
	// has not pinged for 30 seconds.
	_ = ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
	h.mu.Lock()
	n := len(h.conns) + 1
	h.mu.Unlock()
	if err := c.write(map[string]any{"type": "hello", "num_connections": n, "connection_info": map[string]any{"app_id": "A0CREDBOT"},
		"debug_info": map[string]any{"host": "slackfake", "approximate_connection_time": 18060}}); err != nil {
		c.close()
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		c.close()
		return
	}
	h.conns = append(h.conns, c)
	h.wg.Add(2)
	h.notify()
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				if ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)) != nil {
					c.close()
				}
			}
		}
	}()
	go func() {
		defer h.wg.Done()
		defer h.drop(c)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var a struct {
				EnvelopeID string          `json:"envelope_id"`
				Payload    json.RawMessage `json:"payload"`
			}
			if json.Unmarshal(b, &a) != nil || a.EnvelopeID == "" {
				continue
			}
			h.mu.Lock()
			ch := h.acks[a.EnvelopeID]
			h.mu.Unlock()
			if ch != nil {
				select {
				case ch <- a.Payload:
				default: // a second ack of the same envelope
				}
			}
		}
	}()
}

func (h *socketHub) drop(c *socketConn) {
	c.close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.conns {
		if x == c {
			h.conns = append(h.conns[:i], h.conns[i+1:]...)
			h.notify()
			return
		}
	}
}

func (h *socketHub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *socketHub) close() {
	h.mu.Lock()
	h.closed = true
	conns := append([]*socketConn(nil), h.conns...)
	h.notify()
	h.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	h.wg.Wait()
}
