// Package slackfake is an in-process stand-in for Slack: a Web API that records
// every call (chat.postMessage, chat.update, chat.postEphemeral,
// conversations.open, users.info, users.lookupByEmail, usergroups.*, views.*,
// auth.test), response_url endpoints, a Socket Mode endpoint, and simulated
// people who send slash commands, clicks, form submissions and Home-tab opens
// to the bot over signed HTTP or Socket Mode. Tests and local mode use it; it
// holds no secrets of its own.
package slackfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	ThreadTS  string     // the thread a message was posted in
	User      string     // for ephemerals: who sees it; for views: whose
	Ephemeral bool
	At        time.Time
}

// Text is the visible text of the call: its text plus every block's text.
func (c Call) Text() string {
	if c.Method == "response_url" || strings.HasPrefix(c.Method, "views.") {
		return c.Body
	}
	return c.Params.Get("text") + "\n" + c.Params.Get("blocks")
}

// Message is a message as it stands in a channel now.
type Message struct {
	Channel, TS, ThreadTS, Text, Blocks string
}

// Fault makes the next Times calls of Method fail.
type Fault struct {
	Method     string
	Channel    string // only calls to this channel ("" any)
	Times      int
	Status     int           // HTTP status, e.g. 429
	RetryAfter time.Duration // with 429
	Error      string        // or ok:false with this error, e.g. "user_not_in_channel"
}

// User is a profile users.info serves. Unknown ids get a full member of
// DefaultTeam.
type User struct {
	ID              string
	Name            string
	Team            string
	Enterprise      string
	Email           string
	Deleted         bool
	Bot             bool
	Restricted      bool // multi-channel guest
	UltraRestricted bool // single-channel guest
	Stranger        bool
}

// DefaultTeam is the workspace auth.test reports and unknown users belong to.
const DefaultTeam = "T0LOCAL"

type group struct {
	id, handle string
	members    []string
}

type window struct {
	limit int
	per   time.Duration
	start time.Time
	n     int
}

type trigger struct {
	issued time.Time
	used   bool
}

// Server is the fake Slack.
type Server struct {
	Token string
	// TriggerTTL is how long a trigger_id stays valid (Slack: 3 seconds).
	TriggerTTL time.Duration

	srv *http.Server
	ln  net.Listener

	// wmu orders recording against waiting: a call is appended and offered
	// to every waiter under it, so a waiter sees each call once, in order, and
	// no call slips between looking through the history and waiting for more.
	// It is taken before mu, never after.
	wmu     sync.Mutex
	waiters []*waiter

	mu       sync.Mutex
	calls    []Call // the kept history; calls[0] is call number first
	first    int
	keep     int                 // KeepLast's bound; 0 keeps everything
	msgs     map[string]*Message // channel/ts → message
	msgOrder []string            // msgs keys, oldest first, when keep bounds them
	faults   []Fault
	seq      int
	users    map[string]User
	groups   []group
	limits   map[string]*window
	trig     map[string]*trigger
	trigFIFO []string          // trig keys, oldest first, to drop expired ones
	homes    map[string]string // user → blocks JSON of their published Home tab
	views    map[string]string // view id → view JSON (modals)
	outside  map[string]bool   // channels the bot was not invited to
	revoked  bool              // the bot token no longer works
	scopes   []string          // what auth.test says the token may do

	socket *socketHub
	conns  atomic.Int64 // connections accepted
}

// Start runs a fake Slack on 127.0.0.1 that accepts token. Close stops it.
func Start(token string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Token: token, TriggerTTL: 3 * time.Second, ln: ln, msgs: map[string]*Message{},
		users: map[string]User{}, limits: map[string]*window{}, trig: map[string]*trigger{},
		homes: map[string]string{}, views: map[string]string{},
	}
	s.socket = newSocketHub(s)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.api)
	mux.HandleFunc("/response/", s.response)
	mux.HandleFunc("/socket", s.socket.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}}
	// Every goroutine that serves the fake carries this label, so that a CPU
	// profile of a load run can tell the fake's work from the bot's.
	go pprof.Do(context.Background(), pprof.Labels(ProfileLabel, ProfileLabelValue), func(context.Context) { _ = s.srv.Serve(ln) })
	return s, nil
}

// ProfileLabel and ProfileLabelValue are the pprof label on every goroutine
// that serves the fake Slack (its handlers and connections).
const (
	ProfileLabel      = "credbot.part"
	ProfileLabelValue = "slackfake"
)

// KeepLast bounds what the fake remembers to about the last n calls and the
// last n posted messages (0, the default, keeps everything), so that a long
// load run measures the bot's memory rather than the fake's. Calls and
// WaitFor then see only what is kept; chat.update of a forgotten message
// fails with message_not_found.
func (s *Server) KeepLast(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = max(n, 0)
}

// Close stops the server and drops every Socket Mode connection.
func (s *Server) Close() {
	s.socket.close()
	_ = s.srv.Close()
}

// Connections is how many connections the fake has accepted since it started:
// a client that keeps its connections alive opens few.
func (s *Server) Connections() int64 { return s.conns.Load() }

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

// NewTrigger mints a trigger_id, valid for TriggerTTL and one views.open.
func (s *Server) NewTrigger() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	now := time.Now()
	id := fmt.Sprintf("%d.%d.trigger", s.seq, now.UnixNano())
	// An expired trigger fails views.open whether it is known or not, so it
	// can be forgotten; without this a load run's triggers pile up.
	for len(s.trigFIFO) > 0 && now.Sub(s.trig[s.trigFIFO[0]].issued) > s.TriggerTTL {
		delete(s.trig, s.trigFIFO[0])
		s.trigFIFO = s.trigFIFO[1:]
	}
	s.trig[id] = &trigger{issued: now}
	s.trigFIFO = append(s.trigFIFO, id)
	return id
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Limit rate-limits method as Slack does: at most n calls in each window of
// per; the rest get HTTP 429 with Retry-After (whole seconds) until the window ends.
func (s *Server) Limit(method string, n int, per time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[method] = &window{limit: n, per: per}
}

// SetUser makes users.info (and users.lookupByEmail) serve u.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// SetGroup makes usergroups.list and usergroups.users.list serve a user group.
func (s *Server) SetGroup(id, handle string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.groups {
		if g.id == id {
			s.groups[i] = group{id, handle, members}
			return
		}
	}
	s.groups = append(s.groups, group{id, handle, members})
}

// SetScopes sets the scopes auth.test reports for the bot token
// (X-OAuth-Scopes); none are reported until it is called.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = scopes
}

// RevokeToken makes every Web API call with the bot token fail with
// invalid_auth, as after an uninstall (or undoes it).
func (s *Server) RevokeToken(revoked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = revoked
}

// RemoveBot takes the bot out of a channel (or puts it back): conversations.info
// says so, and chat.postMessage there fails with not_in_channel, as at Slack.
func (s *Server) RemoveBot(channel string, removed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outside == nil {
		s.outside = map[string]bool{}
	}
	s.outside[channel] = removed
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

// Thread returns the replies in a message's thread, oldest first.
func (s *Server) Thread(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		if m.Channel == channel && m.ThreadTS == ts {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TS < out[j].TS })
	return out
}

// Home returns the blocks JSON of the Home tab last published for user.
func (s *Server) Home(user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.homes[user]
	return b, ok
}

type waiter struct {
	match func(Call) bool
	hit   chan Call // gets the matching call; buffered, so record never blocks
}

// WaitFor blocks until match accepts a call (it sees each call once, in order,
// from the oldest kept), or ctx ends. It returns the matching call. match runs
// on the goroutine that records the call and must not call the Server.
//
// WaitFor looks through the whole history once; a loop that runs for long
// should take a Mark before it acts and use WaitFrom, whose cost does not grow
// with the history.
func (s *Server) WaitFor(ctx context.Context, match func(Call) bool) (Call, error) {
	return s.wait(ctx, -1, match)
}

// Mark is the number of calls recorded so far, for WaitFrom.
func (s *Server) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first + len(s.calls)
}

// WaitFrom is WaitFor over the calls from number mark on (see Mark). It fails
// at once if KeepLast has already forgotten some of them.
func (s *Server) WaitFrom(ctx context.Context, mark int, match func(Call) bool) (Call, error) {
	return s.wait(ctx, max(mark, 0), match)
}

// WaitCount blocks until n calls match, and returns them.
func (s *Server) WaitCount(ctx context.Context, n int, match func(Call) bool) ([]Call, error) {
	var got []Call
	_, err := s.WaitFor(ctx, func(c Call) bool {
		if match(c) {
			got = append(got, c)
		}
		return len(got) >= n
	})
	if err != nil {
		return got, fmt.Errorf("slackfake: %d of %d calls: %w", len(got), n, err)
	}
	return got, nil
}

// wait looks through the kept calls from number from (every kept one when
// from < 0), then, holding wmu throughout so that none is missed, registers a
// waiter that record offers each new call to: no wake-ups of waiters whose
// call has not come, and no second look at old calls.
func (s *Server) wait(ctx context.Context, from int, match func(Call) bool) (Call, error) {
	s.wmu.Lock()
	// Only record, under wmu, changes calls and first: no need for mu.
	if from < 0 {
		from = s.first
	}
	if from < s.first {
		s.wmu.Unlock()
		return Call{}, fmt.Errorf("slackfake: calls from %d on were forgotten (kept from %d)", from, s.first)
	}
	for _, c := range s.calls[min(from-s.first, len(s.calls)):] {
		if match(c) {
			s.wmu.Unlock()
			return c, nil
		}
	}
	w := &waiter{match: match, hit: make(chan Call, 1)}
	s.waiters = append(s.waiters, w)
	s.wmu.Unlock()
	select {
	case c := <-w.hit:
		return c, nil
	case <-ctx.Done():
	}
	s.wmu.Lock()
	i := slices.Index(s.waiters, w)
	if i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
	s.wmu.Unlock()
	if i < 0 { // matched while ctx ended
		return <-w.hit, nil
	}
	return Call{}, fmt.Errorf("slackfake: waited in vain: %w", ctx.Err())
}

func (s *Server) record(c Call) {
	c.At = time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	s.calls = append(s.calls, c)
	if s.keep > 0 && len(s.calls) >= 2*s.keep {
		drop := len(s.calls) - s.keep
		s.calls = append([]Call(nil), s.calls[drop:]...)
		s.first += drop
	}
	s.mu.Unlock()
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if w.match(c) {
			w.hit <- c
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

func (s *Server) fault(method, channel string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method == method && f.Times > 0 && (f.Channel == "" || f.Channel == channel) {
			s.faults[i].Times--
			return f, true
		}
	}
	if w, ok := s.limits[method]; ok {
		now := time.Now()
		if now.Sub(w.start) >= w.per {
			w.start, w.n = now, 0
		}
		w.n++
		if w.n > w.limit {
			return Fault{Method: method, Status: http.StatusTooManyRequests, RetryAfter: w.start.Add(w.per).Sub(now)}, true
		}
	}
	return Fault{}, false
}

func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if f, ok := s.fault("response_url", ""); ok {
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
	if method == "apps.connections.open" {
		s.socket.open(w, r, token)
		return
	}
	s.mu.Lock()
	revoked := s.revoked
	s.mu.Unlock()
	if token != s.Token || revoked {
		s.record(Call{Method: method + "!invalid_auth", Params: params, Body: string(body)})
		reply(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	if f, ok := s.fault(method, params.Get("channel")); ok {
		s.record(Call{Method: method + "!fault", Params: params, Body: string(body)})
		if f.Status != 0 {
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
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
		c.Channel, c.ThreadTS = params.Get("channel"), params.Get("thread_ts")
		s.mu.Lock()
		if s.outside[c.Channel] {
			s.mu.Unlock()
			s.record(Call{Method: method + "!not_in_channel", Params: params, Channel: c.Channel})
			reply(map[string]any{"ok": false, "error": "not_in_channel"})
			return
		}
		s.seq++
		c.TS = fmt.Sprintf("1700000000.%06d", s.seq)
		key := c.Channel + "/" + c.TS
		s.msgs[key] = &Message{Channel: c.Channel, TS: c.TS, ThreadTS: c.ThreadTS, Text: params.Get("text"), Blocks: params.Get("blocks")}
		if s.keep > 0 {
			s.msgOrder = append(s.msgOrder, key)
			for len(s.msgOrder) > s.keep {
				delete(s.msgs, s.msgOrder[0])
				s.msgOrder = s.msgOrder[1:]
			}
		}
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
		u, ok := s.user(params.Get("user"))
		if !ok {
			reply(map[string]any{"ok": false, "error": "user_not_found"})
			return
		}
		reply(map[string]any{"ok": true, "user": u.json()})
	case "users.lookupByEmail":
		s.record(c)
		email := strings.ToLower(params.Get("email"))
		s.mu.Lock()
		var found *User
		for _, u := range s.users {
			if strings.EqualFold(u.Email, email) {
				found = &u
				break
			}
		}
		s.mu.Unlock()
		if found == nil {
			reply(map[string]any{"ok": false, "error": "users_not_found"})
			return
		}
		reply(map[string]any{"ok": true, "user": found.json()})
	case "usergroups.list":
		s.record(c)
		s.mu.Lock()
		gs := []map[string]any{}
		for _, g := range s.groups {
			gs = append(gs, map[string]any{"id": g.id, "handle": g.handle, "name": g.handle, "team_id": DefaultTeam, "is_usergroup": true, "user_count": len(g.members)})
		}
		s.mu.Unlock()
		reply(map[string]any{"ok": true, "usergroups": gs})
	case "usergroups.users.list":
		s.record(c)
		id := params.Get("usergroup")
		s.mu.Lock()
		var members []string
		found := false
		for _, g := range s.groups {
			if g.id == id {
				members, found = append([]string{}, g.members...), true
			}
		}
		s.mu.Unlock()
		if !found {
			reply(map[string]any{"ok": false, "error": "no_such_subteam"})
			return
		}
		reply(map[string]any{"ok": true, "users": members})
	case "conversations.info":
		c.Channel = params.Get("channel")
		s.record(c)
		s.mu.Lock()
		member := !s.outside[c.Channel]
		s.mu.Unlock()
		reply(map[string]any{"ok": true, "channel": map[string]any{"id": c.Channel, "name": "chan-" + strings.ToLower(c.Channel), "is_member": member}})
	case "auth.test":
		s.record(c)
		s.mu.Lock()
		if len(s.scopes) > 0 {
			w.Header().Set("X-OAuth-Scopes", strings.Join(s.scopes, ","))
		}
		s.mu.Unlock()
		reply(map[string]any{"ok": true, "user_id": "U0CREDBOT", "team_id": DefaultTeam, "bot_id": "B0CREDBOT"})
	case "views.open":
		s.viewsOpen(c, reply)
	case "views.publish":
		var req struct {
			UserID string          `json:"user_id"`
			View   json.RawMessage `json:"view"`
		}
		_ = json.Unmarshal(body, &req)
		var v struct {
			Type   string          `json:"type"`
			Blocks json.RawMessage `json:"blocks"`
		}
		_ = json.Unmarshal(req.View, &v)
		c.User = req.UserID
		s.mu.Lock()
		s.homes[req.UserID] = string(v.Blocks)
		s.mu.Unlock()
		s.record(c)
		reply(map[string]any{"ok": true, "view": map[string]any{"id": "VHOME" + req.UserID, "type": v.Type}})
	case "views.update", "views.push":
		s.record(c)
		reply(map[string]any{"ok": true, "view": map[string]any{"id": "V0001"}})
	default:
		s.record(c)
		reply(map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// viewsOpen opens a modal if the trigger is fresh and unused, as Slack does.
func (s *Server) viewsOpen(c Call, reply func(map[string]any)) {
	var req struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	_ = json.Unmarshal([]byte(c.Body), &req)
	s.mu.Lock()
	t, ok := s.trig[req.TriggerID]
	var fail string
	switch {
	case !ok, time.Since(t.issued) > s.TriggerTTL:
		fail = "expired_trigger_id"
	case t.used:
		fail = "exchanged_trigger_id"
	default:
		t.used = true
		s.seq++
		c.TS = "V" + strconv.Itoa(s.seq) // the view id
		s.views[c.TS] = string(req.View)
	}
	s.mu.Unlock()
	if fail != "" {
		c.Method += "!" + fail
		s.record(c)
		reply(map[string]any{"ok": false, "error": fail})
		return
	}
	s.record(c)
	reply(map[string]any{"ok": true, "view": map[string]any{"id": c.TS, "type": "modal"}})
}

func (s *Server) user(id string) (User, bool) {
	if !strings.HasPrefix(id, "U") && !strings.HasPrefix(id, "W") {
		return User{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		u = User{ID: id, Name: strings.ToLower(id), Team: DefaultTeam, Email: strings.ToLower(id) + "@example.com"}
	}
	return u, true
}

func (u User) json() map[string]any {
	m := map[string]any{
		"id": u.ID, "name": u.Name, "real_name": u.Name, "team_id": u.Team, "deleted": u.Deleted, "is_bot": u.Bot,
		"is_restricted": u.Restricted, "is_ultra_restricted": u.UltraRestricted, "is_stranger": u.Stranger,
		"profile": map[string]any{"email": u.Email, "display_name": u.Name, "real_name": u.Name},
	}
	if u.Enterprise != "" {
		m["enterprise_user"] = map[string]any{"id": u.ID, "enterprise_id": u.Enterprise, "teams": []string{u.Team}}
	}
	return m
}
