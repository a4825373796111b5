package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// ApproverSource names who may approve in a scope (policy subjects: user ids,
// email:…, group:…). Implemented by *policy.Engine.
type ApproverSource interface {
	Approvers(ctx context.Context, scope approval.Scope) ([]string, error)
}

// maxMentions caps how many approvers one message mentions.
const maxMentions = 15

// Notifier is the Slack Web API side of approval.Notifier. Every call goes
// through WebAPI, so a 429 delays the message instead of losing it.
type Notifier struct {
	api             *WebAPI
	approvalChannel string
	escalation      string         // channel told about escalated requests; "" broadcasts in the approval channel
	approvers       ApproverSource // nil: mention nobody
	dir             *Directory     // nil: mention user ids only
	log             *slog.Logger
}

var _ approval.Notifier = (*Notifier)(nil)

// NotifierOptions are the optional parts of a Notifier.
type NotifierOptions struct {
	// Approvers lets approval messages and reminders mention exactly the people
	// the policy routes a request to.
	Approvers ApproverSource
	// Directory resolves group handles and emails to mentions, and user ids to
	// names where a mention would ping someone needlessly.
	Directory *Directory
	// EscalationChannel is told about requests that waited through every
	// reminder; empty: the escalated reminder is also shown in the approval channel.
	EscalationChannel string
	Logger            *slog.Logger
}

// NewNotifier posts approval requests to approvalChannel through api.
func NewNotifier(api *WebAPI, approvalChannel string, opts NotifierOptions) *Notifier {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{api: api, approvalChannel: approvalChannel, escalation: opts.EscalationChannel,
		approvers: opts.Approvers, dir: opts.Directory, log: opts.Logger}
}

// PostApproval implements approval.Notifier.
func (n *Notifier) PostApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) (string, string, error) {
	m := n.mentions(ctx, r)
	text := approvalFallback(r)
	if m != "" {
		text += " — approvers: " + m
	}
	return n.api.PostMessage(ctx, n.approvalChannel,
		slack.MsgOptionText(truncate(text, maxFallbackText), false), slack.MsgOptionBlocks(approvalBlocks(r, q, m)...))
}

// UpdateApproval implements approval.Notifier: it rewrites the approval message
// and says what happened in its thread, so that the channel sees the decision
// and the approvers who did not act see that they need not.
func (n *Notifier) UpdateApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	var m string
	if r.State == approval.StatePending {
		m = n.mentions(ctx, r)
	}
	err := n.api.UpdateMessage(ctx, r.ApprovalChannel, r.ApprovalTS,
		slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(approvalBlocks(r, q, m)...))
	line := n.decisionLine(ctx, r, q)
	if line == "" {
		return err
	}
	_, _, terr := n.api.PostMessage(ctx, r.ApprovalChannel, slack.MsgOptionTS(r.ApprovalTS),
		slack.MsgOptionText(line, false), slack.MsgOptionBlocks(section(line)))
	if err == nil {
		err = terr
	}
	return err
}

// decisionLine is the thread reply for the request's new state. People are
// named rather than mentioned: whoever clicked knows already.
func (n *Notifier) decisionLine(ctx context.Context, r *approval.Request, q approval.QuorumStatus) string {
	var by []string
	for _, a := range r.Approvals {
		by = append(by, n.name(ctx, a.User))
	}
	switch r.State {
	case approval.StatePending:
		if len(r.Approvals) == 0 {
			return ""
		}
		s := fmt.Sprintf(":ballot_box_with_check: Approved by %s (%d of %d)", by[len(by)-1], q.Have, max(q.Need, 1))
		if len(q.Waiting) > 0 {
			s += " — still waiting on " + escape(strings.Join(q.Waiting, ", "))
		}
		return s
	case approval.StateDenied:
		return ":no_entry: Denied by " + n.name(ctx, r.DecidedBy)
	case approval.StateApproved:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + ". Creating the credential."
	case approval.StateIssued:
		return ":key: Credential created; the requester has been sent a one-time Reveal button."
	case approval.StateCancelled:
		return ":heavy_multiplication_x: Cancelled by the requester"
	}
	return statusLine(r, q)
}

// name renders a user without pinging them: their Slack name if the directory
// knows it, else a mention.
func (n *Notifier) name(ctx context.Context, user string) string {
	if n.dir != nil {
		if p, err := n.dir.Profile(ctx, user); err == nil && p.Name != "" {
			return "*" + escape(p.Name) + "*"
		}
	}
	return "<@" + user + ">"
}

// mentions renders the approvers the policy routes r to, minus its requester.
func (n *Notifier) mentions(ctx context.Context, r *approval.Request) string {
	if n.approvers == nil {
		return ""
	}
	names, err := n.approvers.Approvers(ctx, r.Scope)
	if err != nil {
		n.log.WarnContext(ctx, "list approvers", "request_id", r.ID, "error", err)
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

func (n *Notifier) mention(ctx context.Context, subject string) string {
	if n.dir != nil {
		return n.dir.Mention(ctx, subject)
	}
	if isSlackID(subject, 'U') || isSlackID(subject, 'W') {
		return "<@" + subject + ">"
	}
	return escape(subject)
}

// Remind implements approval.Notifier: a reply in the request's thread that
// mentions the approvers again. Escalated, it also goes to the escalation
// channel, or, without one, is shown in the approval channel itself.
func (n *Notifier) Remind(ctx context.Context, r *approval.Request, q approval.QuorumStatus, escalate bool) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	text := fmt.Sprintf(":bell: Request `%s` from <@%s> has waited since %s for approval (%d of %d); it expires %s.",
		r.ID, r.Requester, when(r.CreatedAt), q.Have, max(q.Need, 1), when(r.PendingUntil))
	if m := n.mentions(ctx, r); m != "" {
		text += " " + m
	}
	opts := []slack.MsgOption{slack.MsgOptionTS(r.ApprovalTS), slack.MsgOptionText(truncate(text, maxFallbackText), false), slack.MsgOptionBlocks(section(text))}
	if escalate && n.escalation == "" {
		opts = append(opts, slack.MsgOptionBroadcast())
	}
	if _, _, err := n.api.PostMessage(ctx, r.ApprovalChannel, opts...); err != nil {
		return err
	}
	if escalate && n.escalation != "" {
		esc := fmt.Sprintf(":rotating_light: Request `%s` (%s in %s, from <@%s>) has waited through %d reminders without a decision.",
			r.ID, escape(r.Name), escape(scopeLabel(r.Scope)), r.Requester, r.Reminders)
		if _, _, err := n.api.PostMessage(ctx, n.escalation, slack.MsgOptionText(esc, false), slack.MsgOptionBlocks(section(esc))); err != nil {
			return err
		}
	}
	return nil
}

// Tell implements approval.Notifier.
func (n *Notifier) Tell(ctx context.Context, r *approval.Request, text string) error {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return err
	}
	_, _, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(truncate(text, maxFallbackText), false))
	return err
}

// WarnExpiry implements approval.Notifier: a DM with a Delete-now button.
func (n *Notifier) WarnExpiry(ctx context.Context, r *approval.Request) error {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("Your API credential %s in %s will be deleted at BTP %s. To keep access, request a new one (it needs a new approval) and switch over; then delete this one, or let it expire.",
		r.Name, scopeLabel(r.Scope), when(r.ExpiresAt))
	del := button(ActionDeleteOwn, r.ID, "Delete it now").WithStyle(slack.StyleDanger)
	del.Confirm = slack.NewConfirmationBlockObject(plain("Delete "+truncate(r.Name, 60)+"?"),
		plain("It is deleted at BTP at once; whatever uses it stops working."), plain("Delete"), plain("Keep it"))
	blocks := []slack.Block{
		slack.NewSectionBlock(plain(text), nil, nil),
		slack.NewActionBlock("expiry:"+r.ID, del),
	}
	_, _, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(truncate(text, maxFallbackText), false), slack.MsgOptionBlocks(blocks...))
	return err
}

// OfferReveal implements approval.Notifier: a DM notice without the secret.
func (n *Notifier) OfferReveal(ctx context.Context, r *approval.Request, window time.Duration) (string, string, error) {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return "", "", err
	}
	text := fmt.Sprintf("Your API credential %s in %s is ready. Reveal it within %s; it is shown once.", r.Name, scopeLabel(r.Scope), window)
	blocks := []slack.Block{
		slack.NewSectionBlock(plain(text), nil, nil),
		slack.NewActionBlock("reveal:"+r.ID, button(ActionReveal, r.ID, "Reveal secret").WithStyle(slack.StylePrimary)),
		note("Only you see the secret, once, as a message that disappears when you reload Slack. Copy it into your secret store right away."),
	}
	_, ts, err := n.api.PostMessage(ctx, ch, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", "", err
	}
	return ch, ts, nil
}

// Revealed implements approval.Notifier.
func (n *Notifier) Revealed(ctx context.Context, r *approval.Request) error {
	if r.DMChannel == "" || r.DMTS == "" {
		return nil
	}
	text := fmt.Sprintf("The secret of %s in %s was revealed at %s and is no longer stored by credbot.", r.Name, scopeLabel(r.Scope), r.UpdatedAt.Format(time.RFC1123))
	if !r.ExpiresAt.IsZero() {
		text += " The credential expires " + when(r.ExpiresAt) + "."
	}
	return n.api.UpdateMessage(ctx, r.DMChannel, r.DMTS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(slack.NewSectionBlock(plain(text), nil, nil)))
}
