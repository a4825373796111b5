package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// The trail records every decision and every look, not only the changes of
// state: refused attempts, admin lookups and deletes (managed or not) with
// their result, policy loads (old hash → new), replica starts — each with its
// actor, and rule and policy hash where a decision was made.
func TestTheAuditTrailRecordsRefusalsLookupsPolicyLoadsAndStarts(t *testing.T) {
	dir := shippedPolicyCopy(t, nil)
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": dir})
	ctx := ctxT(t)
	const admin = "U0LOCALADM"

	msg := h.request(t, ctx)
	h.click(t, ctx, Requester, msg, blockkit.ActionApprove) // own request: refused
	h.click(t, ctx, Outsider, msg, blockkit.ActionApprove)  // not an approver: refused
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	h.click(t, ctx, Outsider, dm, blockkit.ActionReveal) // not the requester: refused
	h.revealSecret(t, ctx, dm)

	if _, err := h.App.Service.ListCredentials(ctx, Outsider.ID, defaultScope); err == nil {
		t.Fatal("an outsider listed credentials")
	}
	if _, err := h.App.Service.ListCredentials(ctx, admin, defaultScope); err != nil {
		t.Fatal(err)
	}
	if _, err := h.App.Service.GetCredential(ctx, admin, defaultScope, "ci-payments"); err != nil {
		t.Fatal(err)
	}
	h.makeVictim(t, ctx, "made-by-terraform")
	if err := h.App.Service.DeleteCredential(ctx, admin, defaultScope, "made-by-terraform"); err != nil {
		t.Fatal(err)
	}
	if err := h.App.Service.DeleteCredential(ctx, admin, defaultScope, "ci-payments"); err != nil {
		t.Fatal(err)
	}
	oldHash := h.App.Policy.Hash()
	csv, _ := os.ReadFile(filepath.Join(dir, "policy.csv"))
	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), append(csv, []byte("\n# reviewed\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.App.Policy.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	entries := h.exportedEntries(t, ctx)
	find := func(what string, match func(e approval.AuditEntry) bool) approval.AuditEntry {
		t.Helper()
		return findEntry(t, entries, what, match)
	}
	withPolicy := func(what string, e approval.AuditEntry, rule bool) {
		t.Helper()
		if e.PolicyHash == "" || (rule && e.Rule == "") {
			t.Errorf("%s: rule %q, policy hash %q: a decision must say what decided it", what, e.Rule, e.PolicyHash)
		}
	}
	find("the replica's start", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventStart && strings.HasPrefix(e.Actor, "replica:") && strings.Contains(e.Result, "started credbot")
	})
	find("the first policy load", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventPolicy && e.PolicyHash == oldHash && strings.Contains(e.Result, "none → ")
	})
	find("the reload, old hash → new", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventPolicy && e.PolicyHash == h.App.Policy.Hash() && strings.Contains(e.Result, oldHash[:12]+" → ")
	})
	self := find("the requester approving her own request", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventRefused && e.Action == approval.ActionApprove && e.Actor == Requester.ID
	})
	if self.Rule == "" {
		t.Error("the refused self-approval names no rule")
	}
	withPolicy("an outsider's approval", find("an outsider's approval", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventRefused && e.Action == approval.ActionApprove && e.Actor == Outsider.ID
	}), false)
	find("an outsider's reveal", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventRefused && e.Action == "reveal" && e.Actor == Outsider.ID
	})
	withPolicy("an outsider's list", find("an outsider's list", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventRefused && e.Action == approval.ActionList && e.Actor == Outsider.ID
	}), false)
	withPolicy("the admin's list", find("the admin's list", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventList && e.Actor == admin && strings.Contains(e.Result, "credential(s)")
	}), true)
	withPolicy("the admin's get", find("the admin's get", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventGet && e.Actor == admin && e.Name == "ci-payments" && strings.Contains(e.Result, "issued by credbot")
	}), true)
	withPolicy("the admin's delete of an unmanaged credential", find("the admin's delete of an unmanaged credential", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventDelete && e.Actor == admin && e.Name == "made-by-terraform" && strings.Contains(e.Result, "deleted at BTP")
	}), true)
	withPolicy("the admin's delete of credbot's credential", find("the admin's delete of credbot's credential", func(e approval.AuditEntry) bool {
		return e.To == approval.StateDeleted && e.From == approval.StateDelivered && e.Actor == admin
	}), true)

	// Still one intact chain.
	rep, err := h.App.Store.VerifyAudit(ctx)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
	_ = btptest.DefaultSubaccount
}

// findEntry is the first of entries that match, or an error naming what
// the trail lacks.
func findEntry(t *testing.T, entries []approval.AuditEntry, what string, match func(e approval.AuditEntry) bool) approval.AuditEntry {
	t.Helper()
	for _, e := range entries {
		if match(e) {
			return e
		}
	}
	t.Errorf("the trail has no entry for %s", what)
	return approval.AuditEntry{}
}

// exportedEntries is the whole trail as `audit export` writes it.
func (h *harness) exportedEntries(t *testing.T, ctx context.Context) []approval.AuditEntry {
	t.Helper()
	var out bytes.Buffer
	if _, err := h.App.Store.ExportAudit(ctx, &out); err != nil {
		t.Fatal(err)
	}
	var entries []approval.AuditEntry
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec struct {
			Entry approval.AuditEntry `json:"entry"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		entries = append(entries, rec.Entry)
	}
	return entries
}

// TestEveryRefusedAttemptAndDecisionIsRecordedWithItsRuleAndPolicy: each
// kind of refusal the issue names — create, approve, deny, cancel, delete,
// reveal, get, and a create over the pending limit — leaves an entry with
// its actor and why; every decision that moves a request (create, approve,
// deny, cancel, an admin's and the owner's delete) carries the deciding rule and the
// hash of the policy in force; admin gets of credentials credbot did not
// issue, or that do not exist, are recorded with their result.
func TestEveryRefusedAttemptAndDecisionIsRecordedWithItsRuleAndPolicy(t *testing.T) {
	h := start(t, map[string]string{"CREDBOT_MAX_PENDING_PER_USER": "2"})
	ctx := ctxT(t)
	const admin = "U0LOCALADM"
	svc := h.App.Service
	hash := h.App.Policy.Hash()

	// Refused create: the outsider may not request here.
	if _, err := svc.Submit(ctx, approval.Submission{User: Outsider.ID, Scope: defaultScope, Name: "outsiders", Reason: "audit"}); err == nil {
		t.Fatal("the outsider's create was accepted")
	}
	// A request delivered and deleted by its owner.
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.revealSecret(t, ctx, h.waitDM(t, ctx))
	owned, err := h.App.Store.NameHolder(ctx, defaultScope, "ci-payments")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeleteOwn(ctx, owned, Outsider.ID); err == nil {
		t.Fatal("the outsider deleted someone else's credential")
	}
	if _, err := svc.DeleteOwn(ctx, owned, Requester.ID); err != nil {
		t.Fatal(err)
	}
	// Two pending requests, the limit: one denied by someone else first.
	var pending []string
	for _, name := range []string{"to-deny", "to-keep"} {
		r, err := svc.Submit(ctx, approval.Submission{User: Requester.ID, Scope: defaultScope, Name: name, Reason: "audit"})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, r.ID)
	}
	if _, err := svc.Submit(ctx, approval.Submission{User: Requester.ID, Scope: defaultScope, Name: "over-the-limit", Reason: "audit"}); !errors.Is(err, approval.ErrLimit) {
		t.Fatalf("a create over the pending limit: %v", err)
	}
	if _, err := svc.Deny(ctx, pending[0], Requester.ID, ""); err == nil {
		t.Fatal("the requester denied her own request")
	}
	if _, err := svc.Deny(ctx, pending[0], Outsider.ID, ""); err == nil {
		t.Fatal("the outsider denied a request")
	}
	if _, err := svc.Cancel(ctx, pending[0], Outsider.ID); err == nil {
		t.Fatal("the outsider cancelled someone else's request")
	}
	if _, err := svc.Deny(ctx, pending[0], Approver.ID, "not now"); err != nil {
		t.Fatal(err)
	}
	// Admin lookups and deletes, refused and done.
	if _, err := svc.GetCredential(ctx, Outsider.ID, defaultScope, "to-keep"); err == nil {
		t.Fatal("the outsider got a credential")
	}
	if err := svc.DeleteCredential(ctx, Outsider.ID, defaultScope, "to-keep"); err == nil {
		t.Fatal("the outsider deleted a credential")
	}
	if _, err := svc.Cancel(ctx, pending[1], Requester.ID); err != nil {
		t.Fatal(err)
	}
	h.makeVictim(t, ctx, "made-by-hand")
	if _, err := svc.GetCredential(ctx, admin, defaultScope, "made-by-hand"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetCredential(ctx, admin, defaultScope, "never-made"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("get of a missing credential: %v", err)
	}

	entries := h.exportedEntries(t, ctx)
	find := func(what string, match func(e approval.AuditEntry) bool) approval.AuditEntry {
		t.Helper()
		return findEntry(t, entries, what, match)
	}
	refused := func(what string, act approval.Action, actor string, policy bool) {
		t.Helper()
		e := find(what, func(e approval.AuditEntry) bool {
			return e.Event == approval.EventRefused && e.Action == act && e.Actor == actor
		})
		if e.Result == "" || (policy && e.PolicyHash != hash) || (!policy && e.Rule == "") {
			t.Errorf("%s: %+v: a refusal says why, and what decided it", what, e)
		}
	}
	refused("the outsider's create", approval.ActionCreate, Outsider.ID, true)
	refused("the outsider's delete of the owner's credential", approval.ActionDelete, Outsider.ID, false)
	refused("the requester's denial of her own request", "deny", Requester.ID, false)
	refused("the outsider's denial", "deny", Outsider.ID, true)
	refused("the outsider's cancel", "cancel", Outsider.ID, false)
	refused("the outsider's get", approval.ActionGet, Outsider.ID, true)
	over := find("the create over the pending limit", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventRefused && e.Action == approval.ActionCreate && e.Actor == Requester.ID && e.Name == "over-the-limit"
	})
	if !strings.Contains(over.Result, "2 requests waiting for approval") {
		t.Errorf("the create over the limit: result %q does not say which limit", over.Result)
	}
	admDelete := 0
	for _, e := range entries {
		if e.Event == approval.EventRefused && e.Action == approval.ActionDelete && e.Actor == Outsider.ID && e.Name == "to-keep" {
			admDelete++
		}
	}
	if admDelete != 1 {
		t.Errorf("%d entries for the outsider's admin delete, want 1", admDelete)
	}

	decided := func(what string, match func(e approval.AuditEntry) bool) {
		t.Helper()
		if e := find(what, match); e.Rule == "" || e.PolicyHash != hash {
			t.Errorf("%s: rule %q, policy hash %q (want %s): a decision says what decided it", what, e.Rule, e.PolicyHash, hash)
		}
	}
	decided("the create", func(e approval.AuditEntry) bool {
		return e.RequestID == owned && e.From == "" && e.To == approval.StatePending
	})
	decided("the approval", func(e approval.AuditEntry) bool {
		return e.RequestID == owned && e.From == approval.StatePending && e.To == approval.StateApproved && e.Actor == Approver.ID
	})
	decided("the denial", func(e approval.AuditEntry) bool {
		return e.RequestID == pending[0] && e.To == approval.StateDenied && e.Actor == Approver.ID && e.Reason == "not now"
	})
	decided("the requester's cancel", func(e approval.AuditEntry) bool {
		return e.RequestID == pending[1] && e.To == approval.StateCancelled && e.Actor == Requester.ID
	})
	decided("the owner's delete", func(e approval.AuditEntry) bool {
		return e.RequestID == owned && e.From == approval.StateDelivered && e.To == approval.StateDeleted && e.Actor == Requester.ID
	})

	find("the admin's get of a credential credbot did not issue", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventGet && e.Actor == admin && e.Name == "made-by-hand" && e.Result == "found, not issued by credbot"
	})
	find("the admin's get of a credential that does not exist", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventGet && e.Actor == admin && e.Name == "never-made" && e.Result == "not found"
	})
	find("the replica's start, with its version", func(e approval.AuditEntry) bool {
		return e.Event == approval.EventStart && strings.Contains(e.Result, "started credbot (devel) (revision ")
	})

	// As README says: entries that change no request have no from and to.
	var raw bytes.Buffer
	if _, err := h.App.Store.ExportAudit(ctx, &raw); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(raw.String()), "\n") {
		if strings.Contains(line, `"event":`) && (strings.Contains(line, `"to":`) || strings.Contains(line, `"from":`)) {
			t.Errorf("an entry that changes no request names a state: %s", line)
		}
	}
}

// TestALookupThatCannotBeRecordedIsNotAnswered: a security team must be able
// to see who looked, so when the audit trail cannot take the entry, an
// admin's list and get answer nothing.
func TestALookupThatCannotBeRecordedIsNotAnswered(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	const admin = "U0LOCALADM"
	h.makeVictim(t, ctx, "made-by-hand")
	if _, err := h.App.Service.GetCredential(ctx, admin, defaultScope, "made-by-hand"); err != nil {
		t.Fatal(err)
	}
	// Someone breaks the audit stream: nothing can be appended to it.
	key := h.App.Store.AuditKey()
	h.redis.Client.Del(ctx, key)
	h.redis.Client.Set(ctx, key, "not a stream", 0)
	if creds, err := h.App.Service.ListCredentials(ctx, admin, defaultScope); err == nil || len(creds) != 0 {
		t.Fatalf("an unrecorded list was answered: %v, %v", creds, err)
	}
	if v, err := h.App.Service.GetCredential(ctx, admin, defaultScope, "made-by-hand"); err == nil || v.Credential.Name != "" {
		t.Fatalf("an unrecorded get was answered: %+v, %v", v, err)
	}
	h.redis.Client.Del(ctx, key)
}

// A delete refused at its prompt (the /credbot delete command, before any
// button) is a refused attempt too, and the trail has it.
func TestADeleteRefusedAtItsPromptIsRecorded(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	h.makeVictim(t, ctx, "made-by-hand")
	if _, a := h.slash(t, ctx, Requester, "delete "+subacct+" --name made-by-hand"); !strings.Contains(a.Body, "may not delete") || strings.Contains(a.Body, blockkit.ActionDelete) {
		t.Fatalf("requester's delete prompt: %s", a.Body)
	}
	n := 0
	for _, e := range h.exportedEntries(t, ctx) {
		if e.Event == approval.EventRefused && e.Action == approval.ActionDelete && e.Actor == Requester.ID && e.Name == "made-by-hand" {
			n++
			if e.PolicyHash == "" || e.Result == "" {
				t.Errorf("the refusal does not say what decided it: %+v", e)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d refused-delete entries for the requester's prompt, want 1", n)
	}
	if c := h.BTP.Count("delete"); c != 0 {
		t.Fatalf("%d deletes at BTP", c)
	}
}
