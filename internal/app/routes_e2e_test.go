package app

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// routedPolicyDir is the shipped policy with two routes: requests in the
// demo subaccount go to one channel, requests in its directory to another,
// whose approvers are also DMed.
func routedPolicyDir(t *testing.T) string {
	return shippedPolicyCopy(t, map[string]string{"routes.yaml": `
routes:
  - {name: platform directory, scope: "directory:` + btptest.DefaultDirectory + `", channel: C0PLATDIR, dm_approvers: true}
  - {name: platform-dev, scope: "subaccount:` + btptest.DefaultSubaccount + `", channel: C0PLATSUB}
`})
}

// postedApproval waits for the approval message of the credential name,
// wherever it was posted (not in a thread, not in a DM).
func (h *harness) postedApproval(t *testing.T, ctx context.Context, name string) slackfake.Message {
	t.Helper()
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.ThreadTS == "" && !strings.HasPrefix(c.Channel, "D") &&
			strings.Contains(c.Params.Get("blocks"), `"Name: `+name+`"`)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(post.Channel, post.TS)
	return m
}

// approverDMs lists the DM copies of request id's approval message, by DM
// channel.
func approverDMs(s *slackfake.Server, id string) map[string]slackfake.Message {
	out := map[string]slackfake.Message{}
	for _, c := range s.Calls() {
		if c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") &&
			strings.Contains(c.Params.Get("blocks"), blockkit.ActionApprove) && strings.Contains(c.Params.Get("blocks"), id) {
			m, _ := s.Message(c.Channel, c.TS)
			out[c.Channel] = m
		}
	}
	return out
}

// TestApprovalRequestsGoToTheChannelTheirScopeIsRoutedTo: two scopes routed
// to two channels by routes.yaml. A signed slash command for each puts its
// approval message in its own channel (the subaccount's route beats its
// directory's), never in CREDBOT_APPROVAL_CHANNEL; the directory's route DMs
// its approvers (not the requester) the same buttons. A click in the routed
// channel approves and mints; so does a click in an approver's DM, after
// which every copy shows the decision.
func TestApprovalRequestsGoToTheChannelTheirScopeIsRoutedTo(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": routedPolicyDir(t)})
	ctx := ctxT(t)

	h.slash(t, ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name routed-sub --reason "routing"`)
	subMsg := h.postedApproval(t, ctx, "routed-sub")
	if subMsg.Channel != "C0PLATSUB" {
		t.Fatalf("the subaccount's request went to %s, want C0PLATSUB (its own route beats its directory's)", subMsg.Channel)
	}
	subID, _, err := slackfake.FindButton(subMsg.Blocks, blockkit.ActionApprove)
	if err != nil {
		t.Fatal(err)
	}

	h.slash(t, ctx, Requester, `create --directory `+btptest.DefaultDirectory+` --name routed-dir --reason "routing"`)
	dirMsg := h.postedApproval(t, ctx, "routed-dir")
	if dirMsg.Channel != "C0PLATDIR" {
		t.Fatalf("the directory's request went to %s, want C0PLATDIR", dirMsg.Channel)
	}
	dirID, _, err := slackfake.FindButton(dirMsg.Blocks, blockkit.ActionApprove)
	if err != nil {
		t.Fatal(err)
	}
	// The approvers of the directory: everyone the shipped policy lets
	// approve there whom Slack knows, and never the requester.
	wantDMs := []string{"D0LOCALADM", "D0LOCALAP2", "D0LOCALAPR"}
	if _, err := h.Slack.WaitCount(ctx, len(wantDMs), func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("blocks"), dirID)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "response_url" && strings.Contains(c.Body, dirID) // the request is recorded with its DMs
	}); err != nil {
		t.Fatal(err)
	}
	dms := approverDMs(h.Slack, dirID)
	var got []string
	for ch, m := range dms {
		got = append(got, ch)
		if !strings.Contains(m.Blocks, "C0PLATDIR") || strings.Contains(m.Blocks, "Approvers:") {
			t.Errorf("the DM copy in %s should point at C0PLATDIR and mention nobody: %s", ch, m.Blocks)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, wantDMs) {
		t.Fatalf("the directory's request was DMed to %v, want %v", got, wantDMs)
	}
	if n := len(approverDMs(h.Slack, subID)); n != 0 {
		t.Errorf("the subaccount's route does not DM approvers, but %d DMs carry its buttons", n)
	}
	for _, c := range h.Slack.Calls() {
		if c.Method == "chat.postMessage" && c.Channel == localApprovals {
			t.Errorf("something was posted in CREDBOT_APPROVAL_CHANNEL, which no routed request should reach: %s", c.Text())
		}
	}

	// why says where the request went, and by which route.
	if _, why := h.slash(t, ctx, Requester, "why "+dirID); !strings.Contains(why.Body, `Posted in* \u003c#C0PLATDIR\u003e`) ||
		!strings.Contains(why.Body, `platform directory`) || !strings.Contains(why.Body, "sent to 3 approver(s) by DM") {
		t.Errorf("why does not say where the request went: %s", why.Body)
	}
	// A click in the routed channel approves and mints.
	if got := h.click(t, ctx, Approver, subMsg, blockkit.ActionApprove); !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approver in C0PLATSUB was told %s", got.Body)
	}
	// A click in an approver's DM does too.
	if got := h.click(t, ctx, Admin, dms["D0LOCALADM"], blockkit.ActionApprove); !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approver in their DM was told %s", got.Body)
	}
	if _, err := h.Slack.WaitCount(ctx, 2, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(requestsOf(h.BTP, "create")); n != 2 {
		t.Fatalf("%d creates at BTP, want 2", n)
	}
	// Every copy of the directory's request shows the decision: the channel
	// message and the DMs of the approvers who did not click.
	for _, ref := range []slackfake.Message{dirMsg, dms["D0LOCALAP2"], dms["D0LOCALAPR"], dms["D0LOCALADM"]} {
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.update" && c.Channel == ref.Channel && c.TS == ref.TS &&
				!strings.Contains(c.Params.Get("blocks"), blockkit.ActionApprove) && strings.Contains(c.Params.Get("blocks"), "Approved by")
		}); err != nil {
			t.Fatalf("the copy in %s was not updated: %v", ref.Channel, err)
		}
	}
	assertCallsHaveScopes(t, h.Slack)
}

// TestARoutedChannelTheBotIsNotInFallsBackToTheApprovalChannel: a route to a
// channel Slack refuses does not strand the request: it goes to
// CREDBOT_APPROVAL_CHANNEL with a warning that says what to fix, and the log
// says it too.
func TestARoutedChannelTheBotIsNotInFallsBackToTheApprovalChannel(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": routedPolicyDir(t)})
	ctx := ctxT(t)
	h.Slack.RemoveBot("C0PLATSUB", true)
	h.slash(t, ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name stray --reason "routing"`)
	msg := h.postedApproval(t, ctx, "stray")
	if msg.Channel != localApprovals {
		t.Fatalf("posted in %s, want the fallback %s", msg.Channel, localApprovals)
	}
	if !strings.Contains(msg.Blocks, "C0PLATSUB") || !strings.Contains(msg.Blocks, "not_in_channel") || !strings.Contains(msg.Blocks, "Invite the bot") {
		t.Errorf("the fallback message does not say what went wrong: %s", msg.Blocks)
	}
	if !strings.Contains(h.logs.String(), "/invite @credbot") {
		t.Errorf("the log does not say how to fix the route")
	}
	if got := h.click(t, ctx, Approver, msg, blockkit.ActionApprove); !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approver in the fallback channel was told %s", got.Body)
	}
	h.waitDM(t, ctx)
}

// TestReadinessNamesRoutedChannelsTheBotIsNotIn: routes.yaml channels are
// checked like CREDBOT_APPROVAL_CHANNEL: degraded, not unready, with the fix.
func TestReadinessNamesRoutedChannelsTheBotIsNotIn(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": routedPolicyDir(t)})
	ctx := ctxT(t)
	if _, r := h.readyz(t); !r.Dependencies["channel:routes"].OK {
		t.Fatalf("routed channels the bot is in: %+v", r.Dependencies["channel:routes"])
	}
	h.Slack.RemoveBot("C0PLATDIR", true)
	h.App.health.refresh(ctx)
	code, r := h.readyz(t)
	d := r.Dependencies["channel:routes"]
	if code != http.StatusOK || d.OK || d.Critical || !strings.Contains(d.Error, "C0PLATDIR") || strings.Contains(d.Error, "C0PLATSUB") || !strings.Contains(d.Fix, "/invite @credbot") {
		t.Fatalf("a routed channel without the bot: %d %+v", code, d)
	}
}
