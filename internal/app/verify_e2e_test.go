package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// Verification (issue 12 §5): a new credential that cannot get a token is
// deleted at BTP before anyone is offered it, and its requester is told.
func TestACredentialThatGetsNoTokenIsDeletedAndTheRequesterTold(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	// The token endpoint refuses every grant, as XSUAA does a bad credential.
	h.BTP.Inject(btptest.Fault{Action: "token", Status: http.StatusUnauthorized, Times: -1})

	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	told, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"could not get a token", "deleted it at BTP", "ask again"} {
		if !strings.Contains(told.Text(), want) {
			t.Errorf("the requester was told %q, which lacks %q", told.Text(), want)
		}
	}
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates, want 1", n)
	}
	if n := h.BTP.Count("token"); n < 1 {
		t.Fatalf("%d token requests: verification did not run", n)
	}
	if live := h.BTP.Live(defaultScopeE2E); len(live) != 0 {
		t.Fatalf("still live at BTP after a failed verification: %v", live)
	}
	deletes := requestsOf(h.BTP, "delete")
	if len(deletes) == 0 || deletes[len(deletes)-1].Params["name"] != "ci-payments" {
		t.Fatalf("deletes at BTP: %+v, want ci-payments deleted", deletes)
	}
	// No Reveal button was ever offered, and the request ended FAILED with
	// its name released.
	for _, c := range h.Slack.Calls() {
		if strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) {
			t.Fatalf("a Reveal button was offered for an unverified credential: %+v", c)
		}
	}
	mine, _, err := h.App.Service.Requests(ctx, Requester.ID)
	if err != nil || len(mine) != 1 || mine[0].State != approval.StateFailed || !strings.Contains(mine[0].Failure, "could not get a token") {
		t.Fatalf("stored: %+v %v", mine, err)
	}
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	if !strings.Contains(upd.Blocks, "Failed") {
		t.Fatalf("approval message not updated: %s", upd.Blocks)
	}
	if holder, err := h.App.Store.NameHolder(ctx, defaultScopeE2E, "ci-payments"); err == nil {
		t.Fatalf("the name is still reserved by %s after the request failed", holder)
	}
}
