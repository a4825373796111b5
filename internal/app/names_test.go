package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
	"golang.org/x/oauth2/clientcredentials"
)

// victim is a credential someone made outside credbot (Terraform, the
// cockpit, another tool): credbot must never delete or replace it.
type victim struct {
	name   string
	issued approval.Issued
}

func (h *harness) makeVictim(t *testing.T, ctx context.Context, name string) victim {
	t.Helper()
	c, err := btp.New(h.Config.BTP)
	if err != nil {
		t.Fatal(err)
	}
	is, err := c.Create(ctx, approval.CredentialSpec{Scope: defaultScope, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return victim{name: name, issued: is}
}

// assertUntouched proves the victim's secret still gets a token and that BTP
// never received a delete of its name.
func (h *harness) assertUntouched(t *testing.T, ctx context.Context, v victim) {
	t.Helper()
	for _, r := range requestsOf(h.BTP, "delete") {
		if r.Params["name"] == v.name {
			t.Fatalf("BTP received a delete of %q, which credbot did not create", v.name)
		}
	}
	var secret string
	for _, f := range v.issued.Secret.Fields() {
		if f.Name == "clientsecret" {
			secret = f.Value
		}
	}
	cc := clientcredentials.Config{ClientID: v.issued.Credential.ClientID, ClientSecret: secret, TokenURL: v.issued.Credential.TokenURL}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("the victim's secret stopped working: %v", err)
	}
}

// slashReply sends a slash command and returns what credbot answered through
// its response_url.
func (h *harness) slashReply(t *testing.T, ctx context.Context, text string) string {
	t.Helper()
	ack, err := h.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("slash: %d %v", ack.Status, err)
	}
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		t.Fatal(err)
	}
	return c.Body
}

func approvalPosts(h *harness) int {
	return countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.Params.Get("thread_ts") == ""
	})
}

func TestANameLiveAtBTPIsRefusedAtSubmit(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	v := h.makeVictim(t, ctx, "prod-payments")
	reply := h.slashReply(t, ctx, `create --subaccount `+btptest.DefaultSubaccount+` --name prod-payments --reason "take it over"`)
	if !strings.Contains(reply, "already exists") || !strings.Contains(reply, "did not create it") {
		t.Fatalf("reply %q: want a clear refusal", reply)
	}
	if n := approvalPosts(h); n != 0 {
		t.Fatalf("%d approval messages: the refused request reached the approvers", n)
	}
	if mine, err := h.App.Store.ListByRequester(ctx, Requester.ID, 10); err != nil || len(mine) != 0 {
		t.Fatalf("stored requests %v, %v: want none", mine, err)
	}
	h.assertUntouched(t, ctx, v)
}

func TestANameHeldByAnotherRequestIsRefusedUntilReleased(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx) // ci-payments, pending
	reply := h.slashReply(t, ctx, createText)
	if !strings.Contains(reply, "reserved by request") {
		t.Fatalf("second request for a held name: %q", reply)
	}
	if n := approvalPosts(h); n != 1 {
		t.Fatalf("%d approval messages, want only the first request's", n)
	}
	// Denied, the first request gives the name back at once.
	if deny := h.click(t, ctx, Approver, msg, blockkit.ActionDeny); !strings.Contains(deny.Body, "Denied") {
		t.Fatalf("deny: %s", deny.Body)
	}
	if reply := h.slashReply(t, ctx, createText); !strings.Contains(reply, "waiting for approval") {
		t.Fatalf("request for a released name: %q", reply)
	}
}

// A credential of the requested name appears at BTP after the request was
// submitted (someone else made it). Whatever BTP does on the way, credbot fails
// the request with a clear message and never deletes or replaces it.
func TestACredentialCredbotDidNotCreateSurvivesEveryFault(t *testing.T) {
	rateBody := `{"error":"Request rate limit exceeded."}`
	for _, tc := range []struct {
		name   string
		faults []btptest.Fault
	}{
		{"backend 429", []btptest.Fault{
			{Action: "get", BackendStatus: http.StatusTooManyRequests, Body: rateBody},
			{Action: "create", Times: -1, BackendStatus: http.StatusTooManyRequests, Body: rateBody},
		}},
		{"outer 429s past the retries", []btptest.Fault{
			{Action: "get", Times: 8, Status: http.StatusTooManyRequests},
			{Action: "create", Times: -1, Status: http.StatusTooManyRequests},
		}},
		{"502", []btptest.Fault{
			{Action: "get", Times: 4, Status: http.StatusBadGateway},
			{Action: "create", Times: -1, Status: http.StatusBadGateway, Commit: true},
		}},
		{"dropped connection", []btptest.Fault{
			{Action: "get", DropAfterCommit: true},
			{Action: "create", Times: -1, DropAfterCommit: true},
		}},
		{"slower than the job timeout", []btptest.Fault{
			{Action: "get", Latency: 3 * time.Second},
			{Action: "create", Times: -1, Latency: 3 * time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, map[string]string{"CREDBOT_RESCUE_AFTER": "1s"})
			ctx := ctxT(t)
			msg := h.request(t, ctx)
			v := h.makeVictim(t, ctx, "ci-payments")
			for _, f := range tc.faults {
				h.BTP.Inject(f)
			}
			h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
			h.waitFailed(t, ctx)
			h.assertUntouched(t, ctx, v)
		})
	}
	t.Run("replica killed mid-mint", func(t *testing.T) {
		t.Parallel()
		key := approval.NewRandomKey()
		h := start(t, map[string]string{"CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key})
		ctx := ctxT(t)
		msg := h.request(t, ctx)
		v := h.makeVictim(t, ctx, "ci-payments")
		h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
		h.killWorkerAt(t, ctx, key, "claim")
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { h.App.Service.RunMinter(rctx, "rescuer", 0); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		h.waitFailed(t, ctx)
		h.assertUntouched(t, ctx, v)
	})
}

// waitFailed waits for the requester to be told the request failed because
// of the name, and checks nothing was created for it.
func (h *harness) waitFailed(t *testing.T, ctx context.Context) {
	t.Helper()
	c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if txt := c.Text(); !strings.Contains(txt, "did not create it") || !strings.Contains(txt, "nothing was deleted") {
		t.Fatalf("the requester was told %q: want why, and that nothing was deleted", txt)
	}
	created := 0
	for _, r := range requestsOf(h.BTP, "create") {
		if r.Status == http.StatusOK && r.BackendStatus == http.StatusOK {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d credentials created: want only the victim's (credbot must not create over a name it does not own)", created)
	}
}
