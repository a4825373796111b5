package slackfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Person is a simulated Slack user who talks to the bot.
type Person struct {
	ID   string
	Name string
}

// Workspace sends requests from people to the bot, as Slack would: signed
// HTTP posts to the bot's Request URLs, or, with Socket set, envelopes over the
// bot's Socket Mode connections.
type Workspace struct {
	Slack         *Server
	BotURL        string // base URL of the bot, e.g. http://127.0.0.1:3000
	SigningSecret string
	Team          string
	Command       string // e.g. /credbot
	Sign          func(secret, ts string, body []byte) string
	HTTP          *http.Client
	Socket        bool
	// Responses stands in for Slack when Slack is nil (a sender in a
	// process of its own): response_urls point under it, the fake's
	// "http://host:port/response/", and trigger ids are made up, fit for
	// the bot's dedupe but not for views.open.
	Responses string
}

// remoteSeq numbers the response_urls of senders without a Slack (with the
// process id: several such senders may report to one fake).
var remoteSeq atomic.Int64

// newResponse returns a response_url and a trigger_id for one request.
func (w *Workspace) newResponse() (responseURL, trigger string) {
	if w.Slack != nil {
		return w.Slack.NewResponseURL(), w.Slack.NewTrigger()
	}
	n := remoteSeq.Add(1)
	return fmt.Sprintf("%sremote-%d-%d", w.Responses, os.Getpid(), n), fmt.Sprintf("%d.%d.trigger", n, time.Now().UnixNano())
}

// Ack is the bot's immediate answer to a request.
type Ack struct {
	Status      int
	Body        string        // the HTTP body, or the Socket Mode ack's payload
	ResponseURL string        // where the bot's later replies land
	Trigger     string        // the trigger_id sent along
	Latency     time.Duration // from sending to the ack
}

// Slash sends a slash command typed by p.
func (w *Workspace) Slash(ctx context.Context, p Person, text string) (Ack, error) {
	ru, trig := w.newResponse()
	form := url.Values{
		"token": {"deprecated"}, "team_id": {w.Team}, "team_domain": {"local"}, "channel_id": {"C0GENERAL"},
		"channel_name": {"general"}, "user_id": {p.ID}, "user_name": {p.Name}, "command": {w.Command},
		"text": {text}, "api_app_id": {"A0CREDBOT"}, "response_url": {ru}, "trigger_id": {trig},
		"is_enterprise_install": {"false"},
	}
	var ack Ack
	var err error
	if w.Socket {
		payload := map[string]any{}
		for k, v := range form {
			payload[k] = v[0]
		}
		payload["is_enterprise_install"] = false
		ack, err = w.envelope(ctx, "slash_commands", payload)
	} else {
		ack, err = w.post(ctx, "/slack/commands", "application/x-www-form-urlencoded", []byte(form.Encode()))
	}
	ack.ResponseURL, ack.Trigger = ru, trig
	return ack, err
}

// Click presses the button actionID on message m as p.
func (w *Workspace) Click(ctx context.Context, p Person, m Message, actionID string) (Ack, error) {
	return w.ClickValue(ctx, p, m, actionID, "")
}

// ClickValue presses the button actionID whose value is value ("" for the
// first such button) on message m as p.
func (w *Workspace) ClickValue(ctx context.Context, p Person, m Message, actionID, value string) (Ack, error) {
	b, err := FindButtonValue(m.Blocks, actionID, value)
	if err != nil {
		return Ack{}, err
	}
	ru := w.Slack.NewResponseURL()
	payload := w.action(p, b)
	payload["container"] = map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": m.TS == ""}
	payload["channel"] = map[string]any{"id": m.Channel}
	payload["message"] = map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
	payload["response_url"] = ru
	ack, err := w.interact(ctx, payload)
	ack.ResponseURL = ru
	ack.Trigger, _ = payload["trigger_id"].(string) // e.g. for a views.open the click asks for
	return ack, err
}

// ClickHome presses the button actionID with value ("" for the first) on p's
// App Home tab, as last published. Slack sends no response_url from there.
func (w *Workspace) ClickHome(ctx context.Context, p Person, actionID, value string) (Ack, error) {
	blocks, ok := w.Slack.Home(p.ID)
	if !ok {
		return Ack{}, fmt.Errorf("slackfake: no Home tab published for %s", p.ID)
	}
	b, err := FindButtonValue(blocks, actionID, value)
	if err != nil {
		return Ack{}, err
	}
	payload := w.action(p, b)
	payload["container"] = map[string]any{"type": "view", "view_id": "VHOME" + p.ID}
	payload["view"] = map[string]any{"id": "VHOME" + p.ID, "type": "home", "hash": "1.home"}
	return w.interact(ctx, payload)
}

func (w *Workspace) action(p Person, b Button) map[string]any {
	return map[string]any{
		"type": "block_actions", "team": map[string]any{"id": w.Team, "domain": "local"},
		"user":       map[string]any{"id": p.ID, "username": p.Name, "name": p.Name, "team_id": w.Team},
		"api_app_id": "A0CREDBOT", "token": "deprecated", "trigger_id": w.Slack.NewTrigger(),
		"actions": []map[string]any{{"type": "button", "action_id": b.ActionID, "block_id": b.BlockID, "value": b.Value,
			"action_ts": strconv.FormatInt(time.Now().Unix(), 10) + ".000001"}},
	}
}

// SubmitView submits the modal viewID (as the bot opened it) as p, with
// values by input block id; each goes into the block's element the way Slack
// reports that element type.
func (w *Workspace) SubmitView(ctx context.Context, p Person, viewID string, values map[string]string) (Ack, error) {
	w.Slack.mu.Lock()
	raw, ok := w.Slack.views[viewID]
	w.Slack.mu.Unlock()
	if !ok {
		return Ack{}, fmt.Errorf("slackfake: no view %s was opened", viewID)
	}
	var v struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
		Blocks          []struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
			Element struct {
				Type     string `json:"type"`
				ActionID string `json:"action_id"`
			} `json:"element"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return Ack{}, fmt.Errorf("slackfake: view %s: %w", viewID, err)
	}
	state := map[string]any{}
	for _, b := range v.Blocks {
		if b.Type != "input" {
			continue
		}
		val, given := values[b.BlockID]
		var el map[string]any
		switch b.Element.Type {
		case "static_select", "radio_buttons":
			el = map[string]any{"type": b.Element.Type, "selected_option": nil}
			if given && val != "" {
				el["selected_option"] = map[string]any{"value": val, "text": map[string]any{"type": "plain_text", "text": val}}
			}
		default:
			el = map[string]any{"type": b.Element.Type, "value": nil}
			if given {
				el["value"] = val
			}
		}
		state[b.BlockID] = map[string]any{b.Element.ActionID: el}
	}
	payload := map[string]any{
		"type": "view_submission", "team": map[string]any{"id": w.Team, "domain": "local"},
		"user":       map[string]any{"id": p.ID, "username": p.Name, "name": p.Name, "team_id": w.Team},
		"api_app_id": "A0CREDBOT", "token": "deprecated", "trigger_id": w.Slack.NewTrigger(),
		"view": map[string]any{"id": viewID, "type": "modal", "callback_id": v.CallbackID, "private_metadata": v.PrivateMetadata,
			"hash": "1.view", "state": map[string]any{"values": state}},
		"response_urls": []any{},
	}
	return w.interact(ctx, payload)
}

// OpenHome opens the bot's App Home tab as p (the app_home_opened event).
func (w *Workspace) OpenHome(ctx context.Context, p Person) (Ack, error) {
	ev := map[string]any{
		"token": "deprecated", "team_id": w.Team, "api_app_id": "A0CREDBOT", "type": "event_callback",
		"event_id": "Ev" + strconv.FormatInt(time.Now().UnixNano(), 36), "event_time": time.Now().Unix(),
		"event": map[string]any{"type": "app_home_opened", "user": p.ID, "channel": "D" + p.ID[1:], "tab": "home",
			"event_ts": strconv.FormatInt(time.Now().Unix(), 10) + ".000100"},
	}
	if w.Socket {
		return w.envelope(ctx, "events_api", ev)
	}
	body, _ := json.Marshal(ev)
	return w.post(ctx, "/slack/events", "application/json", body)
}

func (w *Workspace) interact(ctx context.Context, payload map[string]any) (Ack, error) {
	if w.Socket {
		return w.envelope(ctx, "interactive", payload)
	}
	raw, _ := json.Marshal(payload)
	return w.post(ctx, "/slack/interactivity", "application/x-www-form-urlencoded", []byte(url.Values{"payload": {string(raw)}}.Encode()))
}

func (w *Workspace) envelope(ctx context.Context, typ string, payload any) (Ack, error) {
	start := time.Now()
	a, err := w.Slack.Envelope(ctx, typ, payload)
	if err != nil {
		return Ack{}, err
	}
	body := string(a)
	if body == "null" {
		body = ""
	}
	return Ack{Status: http.StatusOK, Body: body, Latency: time.Since(start)}, nil
}

// Post sends a raw form body to path, signed now, as Slack would.
func (w *Workspace) Post(ctx context.Context, path string, body []byte) (Ack, error) {
	return w.post(ctx, path, "application/x-www-form-urlencoded", body)
}

func (w *Workspace) post(ctx context.Context, path, contentType string, body []byte) (Ack, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BotURL+path, bytes.NewReader(body))
	if err != nil {
		return Ack{}, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", w.Sign(w.SigningSecret, ts, body))
	hc := w.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return Ack{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Ack{Status: resp.StatusCode, Body: string(b), Latency: time.Since(start)}, nil
}

// Button is one button found in Block Kit JSON.
type Button struct {
	ActionID, BlockID, Value, Text string
	Confirm                        bool // behind a confirm dialog
	Style                          string
}

// Buttons lists every button in blocks JSON: in actions blocks and as section
// accessories.
func Buttons(blocks string) ([]Button, error) {
	type el struct {
		Type     string          `json:"type"`
		ActionID string          `json:"action_id"`
		Value    string          `json:"value"`
		Style    string          `json:"style"`
		Text     json.RawMessage `json:"text"` // a text object on buttons, a string on context elements
		Confirm  json.RawMessage `json:"confirm"`
	}
	var bs []struct {
		BlockID   string `json:"block_id"`
		Elements  []el   `json:"elements"`
		Accessory *el    `json:"accessory"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		return nil, fmt.Errorf("slackfake: blocks: %w", err)
	}
	var out []Button
	for _, b := range bs {
		els := b.Elements
		if b.Accessory != nil {
			els = append(els, *b.Accessory)
		}
		for _, e := range els {
			if e.Type == "button" {
				var t struct {
					Text string `json:"text"`
				}
				_ = json.Unmarshal(e.Text, &t)
				out = append(out, Button{ActionID: e.ActionID, BlockID: b.BlockID, Value: e.Value, Text: t.Text,
					Confirm: len(e.Confirm) > 0 && string(e.Confirm) != "null", Style: e.Style})
			}
		}
	}
	return out, nil
}

// FindButtonValue returns the button actionID with the given value ("" for
// the first).
func FindButtonValue(blocks, actionID, value string) (Button, error) {
	bs, err := Buttons(blocks)
	if err != nil {
		return Button{}, err
	}
	for _, b := range bs {
		if b.ActionID == actionID && (value == "" || b.Value == value) {
			return b, nil
		}
	}
	return Button{}, fmt.Errorf("slackfake: no button %q (value %q) in message", actionID, value)
}

// FindButton returns the value and block id of the button actionID in blocks JSON.
func FindButton(blocks, actionID string) (value, blockID string, err error) {
	b, err := FindButtonValue(blocks, actionID, "")
	return b.Value, b.BlockID, err
}

// Reply turns a response_url call into a Message that can be clicked on (an
// ephemeral reply has no channel or ts).
func Reply(c Call) Message {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal([]byte(c.Body), &m)
	return Message{Text: m.Text, Blocks: string(m.Blocks)}
}
