package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// TestRevealReplyFailingDeletesTheCredentialAndTellsTheRequester: the one
// message that carries the secret (the ephemeral reply to the Reveal click)
// is refused by Slack. The sealed copy is gone and nobody saw the secret, so
// the credential is deleted at BTP, the request ends REVOKED, the requester
// is told in their DM, the DM notice no longer says the secret was revealed,
// and a second click reveals nothing.
func TestRevealReplyFailingDeletesTheCredentialAndTellsTheRequester(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("live at BTP before the reveal: %v", live)
	}

	h.Slack.Inject(slackfake.Fault{Method: "response_url", Times: 1, Status: http.StatusInternalServerError})
	ack, err := h.Workspace.Click(ctx, Requester, dm, blockkit.ActionReveal)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("reveal click: %d %v", ack.Status, err)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "could not be shown to you")
	}); err != nil {
		t.Fatalf("the requester was not told: %v", err)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("the credential whose secret nobody saw is still live at BTP: %v", live)
	}
	if n := h.BTP.Count("delete"); n != 1 {
		t.Fatalf("%d deletes at BTP, want 1", n)
	}
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StateRevoked {
		t.Fatalf("request %v %v, want REVOKED", r, err)
	}
	// The DM notice says what happened, not that the secret was revealed.
	notice, _ := h.Slack.Message(dm.Channel, dm.TS)
	if strings.Contains(notice.Text, "was revealed") || !strings.Contains(notice.Text, "could not be shown") {
		t.Errorf("DM notice after a failed reveal: %q", notice.Text)
	}
	// The approval message no longer says the credential was issued.
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	if !strings.Contains(upd.Blocks, "Revoked: the secret could not be shown to the requester") {
		t.Errorf("approval message after a failed reveal: %s", upd.Blocks)
	}
	again := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if strings.Contains(again.Body, h.BTP.Secrets()[0]) {
		t.Fatal("revealed after the revocation")
	}
	// The secret reached Slack only in the refused reply.
	for _, c := range h.Slack.Calls() {
		if (strings.Contains(c.Body, h.BTP.Secrets()[0]) || strings.Contains(c.Params.Encode(), h.BTP.Secrets()[0])) && c.Method != "response_url!500" {
			t.Errorf("the secret is in a %s call", c.Method)
		}
	}
}
