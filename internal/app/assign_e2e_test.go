package app

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// Just-in-time role collections end to end (issue 13 §2): signed slash
// commands and clicks into the real handler, a real redis-server, the BTP
// emulator (which keeps users' role collections) and the fake Slack. In the
// shipped policy ada (Requester) may ask for "Subaccount Viewer"; grace
// (Approver) approves. ada's Slack profile e-mail is u0localreq@example.com.

var adaAtBTP = approval.BTPUser{Origin: approval.DefaultUserOrigin, Name: "u0localreq@example.com"}

const viewerRC = "Subaccount Viewer"

func assignText(rc, dur, reason string) string {
	return `assign --role-collection "` + rc + `" ` + subacct + " --for " + dur + ` --reason "` + reason + `"`
}

// assignmentApproval waits for the approval message of a role collection.
func (h *harness) assignmentApproval(t *testing.T, ctx context.Context, rc string) slackfake.Message {
	t.Helper()
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.ThreadTS == "" &&
			strings.Contains(c.Params.Get("blocks"), `"Role collection: `+rc+`"`)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(post.Channel, post.TS)
	return m
}

// dmText waits for a DM to the requester whose text holds want.
func (h *harness) dmText(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), want)
	})
	if err != nil {
		t.Fatalf("no DM saying %q: %v", want, err)
	}
	return c.Params.Get("text")
}

func (h *harness) assignmentOf(t *testing.T, ctx context.Context) *approval.Request {
	t.Helper()
	reqs, err := h.App.Service.Assignments(ctx, Requester.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	mine, _, _ := h.App.Service.Requests(ctx, Requester.ID)
	for _, r := range mine {
		if r.Assignment != nil {
			return r
		}
	}
	if len(reqs) > 0 {
		return reqs[0]
	}
	t.Fatal("no assignment request")
	return nil
}

func TestAssignApproveConfirmWarnAndUnassignAtTheEnd(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)

	ack, answer := h.slash(t, ctx, Requester, assignText(viewerRC, "4s", "debug the viewer <!channel>"))
	if !strings.Contains(ack.Body, "Submitting") || !strings.Contains(answer.Body, "waiting for approval") ||
		!strings.Contains(answer.Body, adaAtBTP.Name) {
		t.Fatalf("ack %s, answer %s", ack.Body, answer.Body)
	}
	msg := h.assignmentApproval(t, ctx, viewerRC)
	for _, want := range []string{`"BTP user: ` + adaAtBTP.Name + ` (origin sap.default)"`, `"For: `, `"Reason: debug the viewer \u003c!channel\u003e"`} {
		if !strings.Contains(msg.Blocks, want) {
			t.Errorf("approval message lacks %s: %s", want, msg.Blocks)
		}
	}
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); got != nil {
		t.Fatalf("assigned before approval: %q", got)
	}
	if a := h.click(t, ctx, Approver, msg, blockkit.ActionApprove); !strings.Contains(a.Body, "being assigned") {
		t.Fatalf("approve answer %s", a.Body)
	}

	confirm := h.dmText(t, ctx, "You now hold role collection")
	if !strings.Contains(confirm, `"Subaccount Viewer"`) || !strings.Contains(confirm, adaAtBTP.Name) || !strings.Contains(confirm, " until ") {
		t.Errorf("confirmation %q", confirm)
	}
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); !slices.Equal(got, []string{viewerRC}) {
		t.Fatalf("BTP holds %q after the assign", got)
	}
	r := h.assignmentOf(t, ctx)
	if r.State != approval.StateAssigned || r.Assignment.PreExisting || r.Assignment.AbsentAt.IsZero() || !slices.Equal(r.Assignment.Held, []string{viewerRC}) {
		t.Fatalf("request %+v %+v", r, r.Assignment)
	}
	// /credbot assignments lists it.
	if _, list := h.slash(t, ctx, Requester, "assignments"); !strings.Contains(list.Body, r.ID) || !strings.Contains(list.Body, "Subaccount Viewer") {
		t.Errorf("assignments: %s", list.Body)
	}

	h.dmText(t, ctx, "ends at")
	end := h.dmText(t, ctx, "credbot unassigned it")
	if !strings.Contains(end, "BTP confirms") {
		t.Errorf("end DM %q", end)
	}
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); len(got) != 0 {
		t.Fatalf("BTP still holds %q after the end", got)
	}
	if n := h.BTP.CountCommand("security/role-collection", "assign"); n != 1 {
		t.Errorf("%d assigns", n)
	}
	if n := h.BTP.CountCommand("security/role-collection", "unassign"); n != 1 {
		t.Errorf("%d unassigns", n)
	}
	r, _ = h.App.Service.Status(ctx, r.ID)
	if r.State != approval.StateEnded {
		t.Fatalf("state %s", r.State)
	}
	audit := h.auditText(t, ctx)
	for _, want := range []string{"assign:Subaccount Viewer", "assigning it", "assigned at BTP", "unassigned at BTP"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %q", want)
		}
	}
}

// A role collection the user already held is not assigned, and never
// unassigned: credbot never removes access it did not grant.
func TestAssignOfACollectionAlreadyHeldNeverUnassignsIt(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.BTP.AssignRoleCollection(defaultScope, viewerRC, adaAtBTP)

	h.slash(t, ctx, Requester, assignText(viewerRC, "3s", "look around"))
	h.click(t, ctx, Approver, h.assignmentApproval(t, ctx, viewerRC), blockkit.ActionApprove)
	if msg := h.dmText(t, ctx, "You already hold role collection"); !strings.Contains(msg, "will not remove it") {
		t.Errorf("DM %q", msg)
	}
	h.dmText(t, ctx, "You still hold it")
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); !slices.Equal(got, []string{viewerRC}) {
		t.Fatalf("BTP holds %q: credbot removed access it did not grant", got)
	}
	if n := h.BTP.CountCommand("security/role-collection", "assign") + h.BTP.CountCommand("security/role-collection", "unassign"); n != 0 {
		t.Fatalf("%d assigns or unassigns for a pre-existing collection", n)
	}
}

func TestAssignRefusals(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_ASSIGN_MAX_FOR": "1h"})
	ctx := ctxT(t)
	cases := []struct {
		who  slackfake.Person
		text string
		want string
	}{
		{Requester, assignText(viewerRC, "2h", "too long"), "at most 1h"},
		{Requester, assignText("Global Account Administrator", "1h", "not allowed"), "may not ask for role collection"},
		{Approver, assignText(viewerRC, "1h", "approvers are no requesters"), "may not ask for role collection"},
	}
	for _, c := range cases {
		_, answer := h.slash(t, ctx, c.who, c.text)
		if !strings.Contains(answer.Body, c.want) {
			t.Errorf("%s: answer %s, want %q", c.text, answer.Body, c.want)
		}
	}
	// Hostile text never gets past the grammar.
	for _, text := range []string{
		`assign --role-collection "Viewer, <!channel>" ` + subacct + ` --for 1h --reason x`,
		`assign --role-collection "p, role:x, **, assign:*, allow" ` + subacct + ` --for 1h --reason x`,
		`assign --role-collection Subaccount Viewer ` + subacct + ` --for 1h --reason x`,
		`assign --role-collection "Subaccount Viewer" ` + subacct + ` --for forever --reason x`,
		`assign --role-collection "Subaccount Viewer" ` + subacct + ` --for 1h --reason x --user someone@example.com`,
	} {
		ack, err := h.Workspace.Slash(ctx, Requester, text)
		if err != nil || !strings.Contains(ack.Body, ":warning:") {
			t.Errorf("%s: ack %s %v", text, ack.Body, err)
		}
	}
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "Role collection:")
	}); n != 0 {
		t.Fatalf("%d approval messages for refused requests", n)
	}
	if n := h.BTP.CountCommand("security/role-collection", "assign"); n != 0 {
		t.Fatalf("%d assigns", n)
	}
}

// The requester, or an admin of the scope, ends it early.
func TestAdminEndsAnAssignmentEarly(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.slash(t, ctx, Requester, assignText(viewerRC, "1h", "long debugging"))
	h.click(t, ctx, Approver, h.assignmentApproval(t, ctx, viewerRC), blockkit.ActionApprove)
	h.dmText(t, ctx, "You now hold role collection")
	r := h.assignmentOf(t, ctx)

	if _, a := h.slash(t, ctx, Approver, "unassign "+r.ID); !strings.Contains(a.Body, "only its requester or an admin") {
		t.Fatalf("approver's unassign: %s", a.Body)
	}
	if _, list := h.slash(t, ctx, Admin, "assignments --all"); !strings.Contains(list.Body, r.ID) {
		t.Fatalf("admin's list: %s", list.Body)
	}
	if _, a := h.slash(t, ctx, Admin, "unassign "+r.ID); !strings.Contains(a.Body, "BTP confirms") {
		t.Fatalf("admin's unassign: %s", a.Body)
	}
	h.dmText(t, ctx, "was ended early by")
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); len(got) != 0 {
		t.Fatalf("BTP still holds %q", got)
	}
}

// A bare /credbot assign opens the form; a bad field keeps it open with the
// error beside the field, and a good one goes to the approvers like the
// command, for the submitter's own BTP user.
func TestAssignFromTheForm(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	ack, err := h.Workspace.Slash(ctx, Requester, "assign")
	if err != nil || ack.Status != 200 {
		t.Fatal(ack.Status, err)
	}
	viewID, _ := openedView(t, h, ack)
	values := map[string]string{"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount,
		"role_collection": "Viewer, <!channel>", "for": "2h", "reason": "from the form"}
	if a, err := h.Workspace.SubmitView(ctx, Requester, viewID, values); err != nil || !strings.Contains(a.Body, "role_collection") {
		t.Fatalf("hostile role collection: %q %v", a.Body, err)
	}
	values["role_collection"] = viewerRC
	if a, err := h.Workspace.SubmitView(ctx, Requester, viewID, values); err != nil || a.Body != "" {
		t.Fatalf("submit: %q %v", a.Body, err)
	}
	msg := h.assignmentApproval(t, ctx, viewerRC)
	if !strings.Contains(msg.Blocks, `"BTP user: `+adaAtBTP.Name) || !strings.Contains(msg.Blocks, `"Reason: from the form"`) {
		t.Fatalf("approval message %s", msg.Blocks)
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.dmText(t, ctx, "You now hold role collection")
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); !slices.Equal(got, []string{viewerRC}) {
		t.Fatalf("BTP holds %q", got)
	}
}
