package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/slackfake"
)

// denyForm clicks Deny on m as p and returns the view id of the reason form
// that the click opened (views.open with the click's own trigger, before the ack).
func (h *harness) denyForm(t *testing.T, ctx context.Context, p slackfake.Person, m slackfake.Message) (slackfake.Ack, string) {
	t.Helper()
	ack, err := h.Workspace.Click(ctx, p, m, blockkit.ActionDeny)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("deny click by %s: %d %v", p.Name, ack.Status, err)
	}
	for _, c := range h.Slack.Calls() {
		if c.Method == "views.open" && ack.Trigger != "" && strings.Contains(c.Body, ack.Trigger) {
			return ack, c.TS
		}
	}
	t.Fatalf("the Deny click of %s opened no form with its trigger", p.Name)
	return ack, ""
}

// deny clicks Deny as p, submits the form with reason and returns the answer.
func (h *harness) deny(t *testing.T, ctx context.Context, p slackfake.Person, m slackfake.Message, reason string) slackfake.Call {
	t.Helper()
	ack, view := h.denyForm(t, ctx, p, m)
	sub, err := h.Workspace.SubmitView(ctx, p, view, map[string]string{handlers.BlockDenyReason: reason})
	if err != nil || sub.Status != http.StatusOK || sub.Body != "" {
		t.Fatalf("deny form by %s: %d %q %v", p.Name, sub.Status, sub.Body, err)
	}
	return h.answer(t, ctx, ack)
}

// TestDenyAsksForAReasonAndTheRequesterSeesIt: Deny opens a small form; its
// submission is authorized again as the submitter; the reason is bounded,
// shown to the requester and on the approval message as inert text, kept on
// the request (why) and in the audit entry.
func TestDenyAsksForAReasonAndTheRequesterSeesIt(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx := ctxT(t)
		msg := h.request(t, ctx)
		id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)

		_, view := h.denyForm(t, ctx, Approver, msg)
		if r, _ := h.App.Store.Get(ctx, id); r.State != approval.StatePending {
			t.Fatalf("the Deny click alone moved the request to %s", r.State)
		}
		// Someone else submits the approver's form: authorized as who submits.
		if sub, err := h.Workspace.SubmitView(ctx, Outsider, view, map[string]string{handlers.BlockDenyReason: "mine now"}); err != nil || sub.Status != http.StatusOK {
			t.Fatalf("outsider's submission: %d %v", sub.Status, err)
		}
		// A reason longer than the limit keeps the form open with an error.
		long, err := h.Workspace.SubmitView(ctx, Approver, view, map[string]string{handlers.BlockDenyReason: strings.Repeat("x", 301)})
		if err != nil || !strings.Contains(long.Body, `"response_action":"errors"`) || !strings.Contains(long.Body, handlers.BlockDenyReason) {
			t.Fatalf("an over-long reason: %q %v", long.Body, err)
		}
		if r, _ := h.App.Store.Get(ctx, id); r.State != approval.StatePending {
			t.Fatalf("after the outsider's and the over-long submissions the request is %s", r.State)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postEphemeral" && c.User == Outsider.ID && strings.Contains(c.Text(), "not an approver")
		}); err != nil {
			t.Fatalf("the outsider was not told: %v", err)
		}

		reason := "prod is frozen <!channel> *until* Monday <@U123> <https://evil.example|click>"
		sub, err := h.Workspace.SubmitView(ctx, Approver, view, map[string]string{handlers.BlockDenyReason: reason})
		if err != nil || sub.Status != http.StatusOK || sub.Body != "" {
			t.Fatalf("deny form: %d %q %v", sub.Status, sub.Body, err)
		}
		// The denier hears back where they clicked; the requester in their DM, with the reason.
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "denied") &&
				strings.Contains(c.Params.Get("blocks"), `"type":"plain_text","text":"Reason: prod is frozen \u003c!channel\u003e *until* Monday`)
		}); err != nil {
			t.Fatalf("the requester's DM lacks the reason as plain text: %v", err)
		}
		r, _ := h.App.Store.Get(ctx, id)
		if r.State != approval.StateDenied || r.DecidedBy != Approver.ID || r.DenyReason != reason {
			t.Fatalf("request after the deny: %s by %s reason %q", r.State, r.DecidedBy, r.DenyReason)
		}
		upd, _ := h.Slack.Message(msg.Channel, msg.TS)
		if strings.Contains(upd.Blocks, blockkit.ActionDeny) || !strings.Contains(upd.Blocks, `"type":"plain_text","text":"Reason: prod is frozen`) {
			t.Fatalf("the approval message does not show the reason as plain text: %s", upd.Blocks)
		}
		if !strings.Contains(h.logs.String(), `"reason":"prod is frozen`) {
			t.Error("the audit entry of the denial lacks the reason")
		}
		if _, why := h.slash(t, ctx, Requester, "why "+id); !strings.Contains(why.Body, `"type":"plain_text","text":"Reason: prod is frozen`) || strings.Contains(why.Body, "waiting") {
			t.Errorf("why: %s", why.Body)
		}
		if _, st := h.slash(t, ctx, Approver, "status "+id); !strings.Contains(st.Body, `"type":"plain_text","text":"Reason: prod is frozen`) {
			t.Errorf("status of the denied request lacks the reason: %s", st.Body)
		}
		// The form submitted twice (a double click on Deny) changes nothing more.
		if sub, err := h.Workspace.SubmitView(ctx, Approver, view, map[string]string{handlers.BlockDenyReason: "again"}); err != nil || sub.Status != http.StatusOK {
			t.Fatalf("second submission: %d %v", sub.Status, err)
		}
		if r2, _ := h.App.Store.Get(ctx, id); r2.DenyReason != reason || r2.Version != r.Version {
			t.Fatalf("a second submission changed the request: %+v", r2)
		}
		h.Local.App.handlers.Close()
		assertInert(t, h.Slack)
	})
}
