package blockkit

import (
	"fmt"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// BreakglassFallback is the notification text of a break-glass alert.
func BreakglassFallback(r *approval.Request) string {
	return fmt.Sprintf("BREAK-GLASS %s: %s in %s by %s (%s)", r.ID, r.Name, ScopeLabel(r.Scope), r.Requester, strings.ToLower(string(r.State)))
}

// BreakglassBlocks renders a break-glass alert: who, what, why, until when,
// and, while it is live and unreviewed, Acknowledge and Revoke now. User
// text goes only into plain_text, as in approval messages.
func BreakglassBlocks(r *approval.Request, mentions string, escalation int) []slack.Block {
	expires := "at most " + Lifetime(r.Lifetime) + " after it is created"
	if !r.ExpiresAt.IsZero() {
		expires = When(r.ExpiresAt)
	}
	head := fmt.Sprintf(":rotating_light: *Break-glass* `%s`: <@%s> took an API credential *without approval*.", r.ID, r.Requester)
	if escalation > 0 {
		head = fmt.Sprintf(":rotating_light: *Break-glass* `%s` by <@%s> is still *not acknowledged* (escalation %d).", r.ID, r.Requester, escalation)
	}
	fields := []*slack.TextBlockObject{
		Plain("Scope: " + ScopeLabel(r.Scope)),
		Plain("Name: " + r.Name),
		Plain("Access: " + AccessLabel(r.ReadOnly)),
		Plain("Issued: " + When(r.CreatedAt)),
		Plain("Expires: " + expires),
		Plain("Reason: " + r.Reason),
	}
	blocks := []slack.Block{Section(head), slack.NewSectionBlock(nil, fields, nil)}
	live := !r.State.Terminal()
	if live && r.AckedBy == "" && mentions != "" {
		blocks = append(blocks, Section("Reviewers: "+mentions))
	}
	blocks = append(blocks, Note(BreakglassStatus(r)))
	if live && r.RevokedBy == "" {
		var buttons []slack.BlockElement
		if r.AckedBy == "" {
			buttons = append(buttons, Button(ActionAcknowledge, r.ID, "Acknowledge").WithStyle(slack.StylePrimary))
		}
		buttons = append(buttons, Button(ActionRevokeNow, r.ID, "Revoke now").WithStyle(slack.StyleDanger).
			WithConfirm(Confirm("Revoke "+r.Name+" now?", "It is deleted at BTP at once, and whatever uses it stops working. The user is told.", "Revoke", "Keep it", true)))
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("review:%s:%d", r.ID, r.Version), buttons...))
	}
	return blocks
}

// BreakglassStatus is the alert's status line: where the credential is, and
// whether someone acknowledged it.
func BreakglassStatus(r *approval.Request) string {
	var s string
	switch {
	case r.RevokedBy != "" && r.State == approval.StateRevoked:
		s = fmt.Sprintf(":no_entry: Revoked by <@%s>; deleted at BTP.", r.RevokedBy)
	case r.RevokedBy != "":
		s = fmt.Sprintf(":hourglass: Revoke requested by <@%s>; deleting at BTP.", r.RevokedBy)
	case r.State.Terminal():
		s = fmt.Sprintf("Ended: %s.", strings.ToLower(string(r.State)))
		if r.Failure != "" {
			s += " " + Escape(r.Failure)
		}
	case r.State == approval.StateDelivered:
		s = ":key: Issued and revealed to the user."
	case r.State == approval.StateIssued:
		s = ":key: Issued; waiting for the user to reveal it."
	default:
		s = ":hourglass: Being created at BTP."
	}
	if r.AckedBy != "" {
		s += fmt.Sprintf(" :white_check_mark: Acknowledged by <@%s> at %s.", r.AckedBy, When(r.AckedAt))
	} else if !r.State.Terminal() {
		s += fmt.Sprintf(" Not acknowledged yet: escalates %s.", When(r.ReviewAt))
	}
	return s
}
