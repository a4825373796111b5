package app

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// Break-glass end to end (issue 13 §1): signed slash commands and clicks into
// the real handler, a real redis-server, the BTP emulator and the fake Slack.
// In the shipped policy ada (Requester) is on call and may break glass; root
// (Admin) reviews; grace (Approver) may approve but neither break glass nor
// review.

const (
	bgRule       = "p, role:oncall, globalaccount:acme-ga, breakglass, allow"
	bgEscalation = "C0ESCALATE"
)

func bgText(name, reason string) string {
	return "breakglass " + subacct + " --name " + name + ` --reason "` + reason + `"`
}

func bgEnv(extra map[string]string) map[string]string {
	env := map[string]string{"CREDBOT_BREAKGLASS_ESCALATION": bgEscalation}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// alert waits for the first break-glass alert for name in channel (one with
// the review buttons) and returns the message as it is now.
func (h *harness) alert(t *testing.T, ctx context.Context, channel, name string) slackfake.Message {
	t.Helper()
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == channel && c.ThreadTS == "" &&
			strings.Contains(c.Params.Get("blocks"), blockkit.ActionAcknowledge) && strings.Contains(c.Params.Get("blocks"), `"Name: `+name+`"`)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(post.Channel, post.TS)
	return m
}

func (h *harness) auditText(t *testing.T, ctx context.Context) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := h.App.Store.ExportAudit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBreakglassIssuesAtOnceAlertsAndRevealsOnce(t *testing.T) {
	h := start(t, bgEnv(nil))
	ctx := ctxT(t)

	ack, answer := h.slash(t, ctx, Requester, bgText("bg-payments", "INC-1234: payments down <!channel>"))
	if !strings.Contains(ack.Body, "Breaking glass") || !strings.Contains(answer.Body, "without approval") {
		t.Fatalf("ack %s, answer %s", ack.Body, answer.Body)
	}
	// The alert reaches the break-glass channel (the audit channel by
	// default) and the escalation target, each with both buttons.
	for _, ch := range []string{localAudit, bgEscalation} {
		m := h.alert(t, ctx, ch, "bg-payments")
		if _, _, err := slackfake.FindButton(m.Blocks, blockkit.ActionRevokeNow); err != nil {
			t.Fatalf("alert in %s has no Revoke now: %s", ch, m.Blocks)
		}
		for _, want := range []string{`\u003c@` + Requester.ID, `"Reason: INC-1234: payments down \u003c!channel\u003e"`, `without approval`, `Expires: `} {
			if !strings.Contains(m.Blocks, want) {
				t.Errorf("alert in %s lacks %s: %s", ch, want, m.Blocks)
			}
		}
		if !strings.Contains(m.Blocks, `\u003c@`+Admin.ID) {
			t.Errorf("alert in %s does not mention the reviewer: %s", ch, m.Blocks)
		}
	}
	// Without any approval, the requester gets the Reveal button.
	dm := h.waitDM(t, ctx)
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), blockkit.ActionApprove)
	}); n != 0 {
		t.Fatalf("%d approval messages for a break-glass", n)
	}
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	secret := h.revealSecret(t, ctx, dm)
	h.assertWorks(t, ctx, id, secret)
	if again := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); strings.Contains(again.Body, secret) {
		t.Fatal("revealed twice")
	}
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates", n)
	}
	r, err := h.App.Service.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Breakglass || r.State != approval.StateDelivered || r.Lifetime != h.Config.BreakglassLifetime {
		t.Fatalf("request %+v", r)
	}
	// The alert now says when it expires.
	m, _ := h.Slack.Message(localAudit, r.Alerts[0].TS)
	if !strings.Contains(m.Blocks, "Expires: "+r.ExpiresAt.UTC().Format("2006-01-02 15:04")) {
		t.Errorf("alert does not show the expiry %s: %s", r.ExpiresAt, m.Blocks)
	}
	audit := h.auditText(t, ctx)
	if !strings.Contains(audit, `"to":"APPROVED","actor":"`+Requester.ID) || !strings.Contains(audit, `"rule":"`+bgRule+` (policy.csv:`) ||
		!strings.Contains(audit, `"policy_hash":"`+h.App.Policy.Hash()+`","note":"break-glass: issued without approval`) {
		t.Errorf("the break-glass is not audited with its rule and policy hash:\n%s", audit)
	}
}

func TestBreakglassRefusedLeavesNoSideEffect(t *testing.T) {
	h := start(t, bgEnv(nil))
	ctx := ctxT(t)
	for _, c := range []struct {
		who  slackfake.Person
		text string
		want string
	}{
		{Approver, bgText("bg-nope", "INC-1: outage"), "you may not break glass"},
		{Outsider, bgText("bg-nope", "INC-1: outage"), "you may not break glass"},
		{Requester, bgText("bg-nope", "the database is down"), "must name the incident or ticket"},
		{Requester, "breakglass " + subacct + " --name bg-nope", "breakglass needs --reason"},
		{Requester, "breakglass " + subacct + ` --name bg-nope --reason "INC-1: x" --expires-in 5h`, "at most 4h"},
		{Requester, "breakglass --subaccount 44444444-5555-4666-8777-888888888888 --name bg-nope --reason \"INC-1: x\"", "you may not break glass"},
	} {
		ack, err := h.Workspace.Slash(ctx, c.who, c.text)
		if err != nil {
			t.Fatal(err)
		}
		body := ack.Body
		if !strings.Contains(body, c.want) && strings.Contains(body, "Breaking glass") {
			body = h.answer(t, ctx, ack).Body
		}
		if !strings.Contains(body, c.want) {
			t.Errorf("%s: %q: told %s, want %q", c.who.Name, c.text, body, c.want)
		}
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates at BTP", n)
	}
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return strings.Contains(c.Params.Get("blocks"), blockkit.ActionAcknowledge)
	}); n != 0 {
		t.Fatalf("%d alerts for refused break-glass", n)
	}
	for k := range h.redis.Dump(t) {
		if strings.Contains(k, ":breakglass") || strings.Contains(k, ":req:") || strings.Contains(k, "bg-nope") {
			t.Errorf("a refused break-glass left %s in Redis", k)
		}
	}
	if audit := h.auditText(t, ctx); !strings.Contains(audit, `"event":"refused","action":"breakglass"`) {
		t.Errorf("refusals are not audited:\n%s", audit)
	}
}

func TestBreakglassOnePerUserAndRevokeNowDeletesAtBTP(t *testing.T) {
	h := start(t, bgEnv(nil))
	ctx := ctxT(t)
	h.slash(t, ctx, Requester, bgText("bg-first", "INC-7: first"))
	alert := h.alert(t, ctx, localAudit, "bg-first")
	dm := h.waitDM(t, ctx)
	h.revealSecret(t, ctx, dm)

	_, second := h.slash(t, ctx, Requester, bgText("bg-second", "INC-8: second"))
	if !strings.Contains(second.Body, "already hold a live break-glass") {
		t.Fatalf("second break-glass: %s", second.Body)
	}
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates, want 1", n)
	}

	// Reviewers are authorized at click time: not the requester, not an
	// approver, only someone the policy lets review.
	if got := h.click(t, ctx, Requester, alert, blockkit.ActionRevokeNow); !strings.Contains(got.Body, "cannot revoke your own") {
		t.Fatalf("requester revoking: %s", got.Body)
	}
	if got := h.click(t, ctx, Approver, alert, blockkit.ActionRevokeNow); !strings.Contains(got.Body, "may not review") {
		t.Fatalf("approver revoking: %s", got.Body)
	}
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes after refused clicks", n)
	}
	got := h.click(t, ctx, Admin, alert, blockkit.ActionRevokeNow)
	if !strings.Contains(got.Body, "Revoked") {
		t.Fatalf("admin revoking: %s", got.Body)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("still live at BTP: %v", live)
	}
	if dels := requestsOf(h.BTP, "delete"); len(dels) != 1 || dels[0].Params["name"] != "bg-first" {
		t.Fatalf("deletes at BTP: %+v", dels)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "was revoked by")
	}); err != nil {
		t.Fatal("the user was not told of the revocation")
	}
	upd, _ := h.Slack.Message(alert.Channel, alert.TS)
	if strings.Contains(upd.Blocks, blockkit.ActionRevokeNow) || !strings.Contains(upd.Blocks, "Revoked by") {
		t.Fatalf("alert not updated: %s", upd.Blocks)
	}
	if got := h.click(t, ctx, Admin, alert, blockkit.ActionAcknowledge); !strings.Contains(got.Body, "Acknowledged") {
		t.Logf("ack after revoke: %s", got.Body) // allowed: the review is recorded
	}
	// Once it ended, the user may break glass again.
	_, third := h.slash(t, ctx, Requester, bgText("bg-third", "INC-9: third"))
	if !strings.Contains(third.Body, "without approval") {
		t.Fatalf("break-glass after the first ended: %s", third.Body)
	}
	h.alert(t, ctx, localAudit, "bg-third")
}

func TestBreakglassEscalatesUntilAcknowledged(t *testing.T) {
	h := start(t, bgEnv(map[string]string{"CREDBOT_BREAKGLASS_REVIEW": "1s", "CREDBOT_BREAKGLASS_LIFETIME": "30m"}))
	ctx := ctxT(t)
	h.slash(t, ctx, Requester, bgText("bg-esc", "OPS-42: queue stuck"))
	alert := h.alert(t, ctx, localAudit, "bg-esc")
	escalated := func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == bgEscalation && strings.Contains(c.Params.Get("text"), "not acknowledged")
	}
	// Nobody acknowledges: it escalates, and keeps escalating.
	if _, err := h.Slack.WaitCount(ctx, 3, escalated); err != nil {
		t.Fatalf("three escalations: %v", err)
	}
	esc, _ := h.Slack.WaitFor(ctx, escalated)
	if m, _ := h.Slack.Message(esc.Channel, esc.TS); !strings.Contains(m.Blocks, blockkit.ActionAcknowledge) {
		t.Fatalf("an escalation without buttons: %s", m.Blocks)
	}
	if got := h.click(t, ctx, Requester, alert, blockkit.ActionAcknowledge); !strings.Contains(got.Body, "cannot acknowledge your own") {
		t.Fatalf("self-acknowledge: %s", got.Body)
	}
	got := h.click(t, ctx, Admin, alert, blockkit.ActionAcknowledge)
	if !strings.Contains(got.Body, "Acknowledged") {
		t.Fatalf("acknowledge: %s", got.Body)
	}
	id, _, _ := slackfake.FindButton(alert.Blocks, blockkit.ActionAcknowledge)
	r, err := h.App.Service.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.AckedBy != Admin.ID || r.Escalations < 3 {
		t.Fatalf("acked by %q after %d escalations", r.AckedBy, r.Escalations)
	}
	// No escalation is scheduled any more: the request's one deadline is
	// its claim window or expiry, minutes away, not the 1s review.
	score, err := h.redis.Client.ZScore(ctx, h.App.Store.Prefix()+":deadlines", id).Result()
	if err != nil {
		t.Fatal(err)
	}
	if min := r.UpdatedAt.Add(h.Config.ClaimWindow / 2).UnixMilli(); int64(score) < min {
		t.Fatalf("deadline %v after acknowledgement: escalations would go on", score)
	}
	if got := h.click(t, ctx, Admin, alert, blockkit.ActionAcknowledge); !strings.Contains(got.Body, "already acknowledged") {
		t.Fatalf("second acknowledge: %s", got.Body)
	}
	if audit := h.auditText(t, ctx); !strings.Contains(audit, "break-glass escalation 3") || !strings.Contains(audit, `"rule":"p, role:admin, globalaccount:acme-ga, review, allow (policy.csv:`) ||
		!strings.Contains(audit, `"note":"break-glass acknowledged"`) {
		t.Errorf("escalations and the acknowledgement are not audited with the rule:\n%s", audit)
	}
}

func TestBreakglassWorkerKilledMidIssue(t *testing.T) {
	for _, step := range []string{"claim", "create", "seal"} {
		t.Run("after "+step, func(t *testing.T) {
			key := approval.NewRandomKey()
			h := start(t, bgEnv(map[string]string{"CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key}))
			ctx := ctxT(t)
			h.slash(t, ctx, Requester, bgText("bg-crash", "INC-5: crash"))
			h.alert(t, ctx, localAudit, "bg-crash")
			h.killWorkerAt(t, ctx, key, step)

			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { h.App.Service.RunMinter(rctx, "rescuer", 0); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			dm := h.waitDM(t, ctx)
			id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
			secret := h.revealSecret(t, ctx, dm)
			h.assertWorks(t, ctx, id, secret)
			if live := h.BTP.Live(defaultScope); len(live) != 1 {
				t.Fatalf("live credentials %v: want exactly the delivered one", live)
			}
		})
	}
}

// An alert Slack refuses is not lost: the deadline set brings a sweeper back
// to post it, to the channel and to the escalation target (here a person's
// DM). The credential is not held back meanwhile: the emergency comes first.
func TestBreakglassAlertSlackRefusedIsPostedLater(t *testing.T) {
	const channel, lead = "C0BREAKGLASS", "U0SECLEAD"
	h := start(t, map[string]string{"CREDBOT_BREAKGLASS_CHANNEL": channel, "CREDBOT_BREAKGLASS_ESCALATION": lead,
		"CREDBOT_BREAKGLASS_REVIEW": "4s"})
	ctx := ctxT(t)
	h.Slack.Inject(slackfake.Fault{Method: "chat.postMessage", Channel: channel, Times: 1, Error: "channel_not_found"})
	h.slash(t, ctx, Requester, bgText("bg-late", "INC-77: late alert"))
	h.waitDM(t, ctx) // issued without waiting for the alert
	h.alert(t, ctx, channel, "bg-late")
	h.alert(t, ctx, "D"+strings.TrimPrefix(lead, "U"), "bg-late")
	// Unacknowledged, it escalates to the lead's DM.
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0SECLEAD" && strings.Contains(c.Params.Get("text"), "not acknowledged")
	}); err != nil {
		t.Fatal("no escalation to the lead's DM")
	}
	if n := countCalls(h.Slack, func(c slackfake.Call) bool { return c.Method == "chat.postMessage!fault" }); n != 1 {
		t.Fatalf("%d refused alerts, want the first one", n)
	}
	if audit := h.auditText(t, ctx); !strings.Contains(audit, "break-glass alert posted") {
		t.Errorf("the alert is not audited:\n%s", audit)
	}
}

// Revoke now works before the credential exists: queued, nothing is ever
// created; being created, it is deleted the moment it exists and its
// secret is never offered.
func TestBreakglassRevokedBeforeItExists(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		h := start(t, bgEnv(map[string]string{"CREDBOT_MINT_WORKERS": "0"}))
		ctx := ctxT(t)
		h.slash(t, ctx, Requester, bgText("bg-queued", "INC-3: queued"))
		alert := h.alert(t, ctx, localAudit, "bg-queued")
		if got := h.click(t, ctx, Admin, alert, blockkit.ActionRevokeNow); !strings.Contains(got.Body, "Revoked") {
			t.Fatalf("revoke: %s", got.Body)
		}
		id, _, _ := slackfake.FindButton(alert.Blocks, blockkit.ActionRevokeNow)
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "was revoked by")
		}); err != nil {
			t.Fatal("the user was not told")
		}
		// The queued mint job runs now, and finds nothing to do.
		if done, err := h.App.Service.Mint(ctx, approval.MintJob{RequestID: id, Deliveries: 1}); !done || err != nil {
			t.Fatalf("mint after revoke: done=%v, %v", done, err)
		}
		if n := h.BTP.Count("create"); n != 0 {
			t.Fatalf("%d creates after a revoke", n)
		}
		if r, _ := h.App.Service.Status(ctx, id); r.State != approval.StateRevoked || r.RevokedBy != Admin.ID {
			t.Fatalf("request %+v", r)
		}
	})
	t.Run("being created", func(t *testing.T) {
		claimed, resume := make(chan string, 1), make(chan struct{})
		h := startWith(t, bgEnv(nil), Deps{Hooks: approval.Hooks{AfterClaim: func(id string) { claimed <- id; <-resume }}})
		ctx := ctxT(t)
		h.slash(t, ctx, Requester, bgText("bg-minting", "INC-4: minting"))
		alert := h.alert(t, ctx, localAudit, "bg-minting")
		<-claimed // MINTING, BTP not called yet
		got := h.click(t, ctx, Admin, alert, blockkit.ActionRevokeNow)
		close(resume)
		if !strings.Contains(got.Body, "Revoke recorded") {
			t.Fatalf("revoke while minting: %s", got.Body)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "was revoked by")
		}); err != nil {
			t.Fatal("the user was not told")
		}
		if n := h.BTP.Count("create"); n != 1 {
			t.Fatalf("%d creates", n)
		}
		if live := h.BTP.Live(defaultScope); len(live) != 0 {
			t.Fatalf("still live at BTP: %v", live)
		}
		if n := countCalls(h.Slack, func(c slackfake.Call) bool { return strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) }); n != 0 {
			t.Fatalf("a revoked break-glass was offered for reveal %d times", n)
		}
	})
}

// TestBreakglassStatusAndWhyForReviewers: a reviewer who may not approve can
// look a break-glass up, and `why` explains it as a break-glass: the
// breakglass rule that let it through, no approvals, and who acknowledged it.
func TestBreakglassStatusAndWhyForReviewers(t *testing.T) {
	policy, err := os.ReadFile("../../policies/policy.csv")
	if err != nil {
		t.Fatal(err)
	}
	reviewer := slackfake.Person{ID: "U0REVIEW", Name: "rev"}
	dir := shippedPolicyCopy(t, map[string]string{"policy.csv": string(policy) + "\ng, U0REVIEW, role:security, globalaccount:acme-ga\n"})
	h := start(t, bgEnv(map[string]string{"CREDBOT_POLICY_DIR": dir}))
	ctx := ctxT(t)
	h.slash(t, ctx, Requester, bgText("bg-why", "INC-77: login broken"))
	alert := h.alert(t, ctx, localAudit, "bg-why")
	id, _, _ := slackfake.FindButton(alert.Blocks, blockkit.ActionAcknowledge)
	if d, err := h.App.Policy.Authorize(ctx, reviewer.ID, approval.ActionApprove, defaultScope, Requester.ID); err != nil || d.Allowed {
		t.Fatalf("the test needs a reviewer who may not approve: %+v %v", d, err)
	}

	if got := h.slashAs(t, ctx, reviewer, "status "+id); !strings.Contains(got, "bg-why") || strings.Contains(got, "only look at requests") {
		t.Fatalf("a reviewer's status of a break-glass: %s", got)
	}
	why := h.slashAs(t, ctx, reviewer, "why "+id)
	for _, want := range []string{"Break-glass", "without approval", "breakglass, allow", "Not acknowledged yet", "Who may review here"} {
		if !strings.Contains(why, want) {
			t.Errorf("why lacks %q: %s", want, why)
		}
	}
	for _, bad := range []string{"approved by ,", "approved by .", "Who may request here", "Who may approve here"} {
		if strings.Contains(why, bad) {
			t.Errorf("why says %q for a break-glass: %s", bad, why)
		}
	}
	if got := h.click(t, ctx, reviewer, alert, blockkit.ActionAcknowledge); !strings.Contains(got.Body, "Acknowledged") {
		t.Fatalf("acknowledge: %s", got.Body)
	}
	if why := h.slashAs(t, ctx, Requester, "why "+id); !strings.Contains(why, `Acknowledged by \u003c@U0REVIEW\u003e`) {
		t.Errorf("why after the acknowledgement: %s", why)
	}
	// Someone who may neither approve nor review still sees nothing.
	if got := h.slashAs(t, ctx, Outsider, "why "+id); !strings.Contains(got, "only look at requests") {
		t.Errorf("an outsider's why: %s", got)
	}
}
