package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

func TestAssignRowsMatchRoleCollectionsByGlob(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	ctx := context.Background()
	cases := []struct {
		user, collection string
		scope            approval.Scope
		want             bool
	}{
		{"U0LOCALREQ", "Subaccount Viewer", sub(localSub), true},
		{"U0LOCALREQ", "Destination Viewer", sub(localSub), true},            // assign:Destination *
		{"U0LOCALREQ", "Destination", sub(localSub), false},                  // the space is part of the pattern
		{"U0LOCALREQ", "Subaccount Viewer Extra", sub(localSub), false},      // no implicit wildcard
		{"U0LOCALREQ", "Global Account Administrator", ga("acme-ga"), false}, // never named
		{"U0LOCALREQ", "Subaccount Viewer", sub(prodSub), false},             // assign:* deny in production
		{"U0LOCALAPR", "Subaccount Viewer", sub(localSub), false},            // approvers are no requesters
	}
	for _, c := range cases {
		d, err := e.Authorize(ctx, c.user, approval.AssignAction(c.collection), c.scope, "")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != c.want {
			t.Errorf("%s assign %q in %s = %v (%s), want %v", c.user, c.collection, c.scope, d.Allowed, d.Rule, c.want)
		}
	}
	// A pattern is for rows only: a request naming one is refused.
	for _, act := range []approval.Action{"assign:*", "assign:Subaccount *", "assign", "assign:", "create:Subaccount Viewer"} {
		d, err := e.Authorize(ctx, "U0LOCALREQ", act, sub(localSub), "")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			t.Errorf("Authorize(%q) allowed by %s", act, d.Rule)
		}
	}
}

func TestAssignQuorumFallsBackToCreate(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	q, err := e.QuorumFor(context.Background(), approval.AssignAction("Subaccount Viewer"), sub(prodSub), []string{"U0SEC"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Met || q.Need != 2 {
		t.Errorf("assign in production = %+v, want production's create rule (2, owner and security)", q)
	}
}

func TestAssignRowsAreChecked(t *testing.T) {
	for _, tc := range []struct{ name, file, content, want string }{
		{"assign without collection", "policy.csv", "p, U0A, **, assign, allow\n", "assign names the role collection"},
		{"other action with object", "policy.csv", "p, U0A, **, create:Subaccount Viewer, allow\n", "no other action names anything"},
		{"hostile collection", "policy.csv", "p, U0A, **, assign:Viewer;rm, allow\n", "role collection must be"},
		{"assign with the legacy model", "model.conf", legacyModel, "assign rows need the current model.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyPolicy(t, "testdata/golden")
			writeFile(t, dir, tc.file, tc.content)
			if tc.file == "model.conf" {
				writeFile(t, dir, "assign.csv", "p, U0A, **, assign:Subaccount Viewer, allow\n")
			}
			_, err := Load(context.Background(), Options{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// approvals: 0 never lets a role collection through without a yes.
	dir0 := copyPolicy(t, "testdata/golden")
	writeFile(t, dir0, "quorum.yaml", "rules:\n  - scope: '**'\n    action: assign\n    approvals: 0\n")
	e, err := Load(context.Background(), Options{Dir: dir0})
	if err != nil {
		t.Fatal(err)
	}
	q, err := e.QuorumFor(context.Background(), approval.AssignAction("Subaccount Viewer"), sub(localSub), nil)
	if err != nil || q.Met || q.Need < 1 {
		t.Fatalf("assign with approvals: 0 = %+v, %v; want at least one approval", q, err)
	}
	// The legacy model still loads a policy without assign rows.
	dir := copyPolicy(t, "testdata/golden")
	writeFile(t, dir, "model.conf", legacyModel)
	if _, err := Load(context.Background(), Options{Dir: dir}); err != nil {
		t.Fatalf("legacy model without assign rows: %v", err)
	}
}

func TestObjMatch(t *testing.T) {
	for _, c := range []struct {
		obj, pat string
		want     bool
	}{
		{"Subaccount Viewer", "Subaccount Viewer", true}, {"Subaccount Viewer", "*", true},
		{"Subaccount Viewer", "Sub*", true}, {"Subaccount Viewer", "*Viewer", true}, {"Subaccount Viewer", "Sub*Viewer", true},
		{"Subaccount Viewer", "S*a*V*r", true}, {"SV", "S*V*V", false}, {"Viewer", "Viewer*Viewer", false},
		{"Subaccount Viewer", "subaccount viewer", false}, {"", "*", true}, {"ab", "a*b*", true},
	} {
		if got := objMatch(c.obj, c.pat); got != c.want {
			t.Errorf("objMatch(%q, %q) = %v", c.obj, c.pat, got)
		}
	}
}
