package policy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

const (
	localSub  = "11111111-2222-4333-8444-555555555555"
	localDir  = "22222222-3333-4444-8555-666666666666"
	prodDir   = "55555555-6666-4777-8888-999999999999"
	prodSub   = "66666666-7777-4888-8999-aaaaaaaaaaaa"
	sandboxSA = "44444444-5555-4666-8777-888888888888"
)

func shippedDirectory() *fakeDirectory {
	return newFakeDirectory().
		active("U0CAROL", "carol@example.com").
		group("security", "U0SEC", "U0LOCALAP2").
		group("platform-eng", "U0ENG").
		group("contractors", "U0CONTR")
}

func TestQuorum(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	tests := []struct {
		name      string
		scope     approval.Scope
		approvers []string
		want      approval.QuorumStatus
	}{
		{"default needs one", sub(localSub), nil, approval.QuorumStatus{Need: 1, Waiting: []string{"one more approver"}}},
		{"default met by one", sub(localSub), []string{"U0LOCALAPR"}, approval.QuorumStatus{Met: true, Have: 1, Need: 1}},
		{"directory default met by one", dir(localDir), []string{"U0LOCALAP2"}, approval.QuorumStatus{Met: true, Have: 1, Need: 1}},
		{"GA default met by admin", ga("acme-ga"), []string{"U0LOCALADM"}, approval.QuorumStatus{Met: true, Have: 1, Need: 1}},
		{"duplicates count once", sub(localSub), []string{"U0LOCALAPR", "U0LOCALAPR", ""}, approval.QuorumStatus{Met: true, Have: 1, Need: 1}},
		{"someone who may not approve does not count", sub(localSub), []string{"U0LOCALOUT", "U0LOCALREQ"}, approval.QuorumStatus{Need: 1, Waiting: []string{"one more approver"}}},
		// An approver from neither required role advances nothing: 0 of 2, not 1 of 2.
		{"prod: an approver outside both roles counts for nothing", sub(prodSub), []string{"U0LOCALAPR"},
			approval.QuorumStatus{Have: 0, Need: 2, Waiting: []string{"one approver from role:prod-owner", "one approver from role:security"}}},
		{"prod: two approvers but neither role", sub(prodSub), []string{"U0LOCALAPR", "U0LOCALADM"},
			approval.QuorumStatus{Have: 0, Need: 2, Waiting: []string{"one approver from role:prod-owner", "one approver from role:security"}}},
		{"prod: security and an outsider of both roles", sub(prodSub), []string{"U0LOCALAPR", "U0SEC"},
			approval.QuorumStatus{Have: 1, Need: 2, Waiting: []string{"one approver from role:prod-owner"}}},
		{"prod: owner who is also security counts once", sub(prodSub), []string{"U0LOCALAP2"},
			approval.QuorumStatus{Have: 1, Need: 2, Waiting: []string{"one approver from role:security"}}},
		{"prod: owner and security", sub(prodSub), []string{"U0LOCALAP2", "U0SEC"}, approval.QuorumStatus{Met: true, Have: 2, Need: 2}},
		// Matching, not order: U0SEC first takes security, and the owner (in both) still fills prod-owner.
		{"prod: order does not matter", dir(prodDir), []string{"U0SEC", "U0LOCALAP2", "U0LOCALAPR"}, approval.QuorumStatus{Met: true, Have: 2, Need: 2}},
		{"prod: the owner first, then security", dir(prodDir), []string{"U0LOCALAP2", "U0SEC"}, approval.QuorumStatus{Met: true, Have: 2, Need: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Quorum(context.Background(), tt.scope, tt.approvers)
			if err != nil {
				t.Fatal(err)
			}
			if got.Met != tt.want.Met || got.Have != tt.want.Have || got.Need != tt.want.Need || !slices.Equal(got.Waiting, tt.want.Waiting) {
				t.Errorf("Quorum = %+v, want %+v", got, tt.want)
			}
		})
	}
	// Whoever does not count is named, with a reason that says which role is missing.
	q, err := e.Quorum(context.Background(), sub(prodSub), []string{"U0LOCALAPR", "U0SEC"})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Uncounted) != 1 || q.Uncounted[0].User != "U0LOCALAPR" ||
		!strings.Contains(q.Uncounted[0].Why, "role:prod-owner or role:security") || !strings.Contains(q.Rule, "production needs an owner and security") {
		t.Errorf("uncounted %+v, rule %q", q.Uncounted, q.Rule)
	}
	// Someone in a role another approver already fills is told so.
	q, err = e.Quorum(context.Background(), sub(prodSub), []string{"U0SEC", "U0LOCALAP2", "U0LOCALAPR"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := q.Counts("U0SEC"); !ok {
		t.Errorf("U0SEC should count: %+v", q)
	}
	if _, err := e.Quorum(context.Background(), sub("bad"), nil); err == nil {
		t.Error("invalid scope: no error")
	}
}

// TestQuorumRulesCombine: every rule covering a scope applies; the strictest
// count wins and the groups add up.
func TestQuorumRulesCombine(t *testing.T) {
	e := loadGolden(t, "testdata/golden", goldenDirectory())
	for _, c := range []struct {
		scope approval.Scope
		need  int
		from  []string
	}{
		{sub(gS2), 1, nil},
		{dir(gD1), 2, nil},
		{sub(gS1), 2, []string{"role:lead"}},
		{sub(gS3), 3, []string{"U0APR", "group:auditors"}},
	} {
		req := e.snap.Load().quorum.requirement(e.snap.Load().pathOf(c.scope.String()))
		slices.Sort(c.from)
		if req.need != c.need || !slices.Equal(req.from, c.from) {
			t.Errorf("%s: need %d from %v, want %d from %v", c.scope, req.need, req.from, c.need, c.from)
		}
	}
}

// TestQuorumPerAction: rotate and extend follow their own rules; with none
// of their own they need what create needs, never less.
func TestQuorumPerAction(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	ctx := context.Background()
	for _, c := range []struct {
		act       approval.Action
		scope     approval.Scope
		approvers []string
		met       bool
		need      int
	}{
		{approval.ActionRotate, sub(localSub), nil, true, 0},
		{approval.ActionExtend, sub(localSub), nil, true, 0},
		{approval.ActionCreate, sub(localSub), nil, false, 1},
		{approval.ActionRotate, sub(prodSub), nil, false, 1},
		{approval.ActionRotate, sub(prodSub), []string{"U0LOCALAPR"}, false, 1}, // not security
		{approval.ActionRotate, sub(prodSub), []string{"U0SEC"}, true, 1},
		{approval.ActionExtend, sub(prodSub), []string{"U0SEC"}, true, 1},
	} {
		q, err := e.QuorumFor(ctx, c.act, c.scope, c.approvers)
		if err != nil {
			t.Fatal(err)
		}
		if q.Met != c.met || q.Need != c.need {
			t.Errorf("%s in %s with %v: met=%v need=%d, want met=%v need=%d", c.act, c.scope, c.approvers, q.Met, q.Need, c.met, c.need)
		}
	}
	if _, err := e.QuorumFor(ctx, approval.ActionDelete, sub(localSub), nil); err == nil {
		t.Error("a quorum for delete: no error")
	}

	// Without rules of its own, a rotation needs what a create needs.
	dir := copyPolicy(t, "../../policies")
	writeFile(t, dir, "quorum.yaml", "rules:\n  - scope: '**'\n    approvals: 2\n")
	e2, err := Load(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range []approval.Action{approval.ActionCreate, approval.ActionRotate, approval.ActionExtend} {
		q, err := e2.QuorumFor(ctx, act, sub(localSub), nil)
		if err != nil || q.Need != 2 || q.Met {
			t.Errorf("%s without its own rules: %+v, %v; want need 2 like create", act, q, err)
		}
	}
}

// TestLoadRejects is the validation table: each broken policy fails to load
// with an error that says where and why.
func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		want    string
	}{
		{"partial wildcard", "policy.csv", "p, U0A, globalaccount:acme*, list, allow\n", "whole identifier"},
		{"partial wildcard in g", "policy.csv", "g, U0A, role:x, directory:*abc\n", "whole identifier"},
		{"bad GUID", "policy.csv", "p, U0A, subaccount:123, list, allow\n", "not a GUID"},
		{"unknown kind", "policy.csv", "p, U0A, org:acme, list, allow\n", "unknown scope kind"},
		{"empty segment", "policy.csv", "p, U0A, globalaccount:acme//subaccount:*, list, allow\n", "empty segment"},
		{"unknown action", "policy.csv", "p, U0A, **, destroy, allow\n", "unknown action"},
		{"bad effect", "policy.csv", "p, U0A, **, list, maybe\n", "allow or deny"},
		{"field count", "policy.csv", "p, U0A, **, list\n", "policy.csv:1: p rows have 4 fields"},
		{"bad subject", "policy.csv", "p, bob, **, list, allow\n", "subject \"bob\""},
		{"g into non-role", "policy.csv", "g, U0A, U0B, **\n", "must be a role"},
		{"unknown row type", "policy.csv", "x, U0A, **\n", "row type"},
		{"duplicate row", "policy.csv", "p, U0A, **, list, allow\n# again\np, U0A, **, list, allow\n", "policy.csv:3: duplicate of line 1"},
		{"role cycle", "policy.csv", "g, role:a, role:b, **\ng, role:b, role:a, **\n", "loops"},
		{"changed model", "model.conf", strings.Replace(Model, "&& !some(where (p.eft == deny))", "", 1), "differs"},
		{"not a model", "model.conf", "hello", "model"},
		{"hierarchy typo", "hierarchy.yaml", "globalaccount: acme\nchildren:\n  - directry: d1000000-0000-4000-8000-000000000001\n", "directry"},
		{"hierarchy duplicate", "hierarchy.yaml", "globalaccount: acme\nchildren:\n  - directory: d1000000-0000-4000-8000-000000000001\n  - subaccount: 51000000-0000-4000-8000-000000000001\n  - subaccount: 51000000-0000-4000-8000-000000000001\n", "appears twice"},
		{"hierarchy subaccount children", "hierarchy.yaml", "globalaccount: acme\nchildren:\n  - subaccount: 51000000-0000-4000-8000-000000000001\n    children:\n      - subaccount: 52000000-0000-4000-8000-000000000002\n", "cannot have children"},
		{"quorum fewer approvals than groups", "quorum.yaml", "rules:\n  - scope: '**'\n    approvals: 1\n    from: [role:a, role:b]\n", "fewer than the groups"},
		{"quorum zero default", "quorum.yaml", "default: 0\n", "default must be between"},
		{"quorum too many", "quorum.yaml", "rules:\n  - scope: '**'\n    approvals: 99\n", "between 1 and"},
		{"quorum typo", "quorum.yaml", "rules:\n  - scope: '**'\n    aprovals: 2\n", "aprovals"},
		{"quorum bad scope", "quorum.yaml", "rules:\n  - scope: 'globalaccount:ac*'\n", "whole identifier"},
		{"quorum no scope", "quorum.yaml", "rules:\n  - approvals: 2\n", "scope is missing"},
		{"quorum bad subject", "quorum.yaml", "rules:\n  - scope: '**'\n    from: [security]\n", "subject"},
		{"quorum duplicate group", "quorum.yaml", "rules:\n  - scope: '**'\n    from: [role:a, role:a]\n", "twice"},
		{"quorum unknown action", "quorum.yaml", "rules:\n  - scope: '**'\n    action: delete\n", "action must be create, rotate, extend or assign"},
		{"quorum no approval but from", "quorum.yaml", "rules:\n  - scope: '**'\n    action: rotate\n    approvals: 0\n    from: [role:a]\n", "cannot name groups"},
		{"rotate row unknown action spelling", "policy.csv", "p, U0A, **, rotation, allow\n", "rotate, extend, breakglass or review"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyPolicy(t, "testdata/golden")
			writeFile(t, dir, tt.file, tt.content) // replaces the file: each case is about one line
			_, err := Load(context.Background(), Options{Dir: dir})
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadRequiresModelAndRows(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "model.conf: missing") || !strings.Contains(err.Error(), "no policy rows") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(context.Background(), Options{Dir: filepath.Join(dir, "nope")}); err == nil {
		t.Error("missing dir loaded")
	}
}

func copyPolicy(t *testing.T, from string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, e.Name(), string(b))
	}
	return dir
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
