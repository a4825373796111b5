package app

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
	"golang.org/x/oauth2/clientcredentials"
)

var rotationIDRE = regexp.MustCompile("Rotation `(r[0-9a-f]{12})`")

// live is the sorted names of the live credentials in the default scope.
func (h *harness) live() []string {
	l := h.BTP.Live(defaultScope)
	slices.Sort(l)
	return l
}

// secretWorks reports whether BTP grants a token for the credential of
// request id with secret.
func (h *harness) secretWorks(ctx context.Context, t *testing.T, id, secret string) bool {
	t.Helper()
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.Credential == nil {
		t.Fatalf("request %s: %v", id, err)
	}
	cc := clientcredentials.Config{ClientID: r.Credential.ClientID, ClientSecret: secret, TokenURL: r.Credential.TokenURL}
	_, err = cc.Token(ctx)
	return err == nil
}

// The whole rotation from Slack, where the owner rotates without approval:
// the new credential gets a new name and is revealed once; both live during
// the grace period; then credbot deletes the old one at BTP, marks its request
// DELETED with a note, and the new one alone works.
func TestOwnerRotatesFromSlackAndTheOldOneGoesAfterTheGrace(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_ROTATION_GRACE": "36h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	oldID, oldSecret := h.deliver(t, ctx, "ci-rotate")

	rotate := "rotate --subaccount " + btptest.DefaultSubaccount + " --name ci-rotate"
	if got := h.slashAs(t, ctx, Outsider, rotate); !strings.Contains(got, ":warning:") {
		t.Fatalf("someone else rotated the owner's credential: %s", got)
	}
	approvals := countCalls(h.Slack, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals })
	got := h.slashAs(t, ctx, Requester, rotate)
	m := rotationIDRE.FindStringSubmatch(got)
	if m == nil || !strings.Contains(got, "ci-rotate-r2") || !strings.Contains(got, "no approval needed") {
		t.Fatalf("rotate reply: %s", got)
	}
	newID := m[1]
	if again := h.slashAs(t, ctx, Requester, rotate); !strings.Contains(again, "already being rotated") {
		t.Fatalf("a second rotation of the same credential: %s", again)
	}
	newSecret := h.revealSecret(t, ctx, h.waitReveal(t, ctx, newID))
	if n := countCalls(h.Slack, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals }); n != approvals {
		t.Fatalf("a rotation the policy lets the owner do alone went to the approvers")
	}
	if got := h.live(); !slices.Equal(got, []string{"ci-rotate", "ci-rotate-r2"}) {
		t.Fatalf("during the grace period BTP holds %v, want both", got)
	}
	if !h.secretWorks(ctx, t, oldID, oldSecret) || !h.secretWorks(ctx, t, newID, newSecret) {
		t.Fatal("during the grace period both secrets must work")
	}
	nr, _ := h.App.Store.Get(ctx, newID)
	if nr.Rotates != oldID || nr.Action != approval.ActionRotate || nr.GraceUntil.IsZero() {
		t.Fatalf("rotation request %+v", nr)
	}
	// The reveal notice offers to retire the old one sooner.
	dm, _ := h.Slack.Message(nr.DMChannel, nr.DMTS)
	if !strings.Contains(dm.Blocks, blockkit.ActionRetireOld) {
		t.Fatalf("the revealed notice has no Retire button: %s\n%s", dm.Blocks, h.logs.String())
	}

	clock.Advance(35 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	if got := h.live(); len(got) != 2 {
		t.Fatalf("deleted before the grace period ended: %v", got)
	}
	clock.Advance(time.Hour + time.Second)
	sweepAll(t, ctx, []*App{h.App})
	if got := h.live(); !slices.Equal(got, []string{"ci-rotate-r2"}) {
		t.Fatalf("after the grace period BTP holds %v, want the new one only", got)
	}
	old, _ := h.App.Store.Get(ctx, oldID)
	if old.State != approval.StateDeleted {
		t.Fatalf("old request %s, want DELETED", old.State)
	}
	notes := h.auditNotes(t, ctx, oldID)
	if countContaining(notes, "replaced by ci-rotate-r2 (request "+newID+")") == 0 {
		t.Fatalf("the old request's audit trail does not say why it was deleted:\n%s", strings.Join(notes, "\n"))
	}
	nr, _ = h.App.Store.Get(ctx, newID)
	if !nr.RotationDone || nr.State != approval.StateDelivered {
		t.Fatalf("rotation request after the grace: %s done=%v", nr.State, nr.RotationDone)
	}
	if h.secretWorks(ctx, t, oldID, oldSecret) || !h.secretWorks(ctx, t, newID, newSecret) {
		t.Fatal("after the rotation only the new secret may work")
	}
	if h.BTP.Count("delete") != 1 {
		t.Fatalf("%d deletes at BTP, want exactly the old credential's", h.BTP.Count("delete"))
	}
	// Later sweeps change nothing.
	sweepAll(t, ctx, []*App{h.App})
	if got := h.live(); !slices.Equal(got, []string{"ci-rotate-r2"}) || h.BTP.Count("delete") != 1 {
		t.Fatalf("a later sweep: %v, %d deletes", got, h.BTP.Count("delete"))
	}

	// The new one rotates in its turn: -r2 becomes -r3.
	got = h.slashAs(t, ctx, Requester, "rotate --subaccount "+btptest.DefaultSubaccount+" --name ci-rotate-r2")
	if !strings.Contains(got, "ci-rotate-r3") {
		t.Fatalf("second rotation: %s", got)
	}
}

// From the expiry warning: Rotate starts a rotation; on the reveal notice,
// "Retire the old one" deletes the old credential at once, only for its owner.
func TestRotateFromTheExpiryWarningAndRetireTheOldOneNow(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	oldID, _ := h.deliver(t, ctx, "ci-warned")
	clock.Advance(84 * 24 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	warn, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionRotate)
	})
	if err != nil {
		t.Fatal(err)
	}
	wm, _ := h.Slack.Message(warn.Channel, warn.TS)
	got := h.click(t, ctx, Requester, wm, blockkit.ActionRotate)
	m := rotationIDRE.FindStringSubmatch(got.Body)
	if m == nil {
		t.Fatalf("rotate click: %s", got.Body)
	}
	newID := m[1]
	h.revealSecret(t, ctx, h.waitReveal(t, ctx, newID))
	// The reveal notice offers the retirement once the DM is rewritten
	// (after the reveal's answer): wait for that, not for the store.
	up, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return (c.Method == "chat.update" || c.Method == "chat.postMessage") && c.Channel == "D0LOCALREQ" &&
			strings.Contains(c.Params.Get("blocks"), blockkit.ActionRetireOld) && strings.Contains(c.Params.Get("blocks"), newID)
	})
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := h.Slack.Message(up.Channel, up.TS)
	if got := h.click(t, ctx, Approver, dm, blockkit.ActionRetireOld); !strings.Contains(got.Body, ":warning:") {
		t.Fatalf("someone else retired the owner's credential: %s", got.Body)
	}
	if got := h.live(); len(got) != 2 {
		t.Fatalf("live %v", got)
	}
	if got := h.click(t, ctx, Requester, dm, blockkit.ActionRetireOld); !strings.Contains(got.Body, "deleted at BTP") {
		t.Fatalf("retire: %s", got.Body)
	}
	if got := h.live(); !slices.Equal(got, []string{"ci-warned-r2"}) {
		t.Fatalf("after retiring BTP holds %v", got)
	}
	if old, _ := h.App.Store.Get(ctx, oldID); old.State != approval.StateDeleted {
		t.Fatalf("old request %s", old.State)
	}
	if again := h.click(t, ctx, Requester, dm, blockkit.ActionRetireOld); !strings.Contains(again.Body, "already deleted") {
		t.Fatalf("second retire: %s", again.Body)
	}
	if h.BTP.Count("delete") != 1 {
		t.Fatalf("%d deletes at BTP", h.BTP.Count("delete"))
	}
}

// Where the rotate quorum needs approval, a rotation waits for it like a
// create, and an unrevealed rotation never touches the old credential.
func TestRotationNeedingApprovalKeepsTheOldOneUntilRevealed(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	dir := policyWith(t, "default: 1\n")
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_POLICY_DIR": dir, "CREDBOT_ROTATION_GRACE": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	h.deliver(t, ctx, "ci-approved-rotation")
	mark := h.Slack.Mark()
	got := h.slashAs(t, ctx, Requester, "rotate --subaccount "+btptest.DefaultSubaccount+" --name ci-approved-rotation")
	if !strings.Contains(got, "once approved") {
		t.Fatalf("rotate reply: %s", got)
	}
	post, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "ci-approved-rotation-r2")
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.BTP.Count("create") != 1 {
		t.Fatal("created before approval")
	}
	newID, _, _ := slackfake.FindButton(post.Params.Get("blocks"), blockkit.ActionApprove)
	// why explains the rotation by the rotate rules, not create's.
	if why := h.slashAs(t, ctx, Requester, "why "+newID); !strings.Contains(why, "rotate in") || !strings.Contains(why, "0 of 1") {
		t.Fatalf("why on a rotation: %s", why)
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.waitReveal(t, ctx, newID)
	// Never revealed: the claim window revokes the new one; the old one stays.
	clock.Advance(16 * time.Minute)
	sweepAll(t, ctx, []*App{h.App})
	clock.Advance(2 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	if got := h.live(); !slices.Equal(got, []string{"ci-approved-rotation"}) {
		t.Fatalf("an unrevealed rotation left %v, want the old one only", got)
	}
}

// The Home tab offers Rotate on each delivered credential; the click, which
// has no response_url there, is answered in the owner's DM.
func TestRotateFromTheHomeTab(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	oldID, _ := h.deliver(t, ctx, "ci-home")
	if ack, err := h.Workspace.OpenHome(ctx, Requester); err != nil || ack.Status != 200 {
		t.Fatal(err)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "views.publish" && c.User == Requester.ID && strings.Contains(c.Body, blockkit.ActionRotate)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Workspace.ClickHome(ctx, Requester, blockkit.ActionRotate, oldID); err != nil {
		t.Fatal(err)
	}
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postEphemeral" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "ci-home-r2")
	})
	if err != nil {
		t.Fatal(err)
	}
	m := rotationIDRE.FindStringSubmatch(c.Text())
	if m == nil {
		t.Fatalf("reply: %s", c.Text())
	}
	h.revealSecret(t, ctx, h.waitReveal(t, ctx, m[1]))
	if got := h.live(); !slices.Equal(got, []string{"ci-home", "ci-home-r2"}) {
		t.Fatalf("live %v", got)
	}
}
