package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// Action ids of our buttons. Button values carry the request id and nothing else.
const (
	ActionApprove = "credbot_approve"
	ActionDeny    = "credbot_deny"
	ActionReveal  = "credbot_reveal"
)

// Notifier is the Slack Web API side of approval.Notifier.
type Notifier struct {
	api               *slack.Client
	approvalChannel   string
	escalationChannel string
}

var _ approval.Notifier = (*Notifier)(nil)

// NewNotifier posts approval requests to approvalChannel through api.
func NewNotifier(api *slack.Client, approvalChannel string) *Notifier {
	return &Notifier{api: api, approvalChannel: approvalChannel}
}

// PostApproval implements approval.Notifier.
func (n *Notifier) PostApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) (string, string, error) {
	ch, ts, err := n.api.PostMessageContext(ctx, n.approvalChannel,
		slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(approvalBlocks(r, q)...))
	if err != nil {
		return "", "", fmt.Errorf("chat.postMessage: %w", err)
	}
	return ch, ts, nil
}

// UpdateApproval implements approval.Notifier.
func (n *Notifier) UpdateApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	_, _, _, err := n.api.UpdateMessageContext(ctx, r.ApprovalChannel, r.ApprovalTS,
		slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(approvalBlocks(r, q)...))
	if err != nil {
		return fmt.Errorf("chat.update: %w", err)
	}
	return nil
}

// Tell implements approval.Notifier.
func (n *Notifier) Tell(ctx context.Context, r *approval.Request, text string) error {
	ch, err := n.dm(ctx, r.Requester)
	if err != nil {
		return err
	}
	_, _, err = n.api.PostMessageContext(ctx, ch, slack.MsgOptionText(text, false))
	if err != nil {
		return fmt.Errorf("chat.postMessage: %w", err)
	}
	return nil
}

// OfferReveal implements approval.Notifier: a DM notice without the secret.
func (n *Notifier) OfferReveal(ctx context.Context, r *approval.Request, window time.Duration) (string, string, error) {
	ch, err := n.dm(ctx, r.Requester)
	if err != nil {
		return "", "", err
	}
	text := fmt.Sprintf("Your API credential %s in %s is ready. Reveal it within %s; it is shown once.", r.Name, scopeLabel(r.Scope), window)
	blocks := []slack.Block{
		slack.NewSectionBlock(plain(text), nil, nil),
		slack.NewActionBlock("reveal:"+r.ID,
			slack.NewButtonBlockElement(ActionReveal, r.ID, plain("Reveal secret")).WithStyle(slack.StylePrimary)),
		slack.NewContextBlock("", mrkdwn("Only you see the secret, once, as a message that disappears when you reload Slack. Copy it into your secret store right away.")),
	}
	_, ts, err := n.api.PostMessageContext(ctx, ch, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", "", fmt.Errorf("chat.postMessage: %w", err)
	}
	return ch, ts, nil
}

// Revealed implements approval.Notifier.
func (n *Notifier) Revealed(ctx context.Context, r *approval.Request) error {
	if r.DMChannel == "" || r.DMTS == "" {
		return nil
	}
	text := fmt.Sprintf("The secret of %s in %s was revealed at %s and is no longer stored by credbot.", r.Name, scopeLabel(r.Scope), r.UpdatedAt.Format(time.RFC1123))
	_, _, _, err := n.api.UpdateMessageContext(ctx, r.DMChannel, r.DMTS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(slack.NewSectionBlock(plain(text), nil, nil)))
	if err != nil {
		return fmt.Errorf("chat.update: %w", err)
	}
	return nil
}

func (n *Notifier) dm(ctx context.Context, user string) (string, error) {
	ch, _, _, err := n.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
	if err != nil {
		return "", fmt.Errorf("conversations.open: %w", err)
	}
	return ch.ID, nil
}

func approvalFallback(r *approval.Request) string {
	return fmt.Sprintf("Credential request %s: %s in %s (%s)", r.ID, r.Name, scopeLabel(r.Scope), strings.ToLower(string(r.State)))
}

// approvalBlocks renders the approval message. User-supplied text (name, reason)
// goes only into plain_text objects, so "<!channel>" in a reason pings nobody.
func approvalBlocks(r *approval.Request, q approval.QuorumStatus) []slack.Block {
	access := "full access"
	if r.ReadOnly {
		access = "read-only"
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(mrkdwn(fmt.Sprintf("*API credential request* `%s` from <@%s>", r.ID, r.Requester)), nil, nil),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			plain("Scope: " + scopeLabel(r.Scope)),
			plain("Name: " + r.Name),
			plain("Access: " + access),
			plain("Reason: " + truncate(r.Reason, 1900)),
		}, nil),
	}
	status := statusLine(r, q)
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn(status)))
	if r.State == approval.StatePending {
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("decide:%s:%d", r.ID, r.Version),
			slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve")).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement(ActionDeny, r.ID, plain("Deny")).WithStyle(slack.StyleDanger),
		))
	}
	return blocks
}

func statusLine(r *approval.Request, q approval.QuorumStatus) string {
	var by []string
	for _, a := range r.Approvals {
		by = append(by, "<@"+a.User+">")
	}
	switch r.State {
	case approval.StatePending:
		s := fmt.Sprintf(":hourglass: Waiting for approval (%d of %d)", q.Have, max(q.Need, 1))
		if len(q.Waiting) > 0 {
			s += " — waiting on " + escape(strings.Join(q.Waiting, ", "))
		}
		if len(by) > 0 {
			s += "; approved so far by " + strings.Join(by, ", ")
		}
		return s
	case approval.StateDenied:
		return fmt.Sprintf(":no_entry: Denied by <@%s>", r.DecidedBy)
	case approval.StateApproved, approval.StateMinting:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — creating the credential"
	case approval.StateIssued, approval.StateDelivered:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — credential issued to the requester"
	case approval.StateFailed:
		return ":x: Failed: " + escape(r.Failure)
	case approval.StateExpired:
		return ":hourglass_flowing_sand: Expired without a decision"
	case approval.StateRevoked:
		return ":wastebasket: Revoked: " + escape(r.Failure)
	case approval.StateCancelled:
		return ":heavy_multiplication_x: Cancelled by the requester"
	}
	return string(r.State)
}

// revealBlocks renders the one-time secret for the ephemeral reply.
func revealBlocks(rv approval.Revelation) []slack.Block {
	c := rv.Request.Credential
	var meta strings.Builder
	fmt.Fprintf(&meta, "*%s* in %s\n", escape(c.Name), escape(scopeLabel(c.Scope)))
	fmt.Fprintf(&meta, "clientid: `%s`\ntokenurl: %s\n", escape(c.ClientID), escape(c.TokenURL))
	if c.APIURL != "" {
		fmt.Fprintf(&meta, "apiurl: %s\n", escape(c.APIURL))
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(meta.String()), nil, nil)}
	for _, f := range rv.Secret.Fields() {
		// Never truncate a secret: split it over as many sections as it needs. A
		// chunk of 550 bytes stays under Slack's 3000 even if every byte is escaped.
		v := f.Value
		for part := 1; v != ""; part++ {
			n := min(len(v), 550)
			label := f.Name
			if part > 1 || len(v) > n {
				label = fmt.Sprintf("%s (part %d)", f.Name, part)
			}
			blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
				fmt.Sprintf("%s:\n```%s```", label, escape(v[:n])), false, false), nil, nil))
			v = v[n:]
		}
	}
	blocks = append(blocks, slack.NewContextBlock("", mrkdwn("Shown once. credbot has deleted its copy; BTP cannot show it again.")))
	return blocks
}

func scopeLabel(s approval.Scope) string {
	switch s.Kind {
	case approval.ScopeGlobalAccount:
		return "global account " + s.ID
	default:
		return string(s.Kind) + " " + s.ID
	}
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, 2900), false, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(s, 2900), false, false)
}

// escape neutralises Slack's control sequences in text shown as mrkdwn.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
