package handlers

import (
	"context"
	"fmt"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// ReviewerSource names who may review a break-glass in a scope. Implemented
// by *policy.Engine.
type ReviewerSource interface {
	Reviewers(ctx context.Context, scope approval.Scope) ([]string, error)
}

// breakglassFallback is the notification text of a break-glass alert.
func breakglassFallback(r *approval.Request) string {
	return fmt.Sprintf("BREAK-GLASS %s: %s in %s by %s (%s)", r.ID, r.Name, scopeLabel(r.Scope), r.Requester, strings.ToLower(string(r.State)))
}

// breakglassBlocks renders a break-glass alert: who, what, why, until when,
// and, while it is live and unreviewed, Acknowledge and Revoke now. User
// text goes only into plain_text, as in approval messages.
func breakglassBlocks(r *approval.Request, mentions string, escalation int) []slack.Block {
	expires := "at most " + lifetime(r.Lifetime) + " after it is created"
	if !r.ExpiresAt.IsZero() {
		expires = when(r.ExpiresAt)
	}
	head := fmt.Sprintf(":rotating_light: *Break-glass* `%s`: <@%s> took an API credential *without approval*.", r.ID, r.Requester)
	if escalation > 0 {
		head = fmt.Sprintf(":rotating_light: *Break-glass* `%s` by <@%s> is still *not acknowledged* (escalation %d).", r.ID, r.Requester, escalation)
	}
	fields := []*slack.TextBlockObject{
		plain("Scope: " + scopeLabel(r.Scope)),
		plain("Name: " + r.Name),
		plain("Access: " + accessLabel(r.ReadOnly)),
		plain("Issued: " + when(r.CreatedAt)),
		plain("Expires: " + expires),
		plain("Reason: " + r.Reason),
	}
	blocks := []slack.Block{section(head), slack.NewSectionBlock(nil, fields, nil)}
	live := !r.State.Terminal()
	if live && r.AckedBy == "" && mentions != "" {
		blocks = append(blocks, section("Reviewers: "+mentions))
	}
	blocks = append(blocks, note(breakglassStatus(r)))
	if live && r.RevokedBy == "" {
		var buttons []slack.BlockElement
		if r.AckedBy == "" {
			buttons = append(buttons, button(ActionAcknowledge, r.ID, "Acknowledge").WithStyle(slack.StylePrimary))
		}
		buttons = append(buttons, button(ActionRevokeNow, r.ID, "Revoke now").WithStyle(slack.StyleDanger).
			WithConfirm(confirm("Revoke "+r.Name+" now?", "It is deleted at BTP at once, and whatever uses it stops working. The user is told.", "Revoke", "Keep it", true)))
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("review:%s:%d", r.ID, r.Version), buttons...))
	}
	return blocks
}

func breakglassStatus(r *approval.Request) string {
	var s string
	switch {
	case r.RevokedBy != "" && r.State == approval.StateRevoked:
		s = fmt.Sprintf(":no_entry: Revoked by <@%s>; deleted at BTP.", r.RevokedBy)
	case r.RevokedBy != "":
		s = fmt.Sprintf(":hourglass: Revoke requested by <@%s>; deleting at BTP.", r.RevokedBy)
	case r.State.Terminal():
		s = fmt.Sprintf("Ended: %s.", strings.ToLower(string(r.State)))
		if r.Failure != "" {
			s += " " + escape(r.Failure)
		}
	case r.State == approval.StateDelivered:
		s = ":key: Issued and revealed to the user."
	case r.State == approval.StateIssued:
		s = ":key: Issued; waiting for the user to reveal it."
	default:
		s = ":hourglass: Being created at BTP."
	}
	if r.AckedBy != "" {
		s += fmt.Sprintf(" :white_check_mark: Acknowledged by <@%s> at %s.", r.AckedBy, when(r.AckedAt))
	} else if !r.State.Terminal() {
		s += fmt.Sprintf(" Not acknowledged yet: escalates %s.", when(r.ReviewAt))
	}
	return s
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
	var out []string
	for _, s := range names {
		if s == r.Requester {
			continue
		}
		if len(out) == maxMentions {
			out = append(out, fmt.Sprintf("and %d more", len(names)-maxMentions))
			break
		}
		out = append(out, n.mention(ctx, s))
	}
	return strings.Join(out, ", ")
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
	if isSlackID(t, 'U') || isSlackID(t, 'W') {
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
		c, ts, err := n.api.PostMessage(ctx, ch, slack.MsgOptionText(truncate(breakglassFallback(r), maxFallbackText), false),
			slack.MsgOptionBlocks(breakglassBlocks(r, m, 0)...))
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
		err := n.api.UpdateMessage(ctx, ref.Channel, ref.TS, slack.MsgOptionText(truncate(breakglassFallback(r), maxFallbackText), false),
			slack.MsgOptionBlocks(breakglassBlocks(r, m, 0)...))
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
	opts := []slack.MsgOption{slack.MsgOptionText(truncate(breakglassFallback(r)+" — not acknowledged", maxFallbackText), false),
		slack.MsgOptionBlocks(breakglassBlocks(r, m, r.Escalations)...)}
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
