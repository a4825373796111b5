package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/slack-go/slack"
)

// auditMirror posts audit entries to a Slack channel, off the path of the
// transitions: entries queue in a buffer and one goroutine posts them. The
// Redis stream is the record; a full buffer drops mirror posts (and says so in
// the log), never transitions.
type auditMirror struct {
	api     *slackapi.WebAPI
	channel string
	log     *slog.Logger
	queue   chan approval.AuditEntry
	every   time.Duration // the least time between two posts (mirrorEvery)
}

func newAuditMirror(api *slackapi.WebAPI, channel string, log *slog.Logger) *auditMirror {
	return &auditMirror{api: api, channel: channel, log: log, queue: make(chan approval.AuditEntry, 1024), every: mirrorEvery}
}

// add is the approval.Config.AuditMirror hook.
func (m *auditMirror) add(e approval.AuditEntry) {
	select {
	case m.queue <- e:
	default:
		m.log.Warn("audit mirror queue full; entry kept in Redis only", "request_id", e.RequestID, "to", e.To)
	}
}

// mirrorBatch bounds one audit channel message: entries that queued while the
// last one was posted go together, up to this many characters. Slack allows
// about one message a second per channel, so one post per entry would fall
// behind any burst (and cost a Web API call per transition).
const mirrorBatch = 3500

// mirrorEvery is the least time between two audit channel messages: Slack
// allows about one message a second per channel, and entries that come
// meanwhile go together in the next one. Posting back to back, a request's
// seven or so entries took as many messages, a quarter of all of a flow's
// Slack calls, and a busy minute ran into Slack's limit.
const mirrorEvery = time.Second

func (m *auditMirror) run(ctx context.Context) {
	var last time.Time
	for {
		var e approval.AuditEntry
		select {
		case <-ctx.Done():
			return
		case e = <-m.queue:
		}
		if wait := m.every - time.Since(last); wait > 0 && !sleep(ctx, wait) {
			return
		}
		lines, n := []string{auditLine(e)}, len(auditLine(e))
	more:
		for n < mirrorBatch {
			select {
			case next := <-m.queue:
				l := auditLine(next)
				lines, n = append(lines, l), n+len(l)+1
			default:
				break more
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if _, _, err := m.api.PostMessage(pctx, m.channel, slack.MsgOptionText(strings.Join(lines, "\n"), false)); err != nil {
			m.log.Warn("audit mirror", "entries", len(lines), "first_request_id", e.RequestID, "error", err)
		}
		cancel()
		last = time.Now()
	}
}

// auditLine renders an entry for people; user-supplied text never reaches it
// (actors are Slack ids or credbot's own roles, notes are credbot's own words).
func auditLine(e approval.AuditEntry) string {
	actor := e.Actor
	if strings.HasPrefix(actor, "U") || strings.HasPrefix(actor, "W") {
		actor = "<@" + actor + ">"
	}
	if e.Event != "" {
		// An entry that changes no request: a refusal, a lookup, a policy load.
		line := fmt.Sprintf("%s by %s", e.Event, actor)
		if e.Action != "" && string(e.Action) != e.Event {
			line += ": " + string(e.Action)
		}
		for _, part := range []string{e.RequestID, e.Scope, e.Name} {
			if part != "" {
				line += " `" + escapeText(part) + "`"
			}
		}
		if e.Result != "" {
			line += " — " + escapeText(e.Result)
		}
		if e.Rule != "" {
			line += fmt.Sprintf(" (rule `%s`)", escapeText(e.Rule))
		}
		return line
	}
	from := string(e.From)
	if from == "" {
		from = "new"
	}
	line := fmt.Sprintf("`%s` %s → %s by %s", e.RequestID, from, e.To, actor)
	if e.Note != "" {
		line += ": " + escapeText(e.Note)
	}
	if e.Rule != "" {
		line += fmt.Sprintf(" (rule `%s`", escapeText(e.Rule))
		if len(e.PolicyHash) >= 12 {
			line += ", policy " + e.PolicyHash[:12]
		}
		line += ")"
	}
	return line
}

// textEscaper never changes after it is built.
var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "'")

func escapeText(s string) string { return textEscaper.Replace(s) }

// sleep waits for d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
