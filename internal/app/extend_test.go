package app

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// deliver asks for a credential named name, has Approver approve it and the
// requester reveal it, all through signed Slack requests, and returns its
// request id and secret.
func (h *harness) deliver(t *testing.T, ctx context.Context, name string) (id, secret string) {
	t.Helper()
	mark := h.Slack.Mark()
	ack, err := h.Workspace.Slash(ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name `+name+` --reason "rotation test"`)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), name)
	})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ = slackfake.FindButton(post.Params.Get("blocks"), blockkit.ActionApprove)
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	return id, h.revealSecret(t, ctx, h.waitReveal(t, ctx, id))
}

// waitReveal waits for the Reveal DM of request id.
func (h *harness) waitReveal(t *testing.T, ctx context.Context, id string) slackfake.Message {
	t.Helper()
	dm, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		if c.Method != "chat.postMessage" || c.Channel != "D0LOCALREQ" {
			return false
		}
		v, _, err := slackfake.FindButton(c.Params.Get("blocks"), blockkit.ActionReveal)
		return err == nil && v == id
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(dm.Channel, dm.TS)
	return m
}

// slashAs sends a slash command typed by p and returns the reply the bot
// posts to its response_url after the ack.
func (h *harness) slashAs(t *testing.T, ctx context.Context, p slackfake.Person, text string) string {
	t.Helper()
	ack, err := h.Workspace.Slash(ctx, p, text)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash %q: %d %v", text, ack.Status, err)
	}
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	return c.Body
}

// auditNotes returns the notes of the audit trail's entries for request id.
func (h *harness) auditNotes(t *testing.T, ctx context.Context, id string) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := h.App.Store.ExportAudit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, `"request_id":"`+id+`"`) {
			notes = append(notes, line)
		}
	}
	return notes
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// An owner extends their credential from Slack without approval where the
// extend quorum needs none: the expiry moves, never past CREDBOT_MAX_LIFETIME
// from now (the reply says when it was capped), every extension is in the
// audit trail, BTP is not touched, and nobody else may extend it.
func TestOwnerExtendsFromSlackCappedAtMaxLifetime(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	id, _ := h.deliver(t, ctx, "ci-extend")
	r0, _ := h.App.Store.Get(ctx, id)

	clock.Advance(40 * 24 * time.Hour)
	if got := h.slashAs(t, ctx, Outsider, "extend "+id+" --by 30d"); !strings.Contains(got, ":warning:") {
		t.Fatalf("someone else extended the owner's credential: %s", got)
	}
	got := h.slashAs(t, ctx, Requester, "extend "+id+" --by 30d")
	if !strings.Contains(got, "Extended by 30d") || strings.Contains(got, "capped") {
		t.Fatalf("first extension: %s", got)
	}
	r1, _ := h.App.Store.Get(ctx, id)
	if !r1.ExpiresAt.Equal(r0.ExpiresAt.Add(30 * 24 * time.Hour)) {
		t.Fatalf("expires %v, want %v", r1.ExpiresAt, r0.ExpiresAt.Add(30*24*time.Hour))
	}

	// 80 days left; 30 more would be 110: capped at 90 from now.
	got = h.slashAs(t, ctx, Requester, "extend "+id+" --by 30d")
	if !strings.Contains(got, "capped") || !strings.Contains(got, "CREDBOT_MAX_LIFETIME") {
		t.Fatalf("capped extension does not say so: %s", got)
	}
	r2, _ := h.App.Store.Get(ctx, id)
	if want := clock.Now().Add(90 * 24 * time.Hour).UTC(); !r2.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v, want %v (90d from now)", r2.ExpiresAt, want)
	}
	if got := h.slashAs(t, ctx, Requester, "extend "+id+" --by 1d"); !strings.Contains(got, "cannot be extended further") {
		t.Fatalf("extension past the maximum: %s", got)
	}

	notes := h.auditNotes(t, ctx, id)
	if n := countContaining(notes, "extended by 30d"); n != 2 {
		t.Fatalf("%d extensions in the audit trail, want 2:\n%s", n, strings.Join(notes, "\n"))
	}
	if n := countContaining(notes, "capped"); n != 1 {
		t.Fatalf("%d capped extensions in the audit trail, want 1", n)
	}
	if n := countContaining(notes, `"rule":"p, role:requester, globalaccount:acme-ga, extend, allow`); n != 2 {
		t.Fatalf("the extensions' audit entries name the deciding rule %d times, want 2:\n%s", n, strings.Join(notes, "\n"))
	}
	if h.BTP.Count("create") != 1 || h.BTP.Count("delete") != 0 {
		t.Fatalf("BTP got %d creates and %d deletes: extending must not touch BTP", h.BTP.Count("create"), h.BTP.Count("delete"))
	}

	// The credential lives to its new expiry and no longer.
	clock.Advance(89 * 24 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("deleted before its extended expiry: %v", live)
	}
	clock.Advance(24*time.Hour + time.Second)
	sweepAll(t, ctx, []*App{h.App})
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("still live after its extended expiry: %v", live)
	}
}

// policyWith copies the shipped policy with another quorum.yaml.
func policyWith(t *testing.T, quorum string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || strings.HasSuffix(e.Name(), "_test.yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("../../policies", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "quorum.yaml" {
			b = []byte(quorum)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Where the extend quorum needs an approval, the extension waits for it:
// the approvers get a message with its own buttons, the owner cannot approve
// it, and an approver's click applies it and tells the owner. The expiry
// warning's Extend button asks the same way.
func TestExtensionWaitsForItsOwnQuorum(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	dir := policyWith(t, "default: 1\nrules:\n  - name: every extension needs one approval\n    action: extend\n    scope: '**'\n    approvals: 1\n")
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_POLICY_DIR": dir}, Deps{Clock: clock})
	ctx := ctxT(t)
	id, _ := h.deliver(t, ctx, "ci-extend-approved")
	r0, _ := h.App.Store.Get(ctx, id)

	clock.Advance(84 * 24 * time.Hour) // the expiry warning is due
	sweepAll(t, ctx, []*App{h.App})
	warn, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionExtend)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{blockkit.ActionRotate, blockkit.ActionExtend, blockkit.ActionDeleteOwn} {
		if !strings.Contains(warn.Params.Get("blocks"), a) {
			t.Fatalf("the expiry warning lacks %s", a)
		}
	}
	wm, _ := h.Slack.Message(warn.Channel, warn.TS)
	mark := h.Slack.Mark()
	if got := h.click(t, ctx, Requester, wm, blockkit.ActionExtend); !strings.Contains(got.Body, "needs approval") {
		t.Fatalf("extend click: %s", got.Body)
	}
	post, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), blockkit.ActionExtendApprove)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(post.Params.Get("blocks"), "Extend by: 90d") {
		t.Fatalf("the approvers are not told by how much: %s", post.Params.Get("blocks"))
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	if got := h.click(t, ctx, Requester, msg, blockkit.ActionExtendApprove); !strings.Contains(got.Body, ":warning:") {
		t.Fatalf("the owner approved their own extension: %s", got.Body)
	}
	if r, _ := h.App.Store.Get(ctx, id); !r.ExpiresAt.Equal(r0.ExpiresAt) {
		t.Fatalf("extended before approval: %v", r.ExpiresAt)
	}
	if got := h.click(t, ctx, Approver, msg, blockkit.ActionExtendApprove); !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approve: %s", got.Body)
	}
	r1, _ := h.App.Store.Get(ctx, id)
	// 6 days were left; 90 more would be 96 from now: capped at 90.
	if want := clock.Now().Add(90 * 24 * time.Hour).UTC(); !r1.ExpiresAt.Equal(want) || r1.Extension != nil || r1.ExpiryWarned {
		t.Fatalf("after approval: expires %v (want %v), extension %+v, warned %v", r1.ExpiresAt, want, r1.Extension, r1.ExpiryWarned)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "extension of \"ci-extend-approved\" was approved")
	}); err != nil {
		t.Fatal("the owner was not told: ", err)
	}
	updated, _ := h.Slack.Message(post.Channel, post.TS)
	if strings.Contains(updated.Blocks, blockkit.ActionExtendApprove) || !strings.Contains(updated.Blocks, "Approved by") {
		t.Fatalf("the approval message still offers its buttons: %s", updated.Blocks)
	}
	if again := h.click(t, ctx, Approver, msg, blockkit.ActionExtendApprove); !strings.Contains(again.Body, "no extension") {
		t.Fatalf("a second approval: %s", again.Body)
	}
	notes := h.auditNotes(t, ctx, id)
	if countContaining(notes, "extension by 90d asked") != 1 || countContaining(notes, "extended by 90d") != 1 {
		t.Fatalf("audit trail:\n%s", strings.Join(notes, "\n"))
	}

	// A denied extension changes nothing and says so.
	clock.Advance(24 * time.Hour)
	mark = h.Slack.Mark()
	if got := h.slashAs(t, ctx, Requester, "extend "+id+" --by 1d"); !strings.Contains(got, "needs approval") {
		t.Fatalf("second extension: %s", got)
	}
	post, err = h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), blockkit.ActionExtendDeny)
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ = h.Slack.Message(post.Channel, post.TS)
	if got := h.click(t, ctx, Approver, msg, blockkit.ActionExtendDeny); !strings.Contains(got.Body, "Denied") {
		t.Fatalf("deny: %s", got.Body)
	}
	if r, _ := h.App.Store.Get(ctx, id); !r.ExpiresAt.Equal(r1.ExpiresAt) || r.Extension != nil || r.State != approval.StateDelivered {
		t.Fatalf("a denied extension changed the credential: %s, expires %v", r.State, r.ExpiresAt)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "was denied")
	}); err != nil {
		t.Fatal("the owner was not told of the denial: ", err)
	}

	// An extension nobody decided lapses; asked again, the old message's
	// buttons do not decide the new one.
	ask := func() slackfake.Message {
		t.Helper()
		mark := h.Slack.Mark()
		if got := h.slashAs(t, ctx, Requester, "extend "+id+" --by 1d"); !strings.Contains(got, "needs approval") {
			t.Fatalf("extension: %s", got)
		}
		post, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), blockkit.ActionExtendApprove)
		})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := h.Slack.Message(post.Channel, post.TS)
		return m
	}
	stale := ask()
	clock.Advance(25 * time.Hour) // past CREDBOT_PENDING_TTL
	fresh := ask()
	if got := h.click(t, ctx, Approver, stale, blockkit.ActionExtendApprove); !strings.Contains(got.Body, "asked again") {
		t.Fatalf("the lapsed extension's message decided the new one: %s", got.Body)
	}
	if r, _ := h.App.Store.Get(ctx, id); !r.ExpiresAt.Equal(r1.ExpiresAt) || r.Extension == nil {
		t.Fatalf("after a click on the lapsed message: expires %v, extension %+v", r.ExpiresAt, r.Extension)
	}
	if got := h.click(t, ctx, Approver, fresh, blockkit.ActionExtendApprove); !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approve the new one: %s", got.Body)
	}
	if r, _ := h.App.Store.Get(ctx, id); !r.ExpiresAt.Equal(r1.ExpiresAt.Add(24 * time.Hour)) {
		t.Fatalf("after the new extension: expires %v, want %v", r.ExpiresAt, r1.ExpiresAt.Add(24*time.Hour))
	}
}
