package handlers

import (
	"context"
	"fmt"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// Remind implements approval.Notifier: a reply in the approval message's thread,
// and, when escalating, a note in the escalation channel if one is configured.
func (n *Notifier) Remind(ctx context.Context, r *approval.Request, q approval.QuorumStatus, escalate bool) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	text := fmt.Sprintf(":bell: Request %s from <@%s> is still waiting for approval (%d of %d). It expires at <!date^%d^{date_short_pretty} {time}|%s>.",
		r.ID, r.Requester, q.Have, max(q.Need, 1), r.PendingUntil.Unix(), r.PendingUntil.UTC().Format("2006-01-02 15:04 MST"))
	if _, _, err := n.api.PostMessageContext(ctx, r.ApprovalChannel, slack.MsgOptionText(text, false), slack.MsgOptionTS(r.ApprovalTS)); err != nil {
		return fmt.Errorf("chat.postMessage: %w", err)
	}
	if escalate && n.escalationChannel != "" {
		link := fmt.Sprintf("Request %s (%s in %s) has waited through %d reminders without a decision.", r.ID, escape(r.Name), escape(scopeLabel(r.Scope)), r.Reminders)
		if _, _, err := n.api.PostMessageContext(ctx, n.escalationChannel, slack.MsgOptionText(":rotating_light: "+link, false)); err != nil {
			return fmt.Errorf("chat.postMessage: %w", err)
		}
	}
	return nil
}

// WithEscalation makes reminders escalate to channel.
func (n *Notifier) WithEscalation(channel string) *Notifier {
	n.escalationChannel = channel
	return n
}
