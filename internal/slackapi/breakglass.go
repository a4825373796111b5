package slackapi

import (
	"context"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// ReviewerSource names who may review a break-glass in a scope. Implemented
// by *policy.Engine.
type ReviewerSource interface {
	Reviewers(ctx context.Context, scope approval.Scope) ([]string, error)
}

// reviewerMentions renders who may review r, minus its requester.
func (n *Notifier) reviewerMentions(ctx context.Context, r *approval.Request) string {
	rs, ok := n.approvers.(ReviewerSource)
	if !ok || rs == nil {
		return ""
	}
	names, err := rs.Reviewers(ctx, r.Scope)
	if err != nil {
		n.log.WarnContext(ctx, "list reviewers", "request_id", r.ID, "error", err)
		return ""
	}
	return n.mentionList(ctx, names, r.Requester)
}

// breakglassTargets are where a break-glass alert goes: the break-glass
// channel, and the escalation target (a channel, or a user's DM) if it is
// another place.
func (n *Notifier) breakglassTargets(ctx context.Context) ([]string, error) {
	out := []string{n.breakglassChannel()}
	if t := n.breakglassEscalation; t != "" && t != out[0] {
		ch, err := n.target(ctx, t)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

func (n *Notifier) breakglassChannel() string {
	if n.breakglass != "" {
		return n.breakglass
	}
	return n.approvalChannel
}

// target resolves a channel id as itself and a user id to their DM.
func (n *Notifier) target(ctx context.Context, t string) (string, error) {
	if IsSlackID(t, 'U') || IsSlackID(t, 'W') {
		return n.api.DM(ctx, t)
	}
	return t, nil
}

// AlertBreakglass implements approval.Notifier.
func (n *Notifier) AlertBreakglass(ctx context.Context, r *approval.Request) ([]approval.MessageRef, error) {
	targets, err := n.breakglassTargets(ctx)
	if err != nil {
		return nil, err
	}
	m := n.reviewerMentions(ctx, r)
	var refs []approval.MessageRef
	for _, ch := range targets {
		c, ts, err := n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(blockkit.BreakglassFallback(r), blockkit.MaxFallbackText), false),
			slack.MsgOptionBlocks(blockkit.BreakglassBlocks(r, m, 0)...))
		if err != nil {
			if len(refs) > 0 {
				n.log.WarnContext(ctx, "post break-glass alert to the escalation target", "request_id", r.ID, "channel", ch, "error", err)
				break // the channel has it; escalations go to the target again
			}
			return nil, err
		}
		refs = append(refs, approval.MessageRef{Channel: c, TS: ts})
	}
	return refs, nil
}

// UpdateBreakglass implements approval.Notifier.
func (n *Notifier) UpdateBreakglass(ctx context.Context, r *approval.Request) error {
	var first error
	var m string
	if r.AckedBy == "" && !r.State.Terminal() {
		m = n.reviewerMentions(ctx, r) // still waiting for them
	}
	for _, ref := range r.Alerts {
		err := n.api.UpdateMessage(ctx, ref.Channel, ref.TS, slack.MsgOptionText(blockkit.Truncate(blockkit.BreakglassFallback(r), blockkit.MaxFallbackText), false),
			slack.MsgOptionBlocks(blockkit.BreakglassBlocks(r, m, 0)...))
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// EscalateBreakglass implements approval.Notifier: a fresh alert, with the
// buttons, to the escalation target (or the break-glass channel, broadcast
// from the alert's thread when there is no other target).
func (n *Notifier) EscalateBreakglass(ctx context.Context, r *approval.Request) error {
	m := n.reviewerMentions(ctx, r)
	opts := []slack.MsgOption{slack.MsgOptionText(blockkit.Truncate(blockkit.BreakglassFallback(r)+" — not acknowledged", blockkit.MaxFallbackText), false),
		slack.MsgOptionBlocks(blockkit.BreakglassBlocks(r, m, r.Escalations)...)}
	ch := n.breakglassChannel()
	if n.breakglassEscalation != "" && n.breakglassEscalation != ch {
		var err error
		if ch, err = n.target(ctx, n.breakglassEscalation); err != nil {
			return err
		}
	} else if len(r.Alerts) > 0 {
		opts = append(opts, slack.MsgOptionTS(r.Alerts[0].TS), slack.MsgOptionBroadcast())
	}
	_, _, err := n.api.PostMessage(ctx, ch, opts...)
	return err
}
