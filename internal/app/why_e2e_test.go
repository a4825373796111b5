package app

import (
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// TestWhyOnADeniedRequestSaysWhoDeniedIt: /credbot why on a denied request
// names the denier and when, never "waiting on 1 more approval"; on a
// cancelled one, that the requester cancelled it.
func TestWhyOnADeniedRequestSaysWhoDeniedIt(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	h.click(t, ctx, Approver, msg, blockkit.ActionDeny)

	_, why := h.slash(t, ctx, Requester, "why "+id)
	day := time.Now().UTC().Format("2006-01-02")
	for _, want := range []string{"Denied", `\u003c@` + Approver.ID + `\u003e`, day, "No reason was given"} {
		if !strings.Contains(why.Body, want) {
			t.Errorf("why on a denied request lacks %q: %s", want, why.Body)
		}
	}
	for _, bad := range []string{"waiting", "more approv", "of 1"} {
		if strings.Contains(why.Body, bad) {
			t.Errorf("why on a denied request says %q: %s", bad, why.Body)
		}
	}

	h.slash(t, ctx, Requester, `create --subaccount `+prodSubaccount+` --name to-cancel --reason "x"`)
	msg = h.approvalMessage(t, ctx, "to-cancel")
	id, _, _ = slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	h.slash(t, ctx, Requester, "cancel "+id)
	_, why = h.slash(t, ctx, Approver, "why "+id)
	if !strings.Contains(why.Body, "*Cancelled* by the requester") || strings.Contains(why.Body, "waiting") {
		t.Errorf("why on a cancelled request: %s", why.Body)
	}
}
