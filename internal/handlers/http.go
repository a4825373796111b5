package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

// Handler routes Slack's Request URLs (HTTP mode) and the probes. Without a
// signing secret only the probes are served.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.SigningSecret != "" {
		mux.HandleFunc("POST /slack/commands", s.signed("command", s.httpCommand))
		mux.HandleFunc("POST /slack/interactivity", s.signed("interaction", s.httpInteraction))
		mux.HandleFunc("POST /slack/events", s.signed("event", s.httpEvent))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	return mux
}

// ready is /readyz: 200 when the replica can take work, else 503, with a
// JSON report of what works and what does not, and how to fix it.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	var ready bool
	var report any = map[string]any{"ready": true}
	switch {
	case s.isDraining():
		report = map[string]any{"ready": false, "reason": "draining: this replica got SIGTERM and is finishing its work"}
	case s.cfg.Ready != nil:
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		ready, report = s.cfg.Ready(ctx)
	default:
		ready = true
	}
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(b, '\n'))
}

// signed verifies Slack's signature over the raw body before anything parses
// it, and times the answer (Config.ObserveAck).
func (s *Server) signed(kind string, next func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ObserveAck != nil {
			start, sw := time.Now(), &statusWriter{ResponseWriter: w, status: http.StatusOK}
			defer func() { s.cfg.ObserveAck(kind, sw.status, time.Since(start)) }()
			w = sw
		}
		body, status, err := s.verify.read(w, r)
		if err != nil {
			s.log.WarnContext(r.Context(), "rejected slack request", "path", r.URL.Path, "status", status, "error", err, "remote", r.RemoteAddr)
			http.Error(w, http.StatusText(status), status)
			return
		}
		next(w, r, body)
	}
}

// statusWriter notes the status of the answer it passes on.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (s *Server) httpCommand(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if form.Get("ssl_check") == "1" {
		return
	}
	cmd := slack.SlashCommand{
		TeamID: form.Get("team_id"), TeamDomain: form.Get("team_domain"), EnterpriseID: form.Get("enterprise_id"),
		IsEnterpriseInstall: form.Get("is_enterprise_install") == "true",
		ChannelID:           form.Get("channel_id"), UserID: form.Get("user_id"), Command: form.Get("command"),
		Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
		APIAppID: form.Get("api_app_id"),
	}
	writeAck(w, s.HandleCommand(r.Context(), cmd))
}

func (s *Server) httpInteraction(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	writeAck(w, s.HandleInteraction(r.Context(), cb))
}

func (s *Server) httpEvent(w http.ResponseWriter, r *http.Request, body []byte) {
	var env struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if env.Type == slackevents.URLVerification {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(env.Challenge))
		return
	}
	// The signature was checked above; Slack's verification token is deprecated.
	ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
	if err != nil {
		// Answer 200 anyway: a retry of an event we cannot parse cannot help.
		s.log.WarnContext(r.Context(), "unparsable event", "error", err)
		return
	}
	writeAck(w, s.HandleEvent(r.Context(), ev))
}

// writeAck writes an ack payload as the HTTP answer; nil is an empty 200.
// Work that could not be recorded is never answered with a 200 that promises
// it: a slash command gets its explanation, anything else a 503 (Slack shows
// the clicker an error, and retries an event).
func writeAck(w http.ResponseWriter, payload any) {
	if u, ok := payload.(unrecordedAck); ok {
		if u.payload == nil {
			http.Error(w, Unrecorded, http.StatusServiceUnavailable)
			return
		}
		payload = u.payload
	}
	if payload == nil {
		return
	}
	b, err := json.Marshal(payload)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
