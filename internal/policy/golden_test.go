package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

const (
	gD1 = "d1000000-0000-4000-8000-000000000001" // finance, under the GA
	gD2 = "d2000000-0000-4000-8000-000000000002" // finance-eu, under D1
	gD3 = "d3000000-0000-4000-8000-000000000003" // sandbox, under the GA
	gS1 = "51000000-0000-4000-8000-000000000001" // under D2
	gS2 = "52000000-0000-4000-8000-000000000002" // under D3
	gS3 = "53000000-0000-4000-8000-000000000003" // directly under the GA
	gS4 = "54000000-0000-4000-8000-000000000004" // not in hierarchy.yaml
)

func sub(id string) approval.Scope { return approval.Scope{Kind: approval.ScopeSubaccount, ID: id} }
func dir(id string) approval.Scope { return approval.Scope{Kind: approval.ScopeDirectory, ID: id} }
func ga(id string) approval.Scope  { return approval.Scope{Kind: approval.ScopeGlobalAccount, ID: id} }

func goldenDirectory() *fakeDirectory {
	return newFakeDirectory().
		active("U0ANN", "ann@example.com").
		set(Identity{ID: "U0ANNGUEST", Email: "Ann@Example.com", Active: true, Guest: true}).
		set(Identity{ID: "U0ANNGONE", Email: "ann@example.com"}).
		active("U0MAL", "mallory@example.com").
		set(Identity{ID: "U0MALBOT", Email: "mallory@example.com", Active: true, Bot: true}).
		active("U0AUD", "aud@example.com").
		set(Identity{ID: "U0AUDGONE", Email: "gone@example.com"}).
		group("auditors", "U0AUD", "U0AUDGONE").
		group("S0ADMINS", "U0ADM").
		group("blocked", "U0APR2")
}

func loadGolden(t *testing.T, dir string, d Directory) *Engine {
	t.Helper()
	e, err := Load(context.Background(), Options{Dir: dir, Directory: d})
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return e
}

// TestGoldenDecisions is the decision table: deny over allow, glob edge cases,
// hierarchy, self-approval, email and group subjects. Every case is also put
// to plain Casbin running the same model, which must agree.
func TestGoldenDecisions(t *testing.T) {
	d := goldenDirectory()
	e := loadGolden(t, "testdata/golden", d)
	ce, err := newCasbinEnforcer(e.snap.Load())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		user  string
		act   approval.Action
		scope approval.Scope
		owner string
		allow bool
		rule  string // substring of Decision.Rule; "" means default deny
	}{
		// Hierarchy: a rule on the global account covers nested directories.
		{"GA rule covers nested subaccount", "U0READER", "list", sub(gS1), "", true, "p, role:reader, globalaccount:acme, list, allow"},
		{"GA rule covers GA", "U0READER", "list", ga("acme"), "", true, "role:reader"},
		{"GA rule does not cover another GA with that prefix", "U0READER", "list", ga("acme-evil"), "", false, ""},
		{"GA rule does not cover a scope outside the hierarchy", "U0READER", "list", sub(gS4), "", false, ""},
		{"role grants only its action", "U0READER", "get", sub(gS1), "", false, ""},

		// Globs: * is one whole scope, ** any run of scopes.
		{"ga/directory:* matches a top directory", "U0GLOB", "get", dir(gD1), "", true, "globalaccount:acme/directory:*"},
		{"ga/directory:* covers below a top directory", "U0GLOB", "get", dir(gD2), "", true, "globalaccount:acme/directory:*"},
		{"ga/directory:* does not match the GA itself", "U0GLOB", "get", ga("acme"), "", false, ""},
		{"ga/directory:* does not match a subaccount under the GA", "U0GLOB", "get", sub(gS3), "", false, ""},
		{"subaccount:* matches an unlisted subaccount", "U0GLOB", "delete", sub(gS4), "", true, "subaccount:*"},
		{"subaccount:* does not match a directory", "U0GLOB", "delete", dir(gD1), "", false, ""},
		{"** spans nested directories", "U0GLOB", "create", sub(gS1), "", true, "/**/subaccount:" + gS1},
		{"** pattern needs its literal ends", "U0GLOB", "create", sub(gS2), "", false, ""},

		// Deny over allow.
		{"allow everywhere", "U0ANY", "list", sub(gS1), "", true, "p, U0ANY, **, list, allow"},
		{"deny on a directory wins below it", "U0ANY", "list", sub(gS2), "", false, "p, U0ANY, directory:" + gD3 + ", list, deny"},
		{"deny on a directory wins on it", "U0ANY", "list", dir(gD3), "", false, "list, deny"},

		// Approvals, roles scoped by domain, role inheritance.
		{"approver approves another's request", "U0APR", "approve", sub(gS1), "U0READER", true, "role:approver"},
		{"approver cannot approve own request", "U0APR", "approve", sub(gS1), "U0APR", false, SelfApprovalRule},
		{"approve without the requester is refused", "U0APR", "approve", sub(gS3), "", false, ""},
		{"role held in a directory applies below it", "U0APRFIN", "approve", sub(gS1), "U0READER", true, "role:approver"},
		{"role held in a directory does not apply beside it", "U0APRFIN", "approve", sub(gS3), "U0READER", false, ""},
		{"inherited role applies where the membership holds", "U0LEAD", "approve", sub(gS2), "U0READER", true, "role:approver"},
		{"inherited role does not apply elsewhere", "U0LEAD", "approve", sub(gS1), "U0READER", false, ""},
		{"deny through a group beats allow through a role", "U0APR2", "approve", sub(gS1), "U0READER", false, "p, group:blocked, **, approve, deny"},

		// Emails: trusted for active full members only; denies apply to all.
		{"email of an active member", "U0ANN", "create", sub(gS1), "", true, "email:ann@example.com"},
		{"email of a guest grants nothing", "U0ANNGUEST", "create", sub(gS1), "", false, ""},
		{"email of a deactivated user grants nothing", "U0ANNGONE", "create", sub(gS1), "", false, ""},
		{"email deny (written mixed-case)", "U0MAL", "create", sub(gS1), "", false, "email:mallory@example.com, **, create, deny"},
		{"email deny applies to a bot allowed by ID", "U0MALBOT", "create", sub(gS1), "", false, "email:mallory@example.com"},

		// Groups: by handle and by ID.
		{"group by handle", "U0AUD", "get", sub(gS1), "", true, "group:auditors"},
		{"group of a deactivated member grants nothing", "U0AUDGONE", "get", sub(gS1), "", false, ""},
		{"group by ID through a role", "U0ADM", "delete", sub(gS2), "", true, "p, role:admin, **, delete, allow"},
		{"not in the group", "U0READER", "delete", sub(gS2), "", false, ""},

		// Scope IDs are case-insensitive, like approval.Scope.String.
		{"upper-case GUID", "U0READER", "list", sub(strings.ToUpper(gS1)), "", true, "role:reader"},

		// Invalid input is denied, not an error.
		{"empty user", "", "list", sub(gS1), "", false, ""},
		{"not a Slack ID", "role:reader", "list", sub(gS1), "", false, ""},
		{"invalid scope", "U0READER", "list", sub("not-a-guid"), "", false, ""},
		{"unknown scope kind", "U0READER", "list", approval.Scope{Kind: "org", ID: "x"}, "", false, ""},
		{"unknown action", "U0ANY", "launch", sub(gS1), "", false, ""},
		{"breakglass without a row", "U0ANY", approval.ActionBreakglass, sub(gS1), "", false, ""},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Authorize(ctx, tt.user, tt.act, tt.scope, tt.owner)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if got.Allowed != tt.allow {
				t.Errorf("Allowed = %v, want %v (%s; rule %q)", got.Allowed, tt.allow, got.Reason, got.Rule)
			}
			if tt.rule == "" && got.Rule != "" || !strings.Contains(got.Rule, tt.rule) {
				t.Errorf("Rule = %q, want %q", got.Rule, tt.rule)
			}
			if got.Reason == "" {
				t.Error("no Reason")
			}
			if got.PolicyHash != e.Hash() || len(got.PolicyHash) != 64 {
				t.Errorf("PolicyHash = %q, want %q", got.PolicyHash, e.Hash())
			}
			// The same question to Casbin, skipping what code refuses before
			// the model is asked (invalid input).
			if refusedBeforeModel(tt.user, tt.act, tt.scope, tt.owner) {
				return
			}
			s := e.snap.Load()
			names, err := e.ids.names(ctx, tt.user, s)
			if err != nil {
				t.Fatal(err)
			}
			ok, rule, err := ce.decide(names, tt.act, s.pathOf(tt.scope.String()), tt.user, tt.owner)
			if err != nil {
				t.Fatalf("casbin: %v", err)
			}
			if ok != tt.allow {
				t.Errorf("casbin allowed = %v (rule %q), want %v", ok, rule, tt.allow)
			}
		})
	}
}

// TestSelfApprovalInModel shows the model itself refuses self-approval, with
// the code's check out of the way: Casbin, given a row that allows the
// requester to approve, still denies.
func TestSelfApprovalInModel(t *testing.T) {
	e := loadGolden(t, "testdata/golden", nil)
	ce, err := newCasbinEnforcer(e.snap.Load())
	if err != nil {
		t.Fatal(err)
	}
	path := e.snap.Load().pathOf(sub(gS1).String())
	for _, owner := range []string{"U0APR", "U0READER"} {
		ok, _, err := ce.decide([]name{{name: "U0APR", trusted: true}}, approval.ActionApprove, path, "U0APR", owner)
		if err != nil {
			t.Fatal(err)
		}
		if want := owner != "U0APR"; ok != want {
			t.Errorf("casbin: U0APR approves request of %s = %v, want %v", owner, ok, want)
		}
	}
}

func TestDirectoryFailureDenies(t *testing.T) {
	d := goldenDirectory()
	e := loadGolden(t, "testdata/golden", d)
	d.err = errSlackDown
	got, err := e.Authorize(context.Background(), "U0READER", "list", sub(gS1), "")
	if !errors.Is(err, errSlackDown) {
		t.Errorf("err = %v, want %v", err, errSlackDown)
	}
	if got.Allowed {
		t.Error("allowed while the directory is down")
	}
}

func TestNoDirectoryOnlyUserIDs(t *testing.T) {
	e := loadGolden(t, "testdata/golden", nil)
	for _, c := range []struct {
		user  string
		act   approval.Action
		allow bool
	}{
		{"U0READER", "list", true},
		{"U0ANN", "create", false}, // email rows cannot match
		{"U0AUD", "get", false},    // nor group rows
		{"U0MALBOT", "create", true},
	} {
		got, err := e.Authorize(context.Background(), c.user, c.act, sub(gS1), "")
		if err != nil || got.Allowed != c.allow {
			t.Errorf("%s %s: allowed=%v err=%v, want %v", c.user, c.act, got.Allowed, err, c.allow)
		}
	}
}
