// Package slackfake is an in-process stand-in for Slack: a Web API that records
// every call (chat.postMessage, chat.update, chat.postEphemeral,
// conversations.open, users.info, views.*), response_url endpoints, and simulated
// people who send signed slash commands and button clicks to the bot. Tests and
// local mode use it; it holds no secrets of its own.
package slackfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call is one request Slack received.
type Call struct {
	Method    string     // Web API method, or "response_url"
	URL       string     // for response_url calls: the URL posted to
	Params    url.Values // form parameters of Web API calls
	Body      string     // raw body (JSON for views.* and response_url)
	Channel   string     // channel the message landed in, when there is one
	TS        string     // ts given to a posted message
	User      string     // for ephemerals: who sees it
	Ephemeral bool
}

// Text is the visible text of the call: its text plus every block's text.
func (c Call) Text() string {
	if c.Method == "response_url" {
		return c.Body
	}
	return c.Params.Get("text") + "\n" + c.Params.Get("blocks")
}

// Message is a message as it stands in a channel now.
type Message struct {
	Channel, TS, Text, Blocks string
}

// Fault makes the next Times calls of Method fail.
type Fault struct {
	Method     string
	Times      int
	Status     int           // HTTP status, e.g. 429
	RetryAfter time.Duration // with 429
	Error      string        // or ok:false with this error, e.g. "user_not_in_channel"
}

// Server is the fake Slack.
type Server struct {
	Token string

	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	cond   chan struct{} // closed and replaced on every new call
	calls  []Call
	msgs   map[string]*Message // channel/ts → message
	faults []Fault
	seq    int
}

// Start runs a fake Slack on 127.0.0.1 that accepts token. Close stops it.
func Start(token string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Token: token, ln: ln, cond: make(chan struct{}), msgs: map[string]*Message{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.api)
	mux.HandleFunc("/response/", s.response)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// APIURL is what the bot uses as SLACK_API_URL.
func (s *Server) APIURL() string { return "http://" + s.ln.Addr().String() + "/api/" }

// Host is the fake's host:port, for the bot's trusted response hosts.
func (s *Server) Host() string { return s.ln.Addr().String() }

// NewResponseURL mints a response_url, as Slack puts in every command and click.
func (s *Server) NewResponseURL() string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("http://%s/response/%d", s.ln.Addr(), n)
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Calls returns a copy of every call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Message returns the current version of a posted message.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[channel+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// WaitFor blocks until match accepts a call (it sees each call once, in order),
// or ctx ends. It returns the matching call.
func (s *Server) WaitFor(ctx context.Context, match func(Call) bool) (Call, error) {
	next := 0
	for {
		s.mu.Lock()
		calls, wake := s.calls[next:], s.cond
		next = len(s.calls)
		s.mu.Unlock()
		for _, c := range calls {
			if match(c) {
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			return Call{}, fmt.Errorf("slackfake: waited in vain: %w", ctx.Err())
		case <-wake:
		}
	}
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	close(s.cond)
	s.cond = make(chan struct{})
}

func (s *Server) fault(method string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method == method && f.Times > 0 {
			s.faults[i].Times--
			return f, true
		}
	}
	return Fault{}, false
}

func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if f, ok := s.fault("response_url"); ok {
		s.record(Call{Method: "response_url!" + strconv.Itoa(f.Status), Body: string(body)})
		http.Error(w, "fault", f.Status)
		return
	}
	var m struct {
		ResponseType string `json:"response_type"`
	}
	_ = json.Unmarshal(body, &m)
	s.record(Call{Method: "response_url", URL: "http://" + r.Host + r.URL.Path, Body: string(body), Ephemeral: m.ResponseType != "in_channel"})
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var params url.Values
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		params, _ = url.ParseQuery(string(body))
		if t := params.Get("token"); t != "" {
			token = t
		}
	}
	reply := func(v map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	if token != s.Token {
		s.record(Call{Method: method + "!invalid_auth", Params: params, Body: string(body)})
		reply(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	if f, ok := s.fault(method); ok {
		s.record(Call{Method: method + "!fault", Params: params, Body: string(body)})
		if f.Status != 0 {
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter.Seconds())))
			}
			w.WriteHeader(f.Status)
			return
		}
		reply(map[string]any{"ok": false, "error": f.Error})
		return
	}
	c := Call{Method: method, Params: params, Body: string(body)}
	switch method {
	case "chat.postMessage":
		c.Channel = params.Get("channel")
		s.mu.Lock()
		s.seq++
		c.TS = fmt.Sprintf("1700000000.%06d", s.seq)
		s.msgs[c.Channel+"/"+c.TS] = &Message{Channel: c.Channel, TS: c.TS, Text: params.Get("text"), Blocks: params.Get("blocks")}
		s.mu.Unlock()
		s.record(c)
		reply(map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS})
	case "chat.update":
		c.Channel, c.TS = params.Get("channel"), params.Get("ts")
		s.mu.Lock()
		m, ok := s.msgs[c.Channel+"/"+c.TS]
		if ok {
			m.Text, m.Blocks = params.Get("text"), params.Get("blocks")
		}
		s.mu.Unlock()
		s.record(c)
		if !ok {
			reply(map[string]any{"ok": false, "error": "message_not_found"})
			return
		}
		reply(map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS})
	case "chat.postEphemeral":
		c.Channel, c.User, c.Ephemeral = params.Get("channel"), params.Get("user"), true
		s.record(c)
		reply(map[string]any{"ok": true, "message_ts": "1700000000.000001"})
	case "conversations.open":
		c.Channel = "D" + strings.TrimPrefix(params.Get("users"), "U")
		s.record(c)
		reply(map[string]any{"ok": true, "channel": map[string]any{"id": c.Channel}})
	case "users.info":
		s.record(c)
		id := params.Get("user")
		reply(map[string]any{"ok": true, "user": map[string]any{"id": id, "name": strings.ToLower(id), "deleted": false, "is_bot": false,
			"profile": map[string]any{"email": strings.ToLower(id) + "@example.com"}}})
	case "auth.test":
		s.record(c)
		reply(map[string]any{"ok": true, "user_id": "U0CREDBOT", "team_id": "T0LOCAL"})
	case "views.open", "views.publish", "views.update", "views.push":
		s.record(c)
		reply(map[string]any{"ok": true, "view": map[string]any{"id": "V0001"}})
	default:
		s.record(c)
		reply(map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// Person is a simulated Slack user who talks to the bot over signed HTTP.
type Person struct {
	ID   string
	Name string
}

// Workspace sends signed requests from people to the bot, as Slack would.
type Workspace struct {
	Slack         *Server
	BotURL        string // base URL of the bot, e.g. http://127.0.0.1:3000
	SigningSecret string
	Team          string
	Command       string // e.g. /credbot
	Sign          func(secret, ts string, body []byte) string
	HTTP          *http.Client
}

// Ack is the bot's immediate answer to a request.
type Ack struct {
	Status      int
	Body        string
	ResponseURL string // where the bot's later replies land
}

// Slash sends a slash command typed by p.
func (w *Workspace) Slash(ctx context.Context, p Person, text string) (Ack, error) {
	ru := w.Slack.NewResponseURL()
	form := url.Values{
		"token": {"deprecated"}, "team_id": {w.Team}, "team_domain": {"local"}, "channel_id": {"C0GENERAL"},
		"channel_name": {"general"}, "user_id": {p.ID}, "user_name": {p.Name}, "command": {w.Command},
		"text": {text}, "api_app_id": {"A0CREDBOT"}, "response_url": {ru}, "trigger_id": {"1.2.trigger"},
	}
	return w.post(ctx, "/slack/commands", []byte(form.Encode()), ru)
}

// Click presses the button actionID on message m as p.
func (w *Workspace) Click(ctx context.Context, p Person, m Message, actionID string) (Ack, error) {
	value, blockID, err := FindButton(m.Blocks, actionID)
	if err != nil {
		return Ack{}, err
	}
	ru := w.Slack.NewResponseURL()
	payload := map[string]any{
		"type": "block_actions", "team": map[string]any{"id": w.Team, "domain": "local"},
		"user":       map[string]any{"id": p.ID, "username": p.Name, "name": p.Name, "team_id": w.Team},
		"api_app_id": "A0CREDBOT", "token": "deprecated", "trigger_id": "1.2.trigger",
		"container":    map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": false},
		"channel":      map[string]any{"id": m.Channel},
		"message":      map[string]any{"type": "message", "ts": m.TS, "text": m.Text},
		"response_url": ru,
		"actions": []map[string]any{{"type": "button", "action_id": actionID, "block_id": blockID, "value": value,
			"action_ts": "1700000005.000001"}},
	}
	raw, _ := json.Marshal(payload)
	return w.post(ctx, "/slack/interactivity", []byte(url.Values{"payload": {string(raw)}}.Encode()), ru)
}

// Post sends a raw body to path, signed now, as Slack would.
func (w *Workspace) Post(ctx context.Context, path string, body []byte) (Ack, error) {
	return w.post(ctx, path, body, "")
}

func (w *Workspace) post(ctx context.Context, path string, body []byte, ru string) (Ack, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BotURL+path, bytes.NewReader(body))
	if err != nil {
		return Ack{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", w.Sign(w.SigningSecret, ts, body))
	hc := w.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Ack{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Ack{Status: resp.StatusCode, Body: string(b), ResponseURL: ru}, nil
}

// FindButton returns the value and block id of the button actionID in blocks JSON.
func FindButton(blocks, actionID string) (value, blockID string, err error) {
	var bs []struct {
		BlockID  string `json:"block_id"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		return "", "", fmt.Errorf("slackfake: blocks: %w", err)
	}
	for _, b := range bs {
		for _, e := range b.Elements {
			if e.ActionID == actionID {
				return e.Value, b.BlockID, nil
			}
		}
	}
	return "", "", fmt.Errorf("slackfake: no button %q in message", actionID)
}
