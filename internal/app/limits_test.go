package app

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// The limits that keep one person from crowding out everyone else: pending
// requests per requester, commands per minute, and the lookup cache that
// keeps repeated list/get from spending the shared BTP budget.

var requestIDInAnswer = regexp.MustCompile("Request `(r[0-9a-f]{12})`")

func TestASixthPendingRequestIsRefusedAndNothingIsPostedToApprovers(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_MAX_PENDING_PER_USER": "5"})
	ctx := ctxT(t)
	var first string
	for i := range 5 {
		_, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name pending-%d --reason "limit test"`, subacct, i))
		m := requestIDInAnswer.FindStringSubmatch(a.Body)
		if m == nil || !strings.Contains(a.Body, "waiting for approval") {
			t.Fatalf("request %d: %s", i, a.Body)
		}
		if i == 0 {
			first = m[1]
		}
	}
	_, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name pending-5 --reason "limit test"`, subacct))
	for _, want := range []string{"you have 5 requests waiting for approval (the most allowed)", first, "Cancel one with `/credbot cancel", "or wait for a decision"} {
		if !strings.Contains(a.Body, want) {
			t.Errorf("the sixth request's answer lacks %q: %s", want, a.Body)
		}
	}
	// The refusal is the refused job's last act: nothing can be posted after it.
	if n := approvalPosts(h); n != 5 {
		t.Fatalf("%d approval messages for 5 accepted requests and a refused one", n)
	}
	if mine, _, err := h.App.Service.Requests(ctx, Requester.ID); err != nil || len(mine) != 5 {
		t.Fatalf("%d requests stored (%v), want 5", len(mine), err)
	}

	// Doing what the message says works: cancel one, and the next is taken.
	if _, c := h.slash(t, ctx, Requester, "cancel "+first); !strings.Contains(c.Body, "cancelled") {
		t.Fatalf("cancel: %s", c.Body)
	}
	if _, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name pending-6 --reason "limit test"`, subacct)); !strings.Contains(a.Body, "waiting for approval") {
		t.Fatalf("after a cancel: %s", a.Body)
	}
	if n := approvalPosts(h); n != 6 {
		t.Fatalf("%d approval messages, want 6", n)
	}
}

// TestABurstOfRequestsFromOnePersonStopsAtTheLimit: requests fired at once,
// done by many workers in parallel, still leave exactly the limit pending.
func TestABurstOfRequestsFromOnePersonStopsAtTheLimit(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_MAX_PENDING_PER_USER": "5", "CREDBOT_WORKERS": "16"})
	ctx := ctxT(t)
	const n = 16
	answers := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ack, err := h.Workspace.Slash(ctx, Requester, fmt.Sprintf(`create %s --name burst-%02d --reason "burst"`, subacct, i))
			if err != nil || ack.Status != http.StatusOK {
				t.Errorf("slash %d: %d %v", i, ack.Status, err)
				return
			}
			c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = c.Body
		})
	}
	wg.Wait()
	accepted, refused := 0, 0
	for _, a := range answers {
		switch {
		case strings.Contains(a, "waiting for approval. You will get a DM"):
			accepted++
		case strings.Contains(a, "the most allowed"):
			refused++
		default:
			t.Errorf("unexpected answer: %s", a)
		}
	}
	if accepted != 5 || refused != n-5 || approvalPosts(h) != 5 {
		t.Fatalf("%d accepted, %d refused, %d approval messages; want 5, %d, 5", accepted, refused, approvalPosts(h), n-5)
	}
}

func TestTheTwentyFirstCommandInAMinuteIsRefusedAndRecordsNothing(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_COMMANDS_PER_MINUTE": "20"})
	ctx := ctxT(t)
	for i := range 20 {
		ack, err := h.Workspace.Slash(ctx, Requester, "status")
		if err != nil || ack.Status != http.StatusOK || !strings.Contains(ack.Body, "Looking up") {
			t.Fatalf("command %d: %d %v %s", i+1, ack.Status, err, ack.Body)
		}
		// Help and usage errors are answered in the ack and do not count.
		if ack, err := h.Workspace.Slash(ctx, Requester, "help"); err != nil || !strings.Contains(ack.Body, "hands out SAP BTP API credentials") {
			t.Fatalf("help: %v %s", err, ack.Body)
		}
		if ack, err := h.Workspace.Slash(ctx, Requester, "list"); err != nil || !strings.Contains(ack.Body, ":warning:") {
			t.Fatalf("usage error: %v %s", err, ack.Body)
		}
	}
	ack, err := h.Workspace.Slash(ctx, Requester, fmt.Sprintf(`create %s --name one-too-many --reason "limit test"`, subacct))
	if err != nil || ack.Status != http.StatusOK {
		t.Fatalf("21st command: %d %v", ack.Status, err)
	}
	if !regexp.MustCompile(`at most 20 commands a minute from one person; try again in ([1-9]|[1-5][0-9]|60) s`).MatchString(ack.Body) ||
		!strings.Contains(ack.Body, "Nothing was done") {
		t.Fatalf("21st command's ack: %s", ack.Body)
	}
	// Nothing was recorded: the inbox record and its replay key are one step
	// before the ack, and there is no replay key.
	if n, err := h.redis.Client.Exists(ctx, h.redis.Prefix+":once:slack:command:"+ack.Trigger).Result(); err != nil || n != 0 {
		t.Fatalf("the refused command was recorded (%d, %v)", n, err)
	}
	if mine, _, err := h.App.Service.Requests(ctx, Requester.ID); err != nil || len(mine) != 0 {
		t.Fatalf("requests after a refused create: %d (%v)", len(mine), err)
	}
	// The limit is per person.
	if _, a := h.slash(t, ctx, Approver, "status"); !strings.Contains(a.Body, "Your requests") {
		t.Fatalf("another person's command: %s", a.Body)
	}
	if n := approvalPosts(h); n != 0 {
		t.Fatalf("%d approval messages from a refused create", n)
	}
}

func TestRepeatedListsReachBTPOnceUntilCredbotDeletesThere(t *testing.T) {
	h := start(t, nil) // CREDBOT_LOOKUP_CACHE defaults to 30s
	ctx := ctxT(t)
	createAtBTP(t, ctx, h, "by-hand-1", "by-hand-2")
	lists, gets := h.BTP.Count("list"), h.BTP.Count("get")

	for i := range 3 {
		if _, a := h.slash(t, ctx, Admin, "list "+subacct); !strings.Contains(a.Body, "by-hand-1") || !strings.Contains(a.Body, "by-hand-2") {
			t.Fatalf("list %d: %s", i, a.Body)
		}
	}
	if n := h.BTP.Count("list") - lists; n != 1 {
		t.Fatalf("3 lists within the cache's window reached BTP %d times, want 1", n)
	}
	// Authorization is still checked on every call, before the cache.
	if _, a := h.slash(t, ctx, Outsider, "list "+subacct); !strings.Contains(a.Body, ":warning:") || strings.Contains(a.Body, "by-hand-1") {
		t.Fatalf("an outsider's list with a warm cache: %s", a.Body)
	}
	for range 2 {
		if _, a := h.slash(t, ctx, Admin, "get "+subacct+" --name by-hand-1"); !strings.Contains(a.Body, "Client ID: ") {
			t.Fatalf("get: %s", a.Body)
		}
	}
	if n := h.BTP.Count("get") - gets; n != 1 {
		t.Fatalf("2 gets reached BTP %d times, want 1", n)
	}

	// A delete through credbot forgets the scope's cached answers.
	_, prompt := h.slash(t, ctx, Admin, "delete "+subacct+" --name by-hand-1")
	ack, err := h.Workspace.ClickValue(ctx, Admin, slackfake.Reply(prompt), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatal(err)
	}
	if a := h.answer(t, ctx, ack); !strings.Contains(a.Body, "Deleted") {
		t.Fatalf("delete: %s", a.Body)
	}
	if _, a := h.slash(t, ctx, Admin, "list "+subacct); strings.Contains(a.Body, "by-hand-1") || !strings.Contains(a.Body, "by-hand-2") {
		t.Fatalf("list after the delete: %s", a.Body)
	}
	if n := h.BTP.Count("list") - lists; n != 2 {
		t.Fatalf("the list after a delete did not reach BTP (%d lists in all, want 2)", n)
	}
	gets = h.BTP.Count("get")
	if _, a := h.slash(t, ctx, Admin, "get "+subacct+" --name by-hand-1"); !strings.Contains(a.Body, "there is no API credential") {
		t.Fatalf("get after the delete: %s", a.Body)
	}
	if n := h.BTP.Count("get") - gets; n != 1 {
		t.Fatalf("the get after a delete reached BTP %d times, want 1", n)
	}
}

func TestLimitsHaveDefaultsAndRefuseNonsense(t *testing.T) {
	cfg, err := ConfigFromEnv(func(string) string { return "" })
	if err != nil || cfg.MaxPendingPerUser != 5 || cfg.CommandsPerMinute != 20 || cfg.LookupCache != 30*time.Second {
		t.Fatalf("defaults: %d pending, %d commands, cache %s (%v)", cfg.MaxPendingPerUser, cfg.CommandsPerMinute, cfg.LookupCache, err)
	}
	off := map[string]string{"CREDBOT_MAX_PENDING_PER_USER": "0", "CREDBOT_COMMANDS_PER_MINUTE": "0", "CREDBOT_LOOKUP_CACHE": "0s"}
	if cfg, err := ConfigFromEnv(func(k string) string { return off[k] }); err != nil || cfg.MaxPendingPerUser != 0 || cfg.CommandsPerMinute != 0 || cfg.LookupCache != 0 {
		t.Fatalf("0 turns each off: %+v %v", cfg, err)
	}
	for k, v := range map[string]string{
		"CREDBOT_MAX_PENDING_PER_USER": "-1", "CREDBOT_COMMANDS_PER_MINUTE": "many", "CREDBOT_LOOKUP_CACHE": "1h",
	} {
		if _, err := ConfigFromEnv(func(key string) string { return map[string]string{k: v}[key] }); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}
