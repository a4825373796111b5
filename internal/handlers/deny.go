package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// BlockDenyReason is the input block of the deny form's reason.
const BlockDenyReason = "deny_reason"

// denyMeta is the deny form's private_metadata: which request, and where to
// answer the person who opened it. It never says who denies: that is the
// submitter Slack vouches for, authorized again when the form comes back.
type denyMeta struct {
	ID          string `json:"id"`
	OpenedBy    string `json:"by"`                     // only to choose where to answer
	ResponseURL string `json:"response_url,omitempty"` // the click's, when it came from a message
	Home        bool   `json:"home,omitempty"`         // the click came from the Home tab
}

// denyModal is the small form a Deny click opens.
func denyModal(r *approval.Request, id string, meta denyMeta) slack.ModalViewRequest {
	b, _ := json.Marshal(meta)
	what := "request " + id
	if r != nil {
		what = fmt.Sprintf("request %s for %s in %s", id, r.Name, blockkit.ScopeLabel(r.Scope))
	}
	reason := slack.NewPlainTextInputBlockElement(blockkit.Plain("e.g. production is frozen until Monday"), inputAction).
		WithMaxLength(maxDenyReason).WithMultiline(true)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      blockkit.CallbackDeny,
		PrivateMetadata: string(b),
		Title:           blockkit.Plain("Deny request"),
		Submit:          blockkit.Plain("Deny"),
		Close:           blockkit.Plain("Keep it"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(blockkit.Plain("Deny "+what+"? The requester sees your name and your reason."), nil, nil),
			slack.NewInputBlock(BlockDenyReason, blockkit.Plain("Reason (optional)"), blockkit.Plain("Shown to the requester and on the approval message."), reason).WithOptional(true),
		}},
	}
}

// openDenyForm opens the reason form with the click's trigger, inside the
// ack (the trigger is valid for 3 seconds, once). Nothing is decided yet: the
// denial happens when the form comes back, authorized as its submitter.
func (s *Server) openDenyForm(ctx context.Context, cb slack.InteractionCallback, id string, fromHome bool) any {
	if !s.first(ctx, "action", cb.TriggerID) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckBudget)
	defer cancel()
	meta := denyMeta{ID: id, OpenedBy: cb.User.ID, Home: fromHome}
	if !fromHome && s.trustedResponseURL(cb.ResponseURL) {
		meta.ResponseURL = cb.ResponseURL
	}
	var r *approval.Request
	if got, err := s.life.Status(ctx, id); err == nil {
		r = got
	}
	if err := s.cfg.API.OpenView(ctx, cb.TriggerID, denyModal(r, id, meta)); err != nil {
		s.log.WarnContext(ctx, "open deny form", "request_id", id, "error", err)
		o := origin{user: cb.User.ID, responseURL: meta.ResponseURL}
		s.async(func(ctx context.Context) {
			s.reply(ctx, o, ":warning: Slack did not open the form to deny request `"+id+"`; nothing was decided. Please click Deny again.")
		})
	}
	return nil
}

// submitDenyForm checks the reason and records the denial for a worker,
// as the submitter; the form closes once it is recorded.
func (s *Server) submitDenyForm(ctx context.Context, cb slack.InteractionCallback) any {
	var meta denyMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil || !requestIDRE.MatchString(meta.ID) {
		return nil
	}
	var reason string
	if cb.View.State != nil {
		reason = strings.TrimSpace(cb.View.State.Values[BlockDenyReason][inputAction].Value)
	}
	if err := approval.CheckDenyReason(reason); err != nil {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockDenyReason: userText(err)})
	}
	j := job{Kind: jobAction, User: cb.User.ID, Action: blockkit.ActionDeny, Value: meta.ID, Reason: reason, FromHome: meta.Home}
	if meta.OpenedBy == cb.User.ID && s.trustedResponseURL(meta.ResponseURL) {
		j.ResponseURL = meta.ResponseURL // answer where they clicked; anyone else in their DM
	}
	ack := s.accept(ctx, cb.TriggerID, j, nil)
	if _, failed := ack.(unrecordedAck); failed {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockDenyReason: Unrecorded})
	}
	return ack
}
