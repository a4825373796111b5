package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// The inventory, end to end: real Redis, the BTP emulator, the fake Slack.

// btpBehindCredbot is a btp client of the emulator's, as a person with the
// btp CLI would use it: what it does, credbot did not do.
func btpBehindCredbot(t *testing.T, h *harness) *btp.Client {
	t.Helper()
	c, err := btp.New(btp.Config{
		ServerURL: h.BTP.URL(), GlobalAccount: btptest.DefaultGlobalAccount,
		Username: btptest.DefaultUser, Password: btptest.DefaultPassword,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issueOne runs one request for name through approval and reveal, also when
// others ran before it.
func (h *harness) issueOne(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "for the inventory test"`, subacct, name))
	h.click(t, ctx, Approver, h.approvalMessage(t, ctx, name), blockkit.ActionApprove)
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" &&
			strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) && strings.Contains(c.Params.Get("blocks"), name)
	})
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := h.Slack.Message(post.Channel, post.TS)
	if rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); !strings.Contains(rev.Body, "clientsecret") {
		t.Fatalf("reveal: %s", rev.Body)
	}
	id, err := h.App.Store.NameHolder(ctx, defaultScopeE2E, name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// scopeResult is the sweep's result for the default subaccount, where the
// tests work.
func scopeResult(t *testing.T, rep approval.InventoryReport) approval.ScopeResult {
	t.Helper()
	for _, r := range rep.Scopes {
		if r.Scope == defaultScopeE2E {
			return r
		}
	}
	t.Fatalf("the sweep did not list %s: %+v", defaultScopeE2E, rep.Scopes)
	return approval.ScopeResult{}
}

// auditEvents returns the audit trail's entries of one event.
func (h *harness) auditEvents(t *testing.T, ctx context.Context, event string) []approval.AuditEntry {
	t.Helper()
	var buf bytes.Buffer
	if _, err := h.App.Store.ExportAudit(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	var out []approval.AuditEntry
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec struct {
			Entry json.RawMessage `json:"entry"`
		}
		var e approval.AuditEntry
		if json.Unmarshal([]byte(line), &rec) != nil || json.Unmarshal(rec.Entry, &e) != nil {
			t.Fatalf("audit export line: %s", line)
		}
		if e.Event == event {
			out = append(out, e)
		}
	}
	return out
}

func TestInventoryReportsAnUnmanagedCredentialOnceAndCountsIt(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.issue(t, ctx, "managed-one")
	createAtBTP(t, ctx, h, "made-by-hand")

	rep := h.App.Inventory.Sweep(ctx)
	if len(rep.Scopes) != 7 || rep.Failed() != 0 {
		t.Fatalf("the sweep listed %d scopes, %d failed; want the hierarchy's 7, none failed: %+v", len(rep.Scopes), rep.Failed(), rep.Scopes)
	}
	first := scopeResult(t, rep)
	if first.Err != nil || first.Listed != 2 || first.Unmanaged != 1 || strings.Join(first.Reported, ",") != "made-by-hand" {
		t.Fatalf("first sweep: %+v", first)
	}
	second := scopeResult(t, h.App.Inventory.Sweep(ctx))
	if second.Err != nil || second.Unmanaged != 1 || len(second.Reported) != 0 {
		t.Fatalf("second sweep reported again: %+v", second)
	}
	if got := h.auditEvents(t, ctx, approval.EventUnmanaged); len(got) != 1 || got[0].Name != "made-by-hand" || got[0].Scope != defaultScopeE2E.String() {
		t.Fatalf("audit entries of unmanaged credentials: %+v, want one for made-by-hand", got)
	}
	// The admins' audit channel got it, once, with what to do about it.
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localAudit && strings.Contains(c.Params.Get("text"), "unmanaged by inventory")
	})
	if err != nil {
		t.Fatal(err)
	}
	if text := post.Params.Get("text"); !strings.Contains(text, "made-by-hand") || !strings.Contains(text, "/credbot adopt") || strings.Contains(text, "managed-one") {
		t.Fatalf("audit channel: %s", text)
	}
	// Every replica's gauge says what the sweep found.
	if !h.metric(t, `credbot_unmanaged_credentials{scope="`+defaultScopeE2E.String()+`"} 1`) {
		t.Fatal("the gauge does not count the unmanaged credential")
	}
	// Gone at BTP, it is forgotten: created again later, it is new again.
	if err := btpBehindCredbot(t, h).Delete(ctx, defaultScopeE2E, "made-by-hand"); err != nil {
		t.Fatal(err)
	}
	if third := scopeResult(t, h.App.Inventory.Sweep(ctx)); third.Unmanaged != 0 || len(third.Reported) != 0 {
		t.Fatalf("third sweep: %+v", third)
	}
	if !h.metric(t, `credbot_unmanaged_credentials{scope="`+defaultScopeE2E.String()+`"} 0`) {
		t.Fatal("the gauge still counts a credential that is gone")
	}
	// credbot's own credential was never touched or reported.
	if live := h.BTP.Live(defaultScopeE2E); strings.Join(live, ",") != "managed-one" {
		t.Fatalf("live at BTP: %v", live)
	}
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localAudit && strings.Contains(c.Params.Get("text"), "unmanaged by inventory")
	}); n != 1 {
		t.Fatalf("the audit channel got %d reports, want 1", n)
	}
}

func TestOneReplicaSweepsPerInterval(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_INVENTORY_INTERVAL": "1h"})
	ctx := ctxT(t)
	other, err := h.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lists := h.BTP.Count("list")
	if _, swept, err := h.App.Inventory.Tick(ctx, "replica-a"); err != nil || !swept {
		t.Fatalf("first tick: swept %v, %v", swept, err)
	}
	perSweep := h.BTP.Count("list") - lists
	if perSweep < 3 {
		t.Fatalf("a sweep listed %d scopes", perSweep)
	}
	// The other replica, and this one again, find the lease held for the
	// rest of the interval.
	for _, inv := range []*approval.Inventory{other.Inventory, h.App.Inventory} {
		if _, swept, err := inv.Tick(ctx, "replica-b"); err != nil || swept {
			t.Fatalf("a second sweep within the interval: swept %v, %v", swept, err)
		}
	}
	if n := h.BTP.Count("list") - lists; n != perSweep {
		t.Fatalf("%d lists, want the %d of one sweep", n, perSweep)
	}
}

func TestADeliveredCredentialDeletedOutsideCredbotIsMarkedDeleted(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	id := h.issueOne(t, ctx, "deleted-by-hand")
	other := h.issueOne(t, ctx, "still-here")
	if err := btpBehindCredbot(t, h).Delete(ctx, defaultScopeE2E, "deleted-by-hand"); err != nil {
		t.Fatal(err)
	}
	deletes := h.BTP.Count("delete")

	res := scopeResult(t, h.App.Inventory.Sweep(ctx))
	if res.Err != nil || strings.Join(res.Deleted, ",") != id || res.Unmanaged != 0 {
		t.Fatalf("sweep: %+v, want %s marked deleted", res, id)
	}
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StateDeleted {
		t.Fatalf("request: %+v %v", r, err)
	}
	if _, err := h.App.Store.NameHolder(ctx, defaultScopeE2E, "deleted-by-hand"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("the name is still reserved: %v", err)
	}
	if n := h.BTP.Count("delete"); n != deletes {
		t.Fatalf("credbot deleted at BTP %d times", n-deletes)
	}
	if r, err := h.App.Store.Get(ctx, other); err != nil || r.State != approval.StateDelivered {
		t.Fatalf("the credential still at BTP: %+v %v", r, err)
	}
	// The transition is in the audit trail with its note; the owner is told.
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		text := c.Params.Get("text")
		return c.Method == "chat.postMessage" && c.Channel == localAudit && strings.Contains(text, id) &&
			strings.Contains(text, "DELIVERED → DELETED by inventory") && strings.Contains(text, "deleted at BTP outside credbot")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "deleted-by-hand") &&
			strings.Contains(c.Text(), "not through credbot")
	}); err != nil {
		t.Fatal(err)
	}
	// A second sweep has nothing more to do.
	if again := scopeResult(t, h.App.Inventory.Sweep(ctx)); len(again.Deleted) != 0 {
		t.Fatalf("second sweep: %+v", again)
	}
}

func TestARateLimitedSweepMarksNothingAndWaitsBeforeListingAgain(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	id := h.issueOne(t, ctx, "deleted-by-hand")
	createAtBTP(t, ctx, h, "made-by-hand")
	if first := scopeResult(t, h.App.Inventory.Sweep(ctx)); first.Unmanaged != 1 {
		t.Fatalf("first sweep: %+v", first)
	}
	if err := btpBehindCredbot(t, h).Delete(ctx, defaultScopeE2E, "deleted-by-hand"); err != nil {
		t.Fatal(err)
	}

	// Every list is refused with 429: the client's own retries run out, the
	// sweep waits, tries each scope once more, and changes nothing.
	h.BTP.Inject(btptest.Fault{Action: "list", Times: -1, Status: http.StatusTooManyRequests})
	from := len(h.BTP.Requests())
	rep := h.App.Inventory.Sweep(ctx)
	h.BTP.ClearFaults()
	if n := rep.Failed(); n != len(rep.Scopes) {
		t.Fatalf("%d of %d scopes failed, want all", n, len(rep.Scopes))
	}
	if res := scopeResult(t, rep); len(res.Deleted) != 0 || len(res.Reported) != 0 {
		t.Fatalf("a failed list changed something: %+v", res)
	}
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StateDelivered {
		t.Fatalf("marked after a failed list: %+v %v", r, err)
	}
	if !h.metric(t, `credbot_unmanaged_credentials{scope="`+defaultScopeE2E.String()+`"} 1`) {
		t.Fatal("a failed list changed the count")
	}
	// Each scope was listed in two rounds, and the second began no sooner
	// than a second after the first round's last refusal.
	var lists []btptest.Request
	for _, r := range h.BTP.Requests()[from:] {
		if r.Action == "list" {
			lists = append(lists, r)
		}
	}
	perList := len(lists) / (2 * len(rep.Scopes))
	if perList*2*len(rep.Scopes) != len(lists) || perList < 2 {
		t.Fatalf("%d list requests for %d scopes", len(lists), len(rep.Scopes))
	}
	firstRoundEnd := lists[len(lists)/2-1].Time
	if gap := lists[len(lists)/2].Time.Sub(firstRoundEnd); gap < time.Second {
		t.Fatalf("the second round began %s after the first round's last 429, want at least 1s", gap)
	}

	// The next successful list marks it.
	if res := scopeResult(t, h.App.Inventory.Sweep(ctx)); strings.Join(res.Deleted, ",") != id {
		t.Fatalf("sweep after the rate limit: %+v", res)
	}
}

func TestInventoryIntervalIsCheckedAndCanBeTurnedOff(t *testing.T) {
	for v, want := range map[string]time.Duration{"": time.Hour, "30s": 30 * time.Second, "2d": 48 * time.Hour, "off": 0, "0": 0} {
		c, err := ConfigFromEnv(func(k string) string { return map[string]string{"CREDBOT_INVENTORY_INTERVAL": v}[k] })
		if err != nil || c.InventoryInterval != want {
			t.Errorf("%q: %v %v, want %v", v, c.InventoryInterval, err, want)
		}
	}
	for _, v := range []string{"500ms", "-1h", "soon"} {
		_, err := ConfigFromEnv(func(k string) string { return map[string]string{"CREDBOT_INVENTORY_INTERVAL": v}[k] })
		if err == nil || !strings.Contains(err.Error(), "CREDBOT_INVENTORY_INTERVAL") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestAnAdminAdoptsAnUnmanagedCredentialWhichThenLivesAndDiesAsCredbots(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	createAtBTP(t, ctx, h, "made-by-hand")
	if res := scopeResult(t, h.App.Inventory.Sweep(ctx)); strings.Join(res.Reported, ",") != "made-by-hand" {
		t.Fatalf("sweep: %+v", res)
	}
	// The admin's Home tab lists it, with the command that adopts it; the
	// requester's does not.
	for _, p := range []slackfake.Person{Admin, Requester} {
		if ack, err := h.Workspace.OpenHome(ctx, p); err != nil || ack.Status != http.StatusOK {
			t.Fatalf("open home: %v %v", ack, err)
		}
	}
	home, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "views.publish" && c.User == Admin.ID })
	if err != nil {
		t.Fatal(err)
	}
	if b := home.Body; !strings.Contains(b, "Unmanaged credentials* (1)") || !strings.Contains(b, "made-by-hand") || !strings.Contains(b, "/credbot adopt --subaccount "+btptest.DefaultSubaccount) {
		t.Fatalf("the admin's Home tab: %s", b)
	}
	other, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "views.publish" && c.User == Requester.ID })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(other.Body, "made-by-hand") {
		t.Fatal("a non-admin's Home tab lists unmanaged credentials")
	}

	adopt := "adopt " + subacct + " --name made-by-hand --owner <@" + Requester.ID + "|ada> --expires-in 30d"
	// Not everyone may, not for any owner, not for longer than the maximum.
	for _, c := range []struct {
		who  slackfake.Person
		text string
		want string
	}{
		{Requester, adopt, "may not adopt"},
		{Admin, strings.Replace(adopt, Requester.ID, Outsider.ID, 1), "may not hold API credentials"},
		{Admin, strings.Replace(adopt, "30d", "400d", 1), "at most 90d"},
		{Admin, strings.Replace(adopt, "made-by-hand", "not-there", 1), "no API credential"},
	} {
		if _, a := h.slash(t, ctx, c.who, c.text); !strings.Contains(a.Body, c.want) {
			t.Fatalf("/credbot %s by %s: %s, want %q", c.text, c.who.Name, a.Body, c.want)
		}
	}
	creates, deletes := h.BTP.Count("create"), h.BTP.Count("delete")
	_, answer := h.slash(t, ctx, Admin, adopt)
	if !strings.Contains(answer.Body, "is now managed by credbot") || !strings.Contains(answer.Body, "deletes it at BTP") || !strings.Contains(answer.Body, "never had its secret") {
		t.Fatalf("adopt: %s", answer.Body)
	}
	id, err := h.App.Store.NameHolder(ctx, defaultScopeE2E, "made-by-hand")
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StateDelivered || r.Requester != Requester.ID || r.AdoptedBy != Admin.ID || r.Credential == nil ||
		r.ExpiresAt.Sub(clock.Now()) != 30*24*time.Hour {
		t.Fatalf("adopted request: %+v %v", r, err)
	}
	if h.BTP.Count("create") != creates || h.BTP.Count("delete") != deletes {
		t.Fatal("adopting changed something at BTP")
	}
	if pending, _ := h.App.Store.PendingCount(ctx); pending != 0 {
		t.Fatalf("%d pending requests after an adoption", pending)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "under credbot's management")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localAudit && strings.Contains(c.Params.Get("text"), "new → DELIVERED by <@"+Admin.ID+">: adopted")
	}); err != nil {
		t.Fatal(err)
	}
	// Adopting twice finds it credbot's; the inventory no longer counts it.
	if _, a := h.slash(t, ctx, Admin, adopt); !strings.Contains(a.Body, "credbot's already") {
		t.Fatalf("second adopt: %s", a.Body)
	}
	if res := scopeResult(t, h.App.Inventory.Sweep(ctx)); res.Unmanaged != 0 || len(res.Deleted) != 0 {
		t.Fatalf("sweep after the adoption: %+v", res)
	}
	if !h.metric(t, `credbot_unmanaged_credentials{scope="`+defaultScopeE2E.String()+`"} 0`) {
		t.Fatal("the gauge still counts the adopted credential")
	}

	// At the end of its lifetime credbot deletes it, as its own.
	clock.Advance(30*24*time.Hour + time.Minute)
	sweepAll(t, ctx, []*App{h.App})
	sweepAll(t, ctx, []*App{h.App})
	if live := h.BTP.Live(defaultScopeE2E); len(live) != 0 {
		t.Fatalf("still live after its lifetime: %v", live)
	}
	if r, _ := h.App.Store.Get(ctx, id); r.State != approval.StateDeleted {
		t.Fatalf("state %s, want DELETED", r.State)
	}
}

func TestAReplicaStoppedMidSweepHandsTheLeaseBack(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.BTP.Inject(btptest.Fault{Action: "list", Times: -1, Latency: time.Minute})
	stopping, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	rep, swept, err := h.App.Inventory.Tick(stopping, "stopping")
	h.BTP.ClearFaults()
	if err != nil || !swept || rep.Failed() != len(rep.Scopes) {
		t.Fatalf("tick: swept %v, %d of %d failed, %v", swept, rep.Failed(), len(rep.Scopes), err)
	}
	// Another replica sweeps next, without waiting an interval.
	for {
		ok, err := h.App.Store.TakeLease(ctx, approval.InventoryLease, "next", time.Minute)
		if err != nil {
			t.Fatalf("the lease was never handed back: %v", err)
		}
		if ok {
			break
		}
	}
}

func TestAScopeThatCannotBeListedDoesNotStopTheOthers(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	createAtBTP(t, ctx, h, "made-by-hand")
	// BTP refuses one list (whichever comes first): no retry, no effect.
	h.BTP.Inject(btptest.Fault{Action: "list", BackendStatus: http.StatusForbidden, Body: `{"error":"not entitled"}`})
	rep := h.App.Inventory.Sweep(ctx)
	if rep.Failed() != 1 || len(rep.Scopes) != 7 {
		t.Fatalf("%d of %d scopes failed, want 1 of 7", rep.Failed(), len(rep.Scopes))
	}
	for _, r := range rep.Scopes {
		if r.Err != nil && (r.Listed != 0 || len(r.Reported) != 0 || len(r.Deleted) != 0) {
			t.Fatalf("the failed scope changed something: %+v", r)
		}
	}
	// A refusal is an answer: only a throttled scope is tried again.
	if n := h.BTP.Count("list"); n != 7 {
		t.Fatalf("%d lists, want one per scope", n)
	}
}
