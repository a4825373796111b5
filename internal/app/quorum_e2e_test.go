package app

import (
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// The shipped policy's production directory and its subaccount
// (policies/hierarchy.yaml): quorum.yaml asks for two approvers there, one
// from role:prod-owner and one from role:security.
const prodSubaccount = "66666666-7777-4888-8999-aaaaaaaaaaaa"

var (
	// Security is in role:security for production only (policies/policy.csv).
	Security = slackfake.Person{ID: "U0SEC", Name: "sec"}
	// Owner is in role:prod-owner and role:security, and a global approver.
	Owner = slackfake.Person{ID: "U0LOCALAP2", Name: "owner"}
)

// startProd runs the bot against a BTP emulator that also knows the shipped
// policy's production subaccount. The harness's own emulator (h.BTP) is not
// used; the returned one is.
func startProd(t *testing.T) (*harness, *btptest.Server) {
	t.Helper()
	b := btptest.NewServer(btptest.Options{Subaccounts: []string{btptest.DefaultSubaccount, prodSubaccount}})
	t.Cleanup(b.Close)
	h := start(t, map[string]string{
		"BTP_CLI_SERVER_URL": b.URL(), "BTP_GLOBALACCOUNT": btptest.DefaultGlobalAccount,
		"BTP_USERNAME": btptest.DefaultUser, "BTP_PASSWORD": btptest.DefaultPassword,
	})
	t.Cleanup(func() {
		if !t.Failed() {
			h.assertSecretNowhere(t, b.Secrets()...)
		}
	})
	return h, b
}

// TestTwoOfTwoQuorumThroughSlackClicks drives the shipped production rule
// through signed clicks: an approver outside both required roles is recorded
// but not counted (and told so, and the message says what is still missing),
// one from security makes it 1 of 2, the owner completes it; only then is the
// credential created, once, and revealed once.
func TestTwoOfTwoQuorumThroughSlackClicks(t *testing.T) {
	h, b := startProd(t)
	ctx := ctxT(t)

	h.slash(t, ctx, Requester, `create --subaccount `+prodSubaccount+` --name prod-payments --reason "payments in prod"`)
	msg := h.approvalMessage(t, ctx, "prod-payments")
	if !strings.Contains(msg.Blocks, "0 of 2") {
		t.Fatalf("a fresh production request should wait for 0 of 2: %s", msg.Blocks)
	}

	// A global approver is in neither role:prod-owner nor role:security.
	got := h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "does not count") {
		t.Errorf("an approval outside the required roles: the clicker was told %s", got.Body)
	}
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	for _, bad := range []string{"1 of 2", "2 of 2"} {
		if strings.Contains(upd.Blocks, bad) {
			t.Errorf("after an approval outside the required roles the message reads %q: %s", bad, upd.Blocks)
		}
	}
	for _, want := range []string{"0 of 2 counted", "one approver from role:prod-owner", "one approver from role:security",
		Approver.ID + `\u003e's approval does not count`} {
		if !strings.Contains(upd.Blocks, want) {
			t.Errorf("the approval message lacks %q: %s", want, upd.Blocks)
		}
	}
	if n := b.Count("create"); n != 0 {
		t.Fatalf("%d creates before the quorum", n)
	}

	got = h.click(t, ctx, Security, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "1 of 2") {
		t.Errorf("security's approval: told %s", got.Body)
	}
	upd, _ = h.Slack.Message(msg.Channel, msg.TS)
	if !strings.Contains(upd.Blocks, "1 of 2 counted") || !strings.Contains(upd.Blocks, "still needs one approver from role:prod-owner") ||
		strings.Contains(upd.Blocks, "one approver from role:security") {
		t.Errorf("after security: %s", upd.Blocks)
	}
	if n := b.Count("create"); n != 0 {
		t.Fatalf("%d creates before the quorum", n)
	}
	// status and why say the same as the message.
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	for _, verb := range []string{"status ", "why "} {
		if _, a := h.slash(t, ctx, Requester, verb+id); !strings.Contains(a.Body, "1 of 2 counted") || !strings.Contains(a.Body, "one approver from role:prod-owner") ||
			!strings.Contains(a.Body, Approver.ID+`\u003e's approval does not count`) {
			t.Errorf("/credbot %s: %s", verb+id, a.Body)
		}
	}

	got = h.click(t, ctx, Owner, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "Approved") {
		t.Fatalf("the owner completing the quorum was told %s", got.Body)
	}
	dm := h.waitDM(t, ctx)
	creates := requestsOf(b, "create")
	if len(creates) != 1 || creates[0].Params["subaccount"] != prodSubaccount || creates[0].Params["name"] != "prod-payments" {
		t.Fatalf("creates at BTP: %+v", creates)
	}
	secrets := b.Secrets()
	if len(secrets) != 1 {
		t.Fatalf("%d secrets", len(secrets))
	}
	if rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); !strings.Contains(rev.Body, secrets[0]) {
		t.Fatalf("reveal: %s", rev.Body)
	}
	upd, _ = h.Slack.Message(msg.Channel, msg.TS)
	if strings.Contains(upd.Blocks, blockkit.ActionApprove) {
		t.Errorf("the approval message still has its buttons: %s", upd.Blocks)
	}
}
