package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/slack-go/slack"
)

// auditMirror posts audit entries to a Slack channel, off the path of the
// transitions: entries queue in a buffer and one goroutine posts them. The
// Redis stream is the record; a full buffer drops mirror posts (and says so in
// the log), never transitions.
type auditMirror struct {
	api     *handlers.WebAPI
	channel string
	log     *slog.Logger
	queue   chan approval.AuditEntry
}

func newAuditMirror(api *handlers.WebAPI, channel string, log *slog.Logger) *auditMirror {
	return &auditMirror{api: api, channel: channel, log: log, queue: make(chan approval.AuditEntry, 1024)}
}

// add is the approval.Config.AuditMirror hook.
func (m *auditMirror) add(e approval.AuditEntry) {
	select {
	case m.queue <- e:
	default:
		m.log.Warn("audit mirror queue full; entry kept in Redis only", "request", e.RequestID, "to", e.To)
	}
}

func (m *auditMirror) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-m.queue:
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if _, _, err := m.api.PostMessage(pctx, m.channel, slack.MsgOptionText(auditLine(e), false)); err != nil {
				m.log.Warn("audit mirror", "request", e.RequestID, "err", err)
			}
			cancel()
		}
	}
}

// auditLine renders an entry for people; user-supplied text never reaches it
// (actors are Slack ids or credbot's own roles, notes are credbot's own words).
func auditLine(e approval.AuditEntry) string {
	actor := e.Actor
	if strings.HasPrefix(actor, "U") || strings.HasPrefix(actor, "W") {
		actor = "<@" + actor + ">"
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

func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
}
