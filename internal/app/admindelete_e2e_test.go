package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/slack-go/slack"
)

// staleDeletePrompt is an admin's delete prompt for name as it would have
// been rendered before a request took the name: a Delete button a click can
// still press (or a crafted payload carry) after the situation changed.
func staleDeletePrompt(t *testing.T, name string) slackfake.Message {
	t.Helper()
	b, err := json.Marshal([]slack.Block{slack.NewActionBlock("delete:"+name,
		blockkit.Button(blockkit.ActionDelete, defaultScopeE2E.String()+"|"+name, "Delete "+name))})
	if err != nil {
		t.Fatal(err)
	}
	return slackfake.Message{Channel: "D0LOCALADM", Blocks: string(b)}
}

// An admin's delete of a name credbot is creating right now (created at BTP,
// the request still MINTING) deletes nothing: the prompt and a press of a
// Delete button are both refused, naming the request and what to do, and
// recorded as refused. The request then delivers a secret that works, and
// the admin's delete once it is issued goes through the request.
func TestAdminDeleteOfANameBeingCreatedIsRefusedAndTheRequestStillDelivers(t *testing.T) {
	created, resume := make(chan string, 1), make(chan struct{})
	var release sync.Once
	h := startWith(t, nil, Deps{Hooks: approval.Hooks{AfterCreate: func(id string) {
		select {
		case created <- id:
		default:
		}
		<-resume
	}}})
	t.Cleanup(func() { release.Do(func() { close(resume) }) }) // before the bot stops
	ctx := ctxT(t)
	const name = "being-made"

	h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "admin delete test"`, subacct, name))
	h.click(t, ctx, Approver, h.approvalMessage(t, ctx, name), blockkit.ActionApprove)
	var id string
	select {
	case id = <-created:
	case <-ctx.Done():
		t.Fatal("the credential was never created at BTP")
	}
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StateMinting {
		t.Fatalf("request %+v %v: the test needs it MINTING", r, err)
	}
	if live := h.BTP.Live(defaultScopeE2E); len(live) != 1 || live[0] != name {
		t.Fatalf("live at BTP: %v, want the credential being created", live)
	}

	// The prompt refuses at once: no Delete button, the request named.
	_, prompt := h.slash(t, ctx, Admin, "delete "+subacct+" --name "+name)
	if _, err := slackfake.FindButtonValue(slackfake.Reply(prompt).Blocks, blockkit.ActionDelete, ""); err == nil {
		t.Fatalf("the prompt offers a Delete button for a credential being created: %s", prompt.Body)
	}
	for _, want := range []string{id, "minting", "Nothing was deleted"} {
		if !strings.Contains(prompt.Body, want) {
			t.Errorf("the refused prompt lacks %q: %s", want, prompt.Body)
		}
	}
	if strings.Contains(prompt.Body, "not issued by credbot") || strings.Contains(prompt.Body, "Not issued by credbot") {
		t.Errorf("the prompt calls credbot's own credential unmanaged: %s", prompt.Body)
	}

	// A Delete button pressed anyway (a prompt from before) is refused too.
	ack, err := h.Workspace.ClickValue(ctx, Admin, staleDeletePrompt(t, name), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatal(err)
	}
	got := h.answer(t, ctx, ack).Body
	for _, want := range []string{":warning:", id, "minting", "Nothing was deleted"} {
		if !strings.Contains(got, want) {
			t.Errorf("the refused delete lacks %q: %s", want, got)
		}
	}
	if strings.Contains(got, "Deleted") {
		t.Errorf("the admin was told it was deleted: %s", got)
	}
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes at BTP of a credential credbot is creating", n)
	}

	// Both refusals are in the audit trail, against the request, with the
	// rule and the policy in force; nothing says "not issued by credbot".
	refusals := 0
	for _, e := range h.auditEvents(t, ctx, approval.EventRefused) {
		if e.Action == approval.ActionDelete && e.Actor == Admin.ID && e.Name == name {
			refusals++
			if e.RequestID != id || e.Rule == "" || e.PolicyHash == "" || !strings.Contains(e.Result, "MINTING") {
				t.Errorf("refusal entry: %+v", e)
			}
		}
	}
	if refusals != 2 {
		t.Errorf("%d refused deletes recorded, want 2 (the prompt and the click)", refusals)
	}
	for _, e := range h.auditEvents(t, ctx, approval.EventDelete) {
		t.Errorf("a delete was recorded: %+v", e)
	}

	// The request goes on and delivers a secret that works.
	release.Do(func() { close(resume) })
	secret := h.revealSecret(t, ctx, h.waitReveal(t, ctx, id))
	h.assertWorks(t, ctx, id, secret)
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes at BTP", n)
	}

	// Issued, the admin's delete is offered and goes through the request.
	_, prompt = h.slash(t, ctx, Admin, "delete "+subacct+" --name "+name)
	ack, err = h.Workspace.ClickValue(ctx, Admin, slackfake.Reply(prompt), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatalf("no Delete button once issued: %v\n%s", err, prompt.Body)
	}
	if a := h.answer(t, ctx, ack); !strings.Contains(a.Body, "Deleted") {
		t.Fatalf("admin delete once issued: %s", a.Body)
	}
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StateDeleted {
		t.Fatalf("request after the admin's delete: %+v %v", r, err)
	}
}

// A name held by a request still waiting for approval is not deleted either,
// even when something made by hand sits under it at BTP meanwhile: the admin
// is told which request holds it and how to end it.
func TestAdminDeleteOfANameHeldByAPendingRequestIsRefused(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	const name = "asked-for"
	h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "admin delete test"`, subacct, name))
	h.approvalMessage(t, ctx, name)
	id, err := h.App.Store.NameHolder(ctx, defaultScopeE2E, name)
	if err != nil {
		t.Fatal(err)
	}
	createAtBTP(t, ctx, h, name) // by hand, after the request took the name

	err = h.App.Service.DeleteCredential(ctx, Admin.ID, defaultScopeE2E, name)
	var ue *approval.UserError
	if !errors.Is(err, approval.ErrConflict) || !errors.As(err, &ue) {
		t.Fatalf("delete of a pending request's name: %v", err)
	}
	for _, want := range []string{id, "pending", "deny", "cancel", "Nothing was deleted"} {
		if !strings.Contains(ue.Msg, want) {
			t.Errorf("the refusal lacks %q: %s", want, ue.Msg)
		}
	}
	if n := h.BTP.Count("delete"); n != 0 {
		t.Fatalf("%d deletes at BTP", n)
	}
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StatePending {
		t.Fatalf("request after the refused delete: %+v %v", r, err)
	}
}

// An admin's delete of a name no request holds holds the name itself until
// BTP answered: a request for that name made meanwhile — a break-glass is
// minted within a second — is refused, and so never becomes the credential
// the admin's delete removes. The hold lapses by itself and is released
// after the delete.
func TestAnAdminsDeleteHoldsTheNameUntilBTPAnswered(t *testing.T) {
	inDelete, resume := make(chan string, 1), make(chan struct{})
	var release sync.Once
	h := startWith(t, nil, Deps{Hooks: approval.Hooks{BeforeAdminDelete: func(name string) { inDelete <- name; <-resume }}})
	t.Cleanup(func() { release.Do(func() { close(resume) }) }) // before the bot stops
	ctx := ctxT(t)
	const name = "about-to-go"

	// The admin presses Delete for a credential no request holds (nothing at
	// BTP either: someone removed it in the cockpit since the prompt).
	ack, err := h.Workspace.ClickValue(ctx, Admin, staleDeletePrompt(t, name), blockkit.ActionDelete, "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-inDelete:
	case <-ctx.Done():
		t.Fatal("the admin's delete never reached BTP")
	}
	// Meanwhile a request for the same name is refused, saying why.
	_, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "hold test"`, subacct, name))
	for _, want := range []string{":warning:", "an admin's delete in progress", "free again within minutes"} {
		if !strings.Contains(a.Body, want) {
			t.Errorf("the create during the admin's delete lacks %q: %s", want, a.Body)
		}
	}
	if mine, _, err := h.App.Service.Requests(ctx, Requester.ID); err != nil || len(mine) != 0 {
		t.Fatalf("requests made during the admin's delete: %d (%v)", len(mine), err)
	}

	key := h.redis.Prefix + ":cred:" + defaultScopeE2E.String() + "/" + name
	if ttl, err := h.redis.Client.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > 5*time.Minute {
		t.Fatalf("the admin's hold of the name has TTL %s (%v); it must lapse by itself", ttl, err)
	}
	release.Do(func() { close(resume) })
	if got := h.answer(t, ctx, ack).Body; !strings.Contains(got, "there is no API credential") {
		t.Fatalf("the admin's delete: %s", got)
	}
	// Released: the name can be asked for again.
	if n, err := h.redis.Client.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("the name is still held after the delete (%d, %v)", n, err)
	}
	if _, a := h.slash(t, ctx, Requester, fmt.Sprintf(`create %s --name %s --reason "hold test"`, subacct, name)); !strings.Contains(a.Body, "waiting for approval") {
		t.Fatalf("the create after the admin's delete: %s", a.Body)
	}
}
