package handlers

import (
	"fmt"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
)

// maxDenyReason bounds a denier's reason: it is user text, shown to the
// requester and in the approval message.
const maxDenyReason = approval.MaxDenyReason

// actorName renders who moved a request: a person as a mention (in an
// ephemeral answer it pings nobody), credbot's own roles in words.
func actorName(actor string) string {
	switch actor {
	case "":
		return "someone"
	case "deadline":
		return "credbot (a deadline passed)"
	case "system", "minter":
		return "credbot"
	}
	return blockkit.Mention(actor)
}

// denyReasonText points to the denier's reason, which goes in a plain_text
// block of its own (denyReasonBlock: user text never in mrkdwn), or says
// there is none.
func denyReasonText(r *approval.Request) string {
	if r.DenyReason == "" {
		return "No reason was given."
	}
	return "Their reason is below."
}

// whyOutcome says where a request that is no longer waiting for approval
// stands and how it got there: who decided, when and why. (A pending
// request's answer is its quorum progress instead.)
func whyOutcome(r *approval.Request) string {
	if r.Breakglass {
		return "*Break-glass*: issued at once on " + actorName(r.Requester) + "'s word. " +
			breakglassReview(r) + "\n" + whyState(r, "a break-glass, without approval")
	}
	by := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		by = append(by, blockkit.Mention(a.User))
	}
	approved := "approved by " + strings.Join(by, ", ")
	if r.DecidedBy != "" && len(by) > 1 {
		approved += " (the last approval, " + blockkit.Mention(r.DecidedBy) + "'s, completed the quorum)"
	}
	return whyState(r, approved)
}

// breakglassReview says whether a reviewer has looked at a break-glass.
func breakglassReview(r *approval.Request) string {
	if r.AckedBy != "" {
		return fmt.Sprintf("Acknowledged by %s at %s.", blockkit.Mention(r.AckedBy), blockkit.When(r.AckedAt))
	}
	return fmt.Sprintf("Not acknowledged yet (%d escalation(s) so far).", r.Escalations)
}

// whyState is whyOutcome's answer for the request's state; approved says
// how it got past approval.
func whyState(r *approval.Request, approved string) string {
	ended := r.EndedAt
	if ended.IsZero() {
		ended = r.UpdatedAt // a record from before ended_at
	}
	by := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		by = append(by, blockkit.Mention(a.User))
	}
	switch r.State {
	case approval.StateDenied:
		s := fmt.Sprintf("*Denied* by %s at %s. %s", actorName(r.DecidedBy), blockkit.When(ended), denyReasonText(r))
		if len(by) > 0 {
			s += "\nApproved before the denial by " + strings.Join(by, ", ") + "."
		}
		return s
	case approval.StateCancelled:
		return fmt.Sprintf("*Cancelled* by the requester, %s, at %s. Nothing was created at BTP.", actorName(r.EndedBy), blockkit.When(ended))
	case approval.StateExpired:
		return fmt.Sprintf("*Expired* at %s: nobody decided before %s (%d approval(s) recorded, not enough). Nothing was created at BTP; the requester can ask again.",
			blockkit.When(ended), blockkit.When(r.PendingUntil), len(r.Approvals))
	case approval.StateFailed:
		return fmt.Sprintf("*Failed* at %s: %s", blockkit.When(ended), blockkit.Escape(r.Failure))
	case approval.StateRevoked:
		return fmt.Sprintf("*Revoked* at %s: %s, so credbot deleted the credential at BTP. It was %s.",
			blockkit.When(ended), blockkit.Escape(r.Failure), approved)
	case approval.StateDeleted:
		s := fmt.Sprintf("*Deleted* at BTP at %s by %s", blockkit.When(ended), actorName(r.EndedBy))
		if r.EndNote != "" {
			s += ": " + blockkit.Escape(r.EndNote)
		}
		return s + ". It was " + approved + "."
	case approval.StateApproved, approval.StateMinting:
		return "*Approved*: " + approved + ". credbot is creating the credential at BTP."
	case approval.StateIssued:
		return fmt.Sprintf("*Issued*: %s. The credential was created at BTP; the requester can reveal its secret until %s.", approved, blockkit.When(r.ClaimUntil))
	case approval.StateDelivered:
		s := "*Delivered*: " + approved + ". The secret was revealed to the requester; credbot keeps no copy."
		if !r.ExpiresAt.IsZero() {
			s += " The credential is deleted at BTP at " + blockkit.When(r.ExpiresAt) + "."
		}
		return s
	}
	return blockkit.Escape(string(r.State))
}
