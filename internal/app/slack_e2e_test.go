package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/credbot/credbot/internal/slackfake"
)

// The Slack experience, end to end: both transports, the modal, the admin
// verbs, the Home tab, identity refusals, escaping and rate limits, against a
// real Redis, the BTP emulator and the fake Slack.

var (
	Admin   = slackfake.Person{ID: "U0LOCALADM", Name: "root"}
	subacct = "--subaccount " + btptest.DefaultSubaccount
)

// startSocket runs the bot in Socket Mode against the fake Slack's Socket Mode
// endpoint; the simulated people then talk to it over the WebSocket.
func startSocket(t *testing.T, env map[string]string) *harness {
	t.Helper()
	vars := map[string]string{"SLACK_APP_TOKEN": "xapp-1-A0CREDBOT-1-test"}
	for k, v := range env {
		vars[k] = v
	}
	h := start(t, vars)
	h.Workspace.Socket = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Slack.WaitSocketConnections(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return h
}

// transports runs f once over signed HTTP and once over Socket Mode.
func transports(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Run("http", func(t *testing.T) { f(t, start(t, nil)) })
	t.Run("socket", func(t *testing.T) { f(t, startSocket(t, nil)) })
}

// answer waits for the bot's reply to the command or click behind ack.
func (h *harness) answer(t *testing.T, ctx context.Context, ack slackfake.Ack) slackfake.Call {
	t.Helper()
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// slash sends a command, checks it was acked, and returns the later answer.
func (h *harness) slash(t *testing.T, ctx context.Context, p slackfake.Person, text string) (slackfake.Ack, slackfake.Call) {
	t.Helper()
	ack, err := h.Workspace.Slash(ctx, p, text)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("/credbot %s: %d %v", text, ack.Status, err)
	}
	return ack, h.answer(t, ctx, ack)
}

// approvalMessage waits for the approval message of the credential name.
func (h *harness) approvalMessage(t *testing.T, ctx context.Context, name string) slackfake.Message {
	t.Helper()
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.ThreadTS == "" &&
			strings.Contains(c.Params.Get("blocks"), `"Name: `+name+`"`)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(post.Channel, post.TS)
	return m
}

// assertCallsHaveScopes holds every Web API call the bot made to the scopes the
// manifests ask for.
func assertCallsHaveScopes(t *testing.T, s *slackfake.Server) {
	t.Helper()
	for _, c := range s.Calls() {
		if c.Method == "response_url" {
			continue
		}
		method, _, _ := strings.Cut(c.Method, "!")
		if _, ok := slackapi.MethodScopes[method]; !ok {
			t.Errorf("the bot called %s, which slackapi.MethodScopes (and so the manifests) does not cover", method)
		}
	}
}

func TestSocketModeRequestApproveRevealEndToEnd(t *testing.T) {
	h := startSocket(t, nil)
	ctx := ctxT(t)

	// In Socket Mode nothing is served over HTTP but the probes.
	resp, err := http.Post(h.Workspace.BotURL+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("text=help"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /slack/commands in Socket Mode: %d, want 404", resp.StatusCode)
	}

	ack, confirm := h.slash(t, ctx, Requester, createText)
	if !strings.Contains(ack.Body, "Submitting") || !strings.Contains(confirm.Body, "waiting for approval") {
		t.Fatalf("ack %s, answer %s", ack.Body, confirm.Body)
	}
	// An envelope was acked, so the bot has seen its hello: it is ready.
	if r, err := http.Get(h.Workspace.BotURL + "/readyz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while connected: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	msg := h.approvalMessage(t, ctx, "ci-payments")
	got := h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "Approved") {
		t.Fatalf("approver was told %s", got.Body)
	}
	dm := h.waitDM(t, ctx)
	secrets := h.BTP.Secrets()
	if len(secrets) != 1 {
		t.Fatalf("%d secrets issued", len(secrets))
	}
	rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if !strings.Contains(rev.Body, secrets[0]) || !strings.Contains(rev.Body, `"response_type":"ephemeral"`) {
		t.Fatalf("reveal: %s", rev.Body)
	}
	if again := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); strings.Contains(again.Body, secrets[0]) {
		t.Fatal("revealed twice")
	}
	seen := 0
	for _, c := range h.Slack.Calls() {
		if strings.Contains(c.Body, secrets[0]) || strings.Contains(c.Params.Encode(), secrets[0]) {
			seen++
		}
	}
	if seen != 1 {
		t.Fatalf("the secret is in %d Slack calls, want exactly 1", seen)
	}
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates", n)
	}
	assertCallsHaveScopes(t, h.Slack)
}

func TestSocketModeReconnectsAndKeepsServing(t *testing.T) {
	h := startSocket(t, nil)
	ctx := ctxT(t)
	for i, reason := range []string{"warning", "refresh_requested", "link_disabled"} {
		h.Slack.DisconnectSockets(reason)
		// Envelopes sent meanwhile wait for the new connection (Slack queues and
		// retries them); none is lost.
		ack, err := h.Workspace.Slash(ctx, Requester, "help create")
		if err != nil || !strings.Contains(ack.Body, "--expires-in") {
			t.Fatalf("after disconnect %d (%s): %v %s", i+1, reason, err, ack.Body)
		}
	}
	opens := 0
	for _, c := range h.Slack.Calls() {
		if c.Method == "apps.connections.open" {
			opens++
		}
	}
	if opens < 4 {
		t.Fatalf("apps.connections.open called %d times, want a reconnect after each of 3 disconnects", opens)
	}
}

func TestCreateModalOpensInTheAckRefusesBadFieldsAndSubmits(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx := ctxT(t)
		ack, err := h.Workspace.Slash(ctx, Requester, "create")
		if err != nil || ack.Status != http.StatusOK || ack.Body != "" {
			t.Fatalf("bare create: %d %q %v (want an empty ack: the form is the answer)", ack.Status, ack.Body, err)
		}
		// views.open happened before the ack came back, with this command's trigger.
		var open *slackfake.Call
		for _, c := range h.Slack.Calls() {
			if c.Method == "views.open" && strings.Contains(c.Body, ack.Trigger) {
				open = &c
			}
		}
		if open == nil {
			t.Fatal("views.open was not called with the trigger before the ack")
		}
		viewID := open.TS

		bad := map[string]string{
			"scope_kind": "subaccount", "scope_id": "not-a-guid", "name": "has spaces",
			"access": "full", "reason": "   ", "expires_in": "forever",
		}
		ack, err = h.Workspace.SubmitView(ctx, Requester, viewID, bad)
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Action string            `json:"response_action"`
			Errors map[string]string `json:"errors"`
		}
		if err := json.Unmarshal([]byte(ack.Body), &resp); err != nil || resp.Action != "errors" {
			t.Fatalf("invalid form: ack %q", ack.Body)
		}
		for _, block := range []string{"scope_id", "name", "reason", "expires_in"} {
			if resp.Errors[block] == "" {
				t.Errorf("no inline error for %s: %v", block, resp.Errors)
			}
		}

		good := map[string]string{
			"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount, "name": "from-the-form",
			"access": "read-only", "reason": "nightly export", "expires_in": "30d",
		}
		ack, err = h.Workspace.SubmitView(ctx, Requester, viewID, good)
		if err != nil || ack.Body != "" {
			t.Fatalf("valid form: ack %q %v (want empty: close the form)", ack.Body, err)
		}
		msg := h.approvalMessage(t, ctx, "from-the-form")
		for _, want := range []string{"Access: read-only", "Lifetime: 30d", "Reason: nightly export"} {
			if !strings.Contains(msg.Blocks, want) {
				t.Errorf("approval message lacks %q: %s", want, msg.Blocks)
			}
		}
		// No response_url from a modal: the requester hears back in their DM.
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postEphemeral" && c.Channel == "D0LOCALREQ" && c.User == Requester.ID && strings.Contains(c.Text(), "waiting for approval")
		}); err != nil {
			t.Fatal(err)
		}
		mine, _, err := h.App.Service.Requests(ctx, Requester.ID)
		if err != nil || len(mine) != 1 || !mine[0].ReadOnly || mine[0].Lifetime != 30*24*time.Hour {
			t.Fatalf("stored: %+v %v", mine, err)
		}
	})
}

// createAtBTP makes a credential directly at the emulator, as someone using
// the btp CLI would: credbot did not issue it.
func createAtBTP(t *testing.T, ctx context.Context, h *harness, names ...string) {
	t.Helper()
	c, err := btp.New(btp.Config{
		ServerURL: h.BTP.URL(), GlobalAccount: btptest.DefaultGlobalAccount,
		Username: btptest.DefaultUser, Password: btptest.DefaultPassword,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := c.Create(ctx, approval.CredentialSpec{Scope: defaultScopeE2E, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
}

var defaultScopeE2E = approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}

// issue runs one request through approval and reveal.
func (h *harness) issue(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "for the admin test"`, subacct, name))
	h.click(t, ctx, Approver, h.approvalMessage(t, ctx, name), blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	if rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); !strings.Contains(rev.Body, "clientsecret") {
		t.Fatalf("reveal: %s", rev.Body)
	}
}

func TestAdminListGetAndDeleteOnlyAfterConfirmation(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.issue(t, ctx, "managed-one")
	createAtBTP(t, ctx, h, "made-by-hand")

	_, list := h.slash(t, ctx, Admin, "list "+subacct)
	body := slackfake.Reply(list).Blocks
	for _, want := range []string{"Name: managed-one", "Name: made-by-hand", "not issued by credbot", "Owner: \\u003c@" + Requester.ID, "Expires: 20"} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %q: %s", want, body)
		}
	}
	_, get := h.slash(t, ctx, Admin, "get "+subacct+" --name managed-one")
	if !strings.Contains(get.Body, "Client ID: ") || !strings.Contains(get.Body, "Owner: \\u003c@"+Requester.ID) || strings.Contains(get.Body, "clientsecret") {
		t.Fatalf("get: %s", get.Body)
	}

	// Not everyone may: an outsider cannot list, a requester cannot delete.
	if _, a := h.slash(t, ctx, Outsider, "list "+subacct); !strings.Contains(a.Body, ":warning:") || strings.Contains(a.Body, "managed-one") {
		t.Fatalf("outsider list: %s", a.Body)
	}
	if _, a := h.slash(t, ctx, Requester, "delete "+subacct+" --name managed-one"); !strings.Contains(a.Body, "may not delete") || strings.Contains(a.Body, blockkit.ActionDelete) {
		t.Fatalf("requester delete: %s", a.Body)
	}

	// The admin's delete command only shows a button behind a confirm dialog.
	_, prompt := h.slash(t, ctx, Admin, "delete "+subacct+" --name managed-one")
	btn, err := slackfake.FindButtonValue(slackfake.Reply(prompt).Blocks, blockkit.ActionDelete, "")
	if err != nil || !btn.Confirm || btn.Style != "danger" {
		t.Fatalf("delete prompt: %+v %v\n%s", btn, err, prompt.Body)
	}
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes at BTP before anyone confirmed", n)
	}
	// Somebody else pressing that button is refused at click time.
	ack, err := h.Workspace.ClickValue(ctx, Requester, slackfake.Reply(prompt), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatal(err)
	}
	if a := h.answer(t, ctx, ack); !strings.Contains(a.Body, ":warning:") {
		t.Fatalf("requester pressing delete: %s", a.Body)
	}
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes at BTP after a refused click", n)
	}

	ack, err = h.Workspace.ClickValue(ctx, Admin, slackfake.Reply(prompt), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatal(err)
	}
	if a := h.answer(t, ctx, ack); !strings.Contains(a.Body, "Deleted") {
		t.Fatalf("admin delete: %s", a.Body)
	}
	if live := h.BTP.Live(defaultScopeE2E); !slices.Equal(live, []string{"made-by-hand"}) {
		t.Fatalf("live after delete: %v", live)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "was deleted by")
	}); err != nil {
		t.Fatal("the owner was not told:", err)
	}
}

func TestListPaginatesWithinSlacksBlockLimit(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	var names []string
	for i := range 45 {
		names = append(names, fmt.Sprintf("bulk-%02d", i))
	}
	createAtBTP(t, ctx, h, names...)

	_, first := h.slash(t, ctx, Admin, "list "+subacct)
	page := slackfake.Reply(first)
	seen := countBlocks(t, page.Blocks)
	more, err := slackfake.FindButtonValue(page.Blocks, blockkit.ActionMore, "")
	if err != nil {
		t.Fatalf("no More button on a 45-credential list: %v", err)
	}
	ack, err := h.Workspace.ClickValue(ctx, Admin, page, blockkit.ActionMore, more.Value)
	if err != nil {
		t.Fatal(err)
	}
	second := slackfake.Reply(h.answer(t, ctx, ack))
	countBlocks(t, second.Blocks)
	if _, err := slackfake.FindButtonValue(second.Blocks, blockkit.ActionMore, ""); err == nil {
		t.Error("the last page still has a More button")
	}
	all := page.Blocks + second.Blocks
	for _, n := range names {
		if c := strings.Count(all, `"Name: `+n+`"`); c != 1 {
			t.Errorf("%s shown %d times over the pages", n, c)
		}
	}
	t.Logf("45 credentials: first page %d blocks, second page %d", seen, countBlocks(t, second.Blocks))
}

func countBlocks(t *testing.T, blocks string) int {
	t.Helper()
	var bs []json.RawMessage
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Fatal(err)
	}
	if len(bs) > 50 {
		t.Fatalf("%d blocks in one message; Slack allows 50", len(bs))
	}
	return len(bs)
}

// forbidden are control sequences a user typed; they must reach Slack only
// as plain_text or escaped, never as live mrkdwn.
var forbidden = []string{"<!channel>", "<@U123>", "<!here>", "<https://evil.example|click>"}

// assertInert walks every message, answer and view the bot sent and fails if
// a forbidden sequence appears in mrkdwn or in a notification's fallback text.
func assertInert(t *testing.T, s *slackfake.Server) {
	t.Helper()
	check := func(where, text string) {
		for _, f := range forbidden {
			if strings.Contains(text, f) {
				t.Errorf("%s carries a live %q: %q", where, f, text)
			}
		}
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "mrkdwn" {
				if s, ok := x["text"].(string); ok {
					check(where+" mrkdwn", s)
				}
			}
			for _, e := range x {
				walk(where, e)
			}
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		}
	}
	for _, c := range s.Calls() {
		var blocks, text string
		switch {
		case c.Method == "response_url":
			var m struct {
				Text   string          `json:"text"`
				Blocks json.RawMessage `json:"blocks"`
			}
			_ = json.Unmarshal([]byte(c.Body), &m)
			text, blocks = m.Text, string(m.Blocks)
		case strings.HasPrefix(c.Method, "views."):
			var m struct {
				View struct {
					Blocks json.RawMessage `json:"blocks"`
				} `json:"view"`
			}
			_ = json.Unmarshal([]byte(c.Body), &m)
			blocks = string(m.View.Blocks)
		default:
			text, blocks = c.Params.Get("text"), c.Params.Get("blocks")
		}
		check(c.Method+" text", text)
		var v any
		if blocks != "" && json.Unmarshal([]byte(blocks), &v) == nil {
			walk(c.Method, v)
		}
	}
}

func TestUserTextReachesSlackInert(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	reason := `<!channel> <@U123> *bold* <!here> <https://evil.example|click> & more`
	_, confirm := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name inert --reason '%s'`, subacct, reason))
	if !strings.Contains(confirm.Body, "waiting") {
		t.Fatalf("answer: %s", confirm.Body)
	}
	msg := h.approvalMessage(t, ctx, "inert")
	// The reason is there, whole, as plain_text: Slack shows it verbatim.
	var bs []map[string]any
	_ = json.Unmarshal([]byte(msg.Blocks), &bs)
	found := false
	for _, b := range bs {
		fields, _ := b["fields"].([]any)
		for _, f := range fields {
			fm := f.(map[string]any)
			if fm["text"] == "Reason: "+reason {
				found = fm["type"] == "plain_text"
			}
		}
	}
	if !found {
		t.Fatalf("the reason is not shown whole as plain_text: %s", msg.Blocks)
	}
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	h.slash(t, ctx, Requester, "status "+id)
	h.slash(t, ctx, Requester, "why "+id)
	h.slash(t, ctx, Requester, "status")
	h.Workspace.OpenHome(ctx, Requester)
	h.Workspace.OpenHome(ctx, Approver)
	for _, p := range []slackfake.Person{Requester, Approver} {
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "views.publish" && c.User == p.ID }); err != nil {
			t.Fatal(err)
		}
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionDeny)
	h.Local.App.handlers.Close()
	assertInert(t, h.Slack)
}

func TestIdentityRefusedBeforeAnythingIsStored(t *testing.T) {
	cases := []struct {
		user slackfake.User
		want string
	}{
		{slackfake.User{ID: "U0GUEST01", Name: "guest", Team: slackfake.DefaultTeam, Restricted: true}, "guests cannot"},
		{slackfake.User{ID: "U0GUEST02", Name: "single", Team: slackfake.DefaultTeam, UltraRestricted: true}, "guests cannot"},
		{slackfake.User{ID: "U0BOT0001", Name: "robot", Team: slackfake.DefaultTeam, Bot: true}, "bots and apps"},
		{slackfake.User{ID: "U0GONE001", Name: "gone", Team: slackfake.DefaultTeam, Deleted: true}, "deactivated"},
		{slackfake.User{ID: "U0ABROAD1", Name: "abroad", Team: "T0OTHER"}, "another one"},
		{slackfake.User{ID: "U0STRANGE", Name: "stranger", Team: "T0OTHER", Stranger: true}, "shared channels"},
	}
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	for _, c := range cases {
		h.Slack.SetUser(c.user)
		p := slackfake.Person{ID: c.user.ID, Name: c.user.Name}
		_, a := h.slash(t, ctx, p, fmt.Sprintf(`create %s --name %s --reason "try"`, subacct, strings.ToLower(c.user.ID)))
		if !strings.Contains(a.Body, ":warning:") || !strings.Contains(a.Body, c.want) {
			t.Errorf("%s: answer %s, want a refusal saying %q", c.user.Name, a.Body, c.want)
		}
		mine, _, err := h.App.Service.Requests(ctx, c.user.ID)
		if err != nil || len(mine) != 0 {
			t.Errorf("%s: %d requests stored (%v)", c.user.Name, len(mine), err)
		}
		if got := h.click(t, ctx, p, msg, blockkit.ActionApprove); !strings.Contains(got.Body, c.want) {
			t.Errorf("%s approving: %s", c.user.Name, got.Body)
		}
	}
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StatePending || len(r.Approvals) != 0 {
		t.Fatalf("refused people changed the request: %+v %v", r, err)
	}
	h.Local.App.handlers.Close()
	for _, call := range h.Slack.Calls() {
		if call.Method == "chat.postMessage" && call.Channel == localApprovals && call.ThreadTS == "" && !strings.Contains(call.Params.Get("blocks"), "ci-payments") {
			t.Errorf("a refused person's request reached the approvers: %s", call.Params.Get("blocks"))
		}
	}
}

func TestAllowedTeamsAdmitsAnotherWorkspace(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_ALLOWED_TEAMS": "T0LOCAL, T0OTHER"})
	ctx := ctxT(t)
	h.Slack.SetUser(slackfake.User{ID: "U0LOCALREQ", Name: "ada", Team: "T0OTHER"})
	_, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name cross --reason "allowed team"`, subacct))
	if !strings.Contains(a.Body, "waiting for approval") {
		t.Fatalf("a member of an allowed team was refused: %s", a.Body)
	}
}

func TestRateLimitedMessageIsDeliveredAfterRetryAfterWhileTheAckIsImmediate(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	// The approval message gets the 429 (not the audit channel's copy of an entry).
	h.Slack.Inject(slackfake.Fault{Method: "chat.postMessage", Channel: localApprovals, Times: 1, Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	ack, err := h.Workspace.Slash(ctx, Requester, createText)
	acked := time.Now()
	if err != nil || ack.Status != http.StatusOK {
		t.Fatal(err)
	}
	msg := h.approvalMessage(t, ctx, "ci-payments")
	var limited, delivered time.Time
	for _, c := range h.Slack.Calls() {
		switch {
		case c.Method == "chat.postMessage!fault":
			limited = c.At
		case c.Method == "chat.postMessage" && c.Channel == localApprovals && delivered.IsZero():
			delivered = c.At
		}
	}
	if limited.IsZero() || delivered.Sub(limited) < 1900*time.Millisecond {
		t.Fatalf("429 at %v, delivered at %v: want the delivery a Retry-After (2s) later", limited, delivered)
	}
	// Ordering, not a stopwatch: the ack came back before the wait was over,
	// so it did not wait for the rate limit.
	if !acked.Before(delivered) {
		t.Fatalf("acked at %v, after the delivery at %v: the ack waited for the rate limit", acked, delivered)
	}
	if _, ok := h.Slack.Message(msg.Channel, msg.TS); !ok {
		t.Fatal("approval message lost")
	}
	t.Logf("ack in %s; message delivered %s after the 429", ack.Latency, delivered.Sub(limited).Round(time.Millisecond))
}

func TestBurstOf200RequestsLosesNoMessage(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// Slack's chat.postMessage allows bursts, then about one a second per
		// channel; here, 60 a second, so that 200 approval messages need 429s.
		h.Slack.Limit("chat.postMessage", 60, time.Second)
		// A busy machine may post slower than that: five 429s come anyway,
		// so the retry path runs whatever the speed.
		h.Slack.Inject(slackfake.Fault{Method: "chat.postMessage", Channel: localApprovals, Times: 5, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
		const n = 200
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ack, err := h.Workspace.Slash(ctx, Requester, fmt.Sprintf(`create %s --name burst-%03d --reason "load"`, subacct, i))
				if err != nil || ack.Status != http.StatusOK || !strings.Contains(ack.Body, "Submitting") {
					t.Errorf("request %d: %d %q %v", i, ack.Status, ack.Body, err)
				}
				lat[i] = ack.Latency
			})
		}
		wg.Wait()
		posted, err := h.Slack.WaitCount(ctx, n, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.ThreadTS == ""
		})
		if err != nil {
			for _, c := range h.Slack.Calls() {
				if c.Method == "response_url" && strings.Contains(c.Body, "warning") {
					t.Log(c.Body)
				}
			}
			t.Log(h.logs.String()[max(0, len(h.logs.String())-5000):])
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, c := range posted {
			for i := range n {
				if strings.Contains(c.Params.Get("blocks"), fmt.Sprintf(`"Name: burst-%03d"`, i)) {
					names[fmt.Sprintf("%03d", i)] = true
				}
			}
		}
		if len(names) != n {
			t.Fatalf("%d distinct approval messages, want %d", len(names), n)
		}
		limited := 0
		for _, c := range h.Slack.Calls() {
			if c.Method == "chat.postMessage!fault" {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("no 429 was served: the test did not exercise the rate limit")
		}
		slices.Sort(lat)
		pct := func(p int) time.Duration { return lat[(len(lat)-1)*p/100].Round(time.Microsecond) }
		t.Logf("%d requests, %d 429s from chat.postMessage; ack latency p50 %s p95 %s p99 %s max %s", n, limited, pct(50), pct(95), pct(99), lat[n-1].Round(time.Microsecond))
	})
}

func TestHomeTabListsAndDecides(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx := ctxT(t)
		msg := h.request(t, ctx)
		id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)

		publish := func(p slackfake.Person) string {
			t.Helper()
			c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "views.publish" && c.User == p.ID })
			if err != nil {
				t.Fatal(err)
			}
			return c.Body
		}
		if ack, err := h.Workspace.OpenHome(ctx, Requester); err != nil || ack.Status != http.StatusOK {
			t.Fatal(err)
		}
		home := publish(Requester)
		if !strings.Contains(home, id) || !strings.Contains(home, blockkit.ActionCancel) || strings.Contains(home, blockkit.ActionApprove) {
			t.Fatalf("requester's home: %s", home)
		}
		if _, err := h.Workspace.OpenHome(ctx, Approver); err != nil {
			t.Fatal(err)
		}
		publish(Approver)
		blocks, _ := h.Slack.Home(Approver.ID)
		if _, err := slackfake.FindButtonValue(blocks, blockkit.ActionApprove, id); err != nil {
			t.Fatalf("approver's home has no Approve for %s: %s", id, blocks)
		}
		if _, err := h.Workspace.ClickHome(ctx, Approver, blockkit.ActionApprove, id); err != nil {
			t.Fatal(err)
		}
		// No response_url on the Home tab: the answer is an ephemeral in the DM,
		// and the tab is published again without the request.
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postEphemeral" && c.Channel == "D0LOCALAPR" && c.User == Approver.ID && strings.Contains(c.Text(), "Approved")
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "views.publish" && c.User == Approver.ID && !strings.Contains(c.Body, blockkit.ActionApprove)
		}); err != nil {
			t.Fatal(err)
		}
		h.waitDM(t, ctx)
		if _, err := h.Workspace.OpenHome(ctx, Requester); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "views.publish" && c.User == Requester.ID && strings.Contains(c.Body, "Your credentials* (1)")
		}); err != nil {
			t.Fatal(err)
		}

		// A guest sees a refusal, not the requests.
		h.Slack.SetUser(slackfake.User{ID: "U0GUEST09", Name: "guest", Team: slackfake.DefaultTeam, Restricted: true})
		if _, err := h.Workspace.OpenHome(ctx, slackfake.Person{ID: "U0GUEST09"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "views.publish" && c.User == "U0GUEST09" && strings.Contains(c.Body, "guests cannot") && !strings.Contains(c.Body, id)
		}); err != nil {
			t.Fatal(err)
		}
		assertCallsHaveScopes(t, h.Slack)
	})
}

func TestApproversAreMentionedAndDecisionsGoToTheThread(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	for _, who := range []string{Approver.ID, "U0LOCALAP2", Admin.ID} {
		if !strings.Contains(msg.Blocks, `\u003c@`+who+`\u003e`) {
			t.Errorf("approver %s is not mentioned: %s", who, msg.Blocks)
		}
	}
	for _, not := range []string{`Approvers: \u003c@` + Requester.ID, Outsider.ID, "!subteam"} {
		if strings.Contains(msg.Blocks, not) {
			t.Errorf("the approval message mentions %s", not)
		}
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.waitDM(t, ctx)
	if _, err := h.Slack.WaitCount(ctx, 2, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.ThreadTS == msg.TS
	}); err != nil {
		t.Fatal(err)
	}
	thread := h.Slack.Thread(msg.Channel, msg.TS)
	if len(thread) < 2 || !strings.Contains(thread[0].Text, "Approved by") || !strings.Contains(thread[1].Text, "Credential created") {
		t.Fatalf("thread: %+v", thread)
	}
	if strings.Contains(thread[0].Text, "<@"+Approver.ID+">") {
		t.Errorf("the thread reply pings the approver who just clicked: %s", thread[0].Text)
	}
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	if strings.Contains(upd.Blocks, blockkit.ActionApprove) || strings.Contains(upd.Blocks, "Approvers:") {
		t.Fatalf("the approval message still asks for approval: %s", upd.Blocks)
	}
	assertInert(t, h.Slack) // the reason's <!channel> pinged nobody
}

func TestStatusWhyApproversAndCancelFromSlack(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx := ctxT(t)
		msg := h.request(t, ctx)
		id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)

		if _, a := h.slash(t, ctx, Requester, "status"); !strings.Contains(a.Body, id) || !strings.Contains(a.Body, blockkit.ActionCancel) {
			t.Fatalf("status: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Requester, "status "+id); !strings.Contains(a.Body, "Waiting for approval") {
			t.Fatalf("status id: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Outsider, "status "+id); !strings.Contains(a.Body, ":warning:") {
			t.Fatalf("outsider status: %s", a.Body)
		}
		_, why := h.slash(t, ctx, Requester, "why "+id)
		for _, want := range []string{"ALLOW", "role:requester", "Who may approve here", Approver.ID} {
			if !strings.Contains(why.Body, want) {
				t.Errorf("why lacks %q: %s", want, why.Body)
			}
		}
		if _, a := h.slash(t, ctx, Approver, "why "+id); !strings.Contains(a.Body, "*You*") {
			t.Errorf("why for an approver: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Outsider, "why "+id); !strings.Contains(a.Body, ":warning:") {
			t.Errorf("outsider why: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Requester, "approvers "+subacct); !strings.Contains(a.Body, Approver.ID) || !strings.Contains(a.Body, "needs 1 approval") {
			t.Errorf("approvers: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Outsider, "approvers "+subacct); strings.Contains(a.Body, Approver.ID) || !strings.Contains(a.Body, ":warning:") {
			t.Errorf("approvers for an outsider: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Approver, "cancel "+id); !strings.Contains(a.Body, ":warning:") {
			t.Errorf("someone else cancelled: %s", a.Body)
		}
		if _, a := h.slash(t, ctx, Requester, "cancel "+id); !strings.Contains(a.Body, "cancelled") {
			t.Fatalf("cancel: %s", a.Body)
		}
		if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.ThreadTS == msg.TS && strings.Contains(c.Text(), "Cancelled")
		}); err != nil {
			t.Fatal(err)
		}
		upd, _ := h.Slack.Message(msg.Channel, msg.TS)
		if strings.Contains(upd.Blocks, blockkit.ActionApprove) {
			t.Fatalf("cancelled request still has buttons: %s", upd.Blocks)
		}
		if _, a := h.slash(t, ctx, Requester, "cancel "+id); !strings.Contains(a.Body, "already cancelled") {
			t.Fatalf("second cancel: %s", a.Body)
		}
		for text, want := range map[string]string{"help": "explains one command", "help delete": "confirm", "frobnicate": "unknown command", "delete " + subacct: "needs --name"} {
			ack, err := h.Workspace.Slash(ctx, Requester, text)
			if err != nil || !strings.Contains(ack.Body, want) {
				t.Errorf("/credbot %s: ack %q %v, want %q", text, ack.Body, err, want)
			}
		}
	})
}

// Several replicas each hold one Socket Mode connection; Slack hands each
// envelope to one of them. Every request is served exactly once, and a replica
// going away loses nothing: what it had not acked is redelivered to another.
func TestSocketModeReplicasShareTheLoad(t *testing.T) {
	h := startSocket(t, nil)
	ctx := ctxT(t)
	second, err := h.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.StartReplica(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Slack.WaitSocketConnections(ctx, 3); err != nil {
		t.Fatal(err)
	}
	const n = 30
	send := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() {
				ack, err := h.Workspace.Slash(ctx, Requester, fmt.Sprintf(`create %s --name rep-%02d --reason "replicas"`, subacct, i))
				if err != nil || !strings.Contains(ack.Body, "Submitting") {
					t.Errorf("request %d: %q %v", i, ack.Body, err)
				}
			})
		}
		wg.Wait()
	}
	send(0, n/2)
	second.Close()
	if err := h.Slack.WaitSocketConnections(ctx, 2); err != nil {
		t.Fatal(err)
	}
	send(n/2, n)
	posted, err := h.Slack.WaitCount(ctx, n, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.ThreadTS == ""
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		seen := 0
		for _, c := range posted {
			if strings.Contains(c.Params.Get("blocks"), fmt.Sprintf(`"Name: rep-%02d"`, i)) {
				seen++
			}
		}
		if seen != 1 {
			t.Errorf("rep-%02d has %d approval messages, want 1", i, seen)
		}
	}
}

// SLACK_APP_TOKEN=xapp-… go run ./cmd/bot local plays the demo over Socket Mode.
func TestLocalDemoCompletesOverSocketMode(t *testing.T) {
	h := start(t, map[string]string{"SLACK_APP_TOKEN": "xapp-local"})
	if !h.Workspace.Socket {
		t.Fatal("local mode with an app token does not talk Socket Mode")
	}
	var out strings.Builder
	if err := h.Demo(ctxT(t), &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
}
