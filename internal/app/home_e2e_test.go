package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// TestHomeListsEveryLiveCredentialPaginated: the Home tab lists all of a
// person's live credentials, from an index of them, a page at a time —
// not only those among their newest requests. Sixteen credentials, then
// thirty newer requests that ended: all sixteen are on the tab, over two pages.
func TestHomeListsEveryLiveCredentialPaginated(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	const live = 16
	for i := range live {
		name := fmt.Sprintf("cred-%02d", i)
		h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "home test"`, subacct, name))
		h.click(t, ctx, Approver, h.approvalMessage(t, ctx, name), blockkit.ActionApprove)
		dm, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) &&
				strings.Contains(c.Params.Get("text"), name)
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 { // one delivered, the rest issued: both are live
			m, _ := h.Slack.Message(dm.Channel, dm.TS)
			if rev := h.click(t, ctx, Requester, m, blockkit.ActionReveal); !strings.Contains(rev.Body, "clientsecret") {
				t.Fatalf("reveal: %s", rev.Body)
			}
		}
	}
	for i := range 30 { // newer requests, ended
		r, err := h.App.Service.Submit(ctx, approval.Submission{User: Requester.ID, Scope: defaultScopeE2E,
			Name: fmt.Sprintf("filler-%02d", i), Reason: "filler"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.App.Service.Cancel(ctx, r.ID, Requester.ID); err != nil {
			t.Fatal(err)
		}
	}

	publish := func(open func() (slackfake.Ack, error), want string) string {
		t.Helper()
		mark := h.Slack.Mark()
		if ack, err := open(); err != nil || ack.Status != http.StatusOK {
			t.Fatalf("%d %v", ack.Status, err)
		}
		c, err := h.Slack.WaitFrom(ctx, mark, func(c slackfake.Call) bool { return c.Method == "views.publish" && c.User == Requester.ID })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.Body, want) {
			t.Fatalf("the Home tab lacks %q: %s", want, c.Body)
		}
		return c.Body
	}
	first := publish(func() (slackfake.Ack, error) { return h.Workspace.OpenHome(ctx, Requester) }, "Your credentials* (16)")
	shown := func(page string) (names []string) {
		for i := range live {
			if n := fmt.Sprintf("cred-%02d", i); strings.Contains(page, "*"+n+"*") {
				names = append(names, n)
			}
		}
		return names
	}
	if got := shown(first); len(got) != 15 || got[len(got)-1] != "cred-15" || strings.Contains(first, "*cred-00*") {
		t.Fatalf("first page shows %v, want the newest 15", got)
	}
	if !strings.Contains(first, "Next page") || strings.Contains(first, "Previous page") {
		t.Fatalf("first page's buttons: %s", first)
	}
	second := publish(func() (slackfake.Ack, error) {
		return h.Workspace.ClickHome(ctx, Requester, blockkit.ActionHomePage, "")
	}, "16–16 of 16")
	if got := shown(second); len(got) != 1 || got[0] != "cred-00" {
		t.Fatalf("second page shows %v, want the oldest, cred-00", got)
	}
	if !strings.Contains(second, "Previous page") || strings.Contains(second, "Next page") {
		t.Fatalf("second page's buttons: %s", second)
	}
	// A credential that ends leaves the index, and the count.
	back := publish(func() (slackfake.Ack, error) {
		return h.Workspace.ClickHome(ctx, Requester, blockkit.ActionHomePage, "")
	}, "Your credentials* (16)")
	if len(shown(back)) != 15 {
		t.Fatalf("back on the first page: %v", shown(back))
	}
	mine, _, err := h.App.Service.Credentials(context.Background(), Requester.ID, 15, 15)
	if err != nil || len(mine) != 1 {
		t.Fatalf("credentials page 2: %v %v", mine, err)
	}
	if _, err := h.App.Service.DeleteOwn(ctx, mine[0].ID, Requester.ID); err != nil {
		t.Fatal(err)
	}
	publish(func() (slackfake.Ack, error) { return h.Workspace.OpenHome(ctx, Requester) }, "Your credentials* (15)")
}
