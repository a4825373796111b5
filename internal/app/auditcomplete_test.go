package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
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
	h.click(t, ctx, Requester, msg, handlers.ActionApprove) // own request: refused
	h.click(t, ctx, Outsider, msg, handlers.ActionApprove)  // not an approver: refused
	h.click(t, ctx, Approver, msg, handlers.ActionApprove)
	dm := h.waitDM(t, ctx)
	h.click(t, ctx, Outsider, dm, handlers.ActionReveal) // not the requester: refused
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
	find := func(what string, match func(e approval.AuditEntry) bool) approval.AuditEntry {
		t.Helper()
		for _, e := range entries {
			if match(e) {
				return e
			}
		}
		t.Errorf("the trail has no entry for %s", what)
		return approval.AuditEntry{}
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
