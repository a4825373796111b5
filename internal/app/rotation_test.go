package app

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// The sealing key is rotated between mint and reveal: a replica that lists the
// old key after the new one still reveals; one that lacks the old key cannot,
// and then the credential must not live on at BTP with a secret nobody holds.
func TestSealingKeyRotatedBetweenMintAndReveal(t *testing.T) {
	oldKey := approval.NewRandomKey()
	h := start(t, map[string]string{"CREDBOT_SECRET_KEY": oldKey})
	ctx := ctxT(t)

	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)

	// A replica on the rotated configuration reveals it.
	h.Config.SecretKey = approval.NewRandomKey() + "," + oldKey
	rotated, err := h.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	people := h.WorkspaceOf(rotated)
	ack, err := people.Click(ctx, Requester, dm, blockkit.ActionReveal)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("reveal: %d %v", ack.Status, err)
	}
	rev, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	m := secretRE.FindStringSubmatch(rev.Body)
	if m == nil {
		t.Fatalf("no secret after rotation: %s", rev.Body)
	}
	h.assertWorks(t, ctx, id, m[1])

	// The old key dropped too early: a second request's secret cannot be opened.
	second := h.slashReply(t, ctx, strings.Replace(createText, "ci-payments", "ci-second", 1))
	if !strings.Contains(second, "waiting for approval") {
		t.Fatal(second)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "ci-second")
	})
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, m2, blockkit.ActionApprove)
	dm2, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) && c.TS != dm.TS
	})
	if err != nil {
		t.Fatal(err)
	}
	dmMsg, _ := h.Slack.Message(dm2.Channel, dm2.TS)
	// Only a replica without the old key is left to do the reveal.
	h.App.Drain()
	rotated.Drain()
	h.Config.SecretKey = approval.NewRandomKey()
	lost, err := h.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ack, err = h.WorkspaceOf(lost).Click(ctx, Requester, dmMsg, blockkit.ActionReveal)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("reveal: %d %v", ack.Status, err)
	}
	reply, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply.Body, "could not unseal") || secretRE.MatchString(reply.Body) {
		t.Fatalf("reveal without the sealing key answered %s", reply.Body)
	}
	id2, _, _ := slackfake.FindButton(dmMsg.Blocks, blockkit.ActionReveal)
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "could not be shown")
	}); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.App.Store.Get(ctx, id2); r.State != approval.StateRevoked {
		t.Fatalf("state %s, want REVOKED", r.State)
	}
	if live := h.BTP.Live(defaultScope); slices.Contains(live, "ci-second") || !slices.Contains(live, "ci-payments") {
		t.Fatalf("live %v: the unreadable credential must be deleted, the revealed one kept", live)
	}
}
