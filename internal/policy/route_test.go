package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// routedPolicy is the shipped policy (and its hierarchy) with routes.
func routedPolicy(t *testing.T, routes string) *Engine {
	t.Helper()
	dir := copyPolicy(t, "../../policies")
	writeFile(t, dir, routesFile, routes)
	e, err := Load(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const unlistedSub = "77777777-8888-4999-8aaa-bbbbbbbbbbbb" // in no hierarchy.yaml

// TestMostSpecificRouteWins: a route on a subaccount beats one on its
// directory, which beats one on the global account; a route that names a
// scope of the request's path beats one that matches only by wildcard; the
// hierarchy decides what lies below what, as it does for rows.
func TestMostSpecificRouteWins(t *testing.T) {
	e := routedPolicy(t, `
routes:
  - {name: everything, scope: "**", channel: C0ALL}
  - {name: any subaccount, scope: "subaccount:*", channel: C0ANYSUB}
  - {name: global account, scope: "globalaccount:acme-ga", channel: C0GA}
  - {name: production, scope: "directory:`+prodDir+`", channel: C0PROD, dm_approvers: true}
  - {name: prod-eu10, scope: "subaccount:`+prodSub+`", channel: C0PRODEU}
  - {name: platform subaccounts, scope: "directory:`+localDir+`/subaccount:*", channel: C0PLATSUB}
`)
	for _, c := range []struct {
		name  string
		scope approval.Scope
		want  string
		dm    bool
	}{
		{"subaccount beats its directory and the global account", sub(prodSub), "C0PRODEU", false},
		{"the directory itself", dir(prodDir), "C0PROD", true},
		{"the global account beats wildcards", ga("acme-ga"), "C0GA", false},
		{"a directory no route names takes its global account's route", dir(localDir), "C0GA", false},
		{"directory/subaccount:* beats the global account below that directory", sub(localSub), "C0PLATSUB", false},
		{"a named global account beats subaccount:*", sub(sandboxSA), "C0GA", false},
		{"outside the hierarchy only wildcards and its own name cover it", sub(unlistedSub), "C0ANYSUB", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.ApprovalRoute(c.scope)
			if r.Channel != c.want || r.DMApprovers != c.dm {
				t.Errorf("%s routed to %q (dm %v) by %s, want %q (dm %v)", c.scope, r.Channel, r.DMApprovers, r.Rule, c.want, c.dm)
			}
		})
	}
	if got := e.RouteChannels(); strings.Join(got, ",") != "C0ALL,C0ANYSUB,C0GA,C0PROD,C0PRODEU,C0PLATSUB" {
		t.Errorf("RouteChannels = %v", got)
	}
}

func TestExactRouteBeatsGlobOnTheSameScope(t *testing.T) {
	e := routedPolicy(t, `
routes:
  - {scope: "directory:`+prodDir+`/subaccount:*", channel: C0GLOB}
  - {scope: "subaccount:`+prodSub+`", channel: C0EXACT}
  - {scope: "directory:`+prodDir+`/**", channel: C0DEEPGLOB}
`)
	if r := e.ApprovalRoute(sub(prodSub)); r.Channel != "C0EXACT" || !strings.Contains(r.Rule, "routes.yaml #2") {
		t.Errorf("routed to %q by %q, want C0EXACT by routes.yaml #2", r.Channel, r.Rule)
	}
	// Between two globs anchored on the same directory, the one that
	// reaches deeper wins: subaccount:* pins the subaccount level.
	e = routedPolicy(t, `
routes:
  - {scope: "directory:`+prodDir+`/**", channel: C0DEEPGLOB}
  - {scope: "directory:`+prodDir+`/subaccount:*", channel: C0GLOB}
`)
	if r := e.ApprovalRoute(sub(prodSub)); r.Channel != "C0GLOB" {
		t.Errorf("routed to %q by %q, want C0GLOB", r.Channel, r.Rule)
	}
}

func TestNoRouteFallsBackToTheApprovalChannel(t *testing.T) {
	e := loadGolden(t, "../../policies", nil)
	if r := e.ApprovalRoute(sub(prodSub)); r != (Route{}) {
		t.Errorf("without routes.yaml: %+v, want no route", r)
	}
	e = routedPolicy(t, "routes:\n  - {scope: \"directory:"+prodDir+"\", channel: C0PROD}\n")
	if r := e.ApprovalRoute(sub(localSub)); r != (Route{}) {
		t.Errorf("a scope no route covers: %+v, want no route", r)
	}
	if r := e.ApprovalRoute(approval.Scope{Kind: "subaccount", ID: "not-a-guid"}); r != (Route{}) {
		t.Errorf("an invalid scope: %+v, want no route", r)
	}
	e = routedPolicy(t, "# nothing routed yet\n")
	if r := e.ApprovalRoute(sub(prodSub)); r != (Route{}) {
		t.Errorf("an empty routes.yaml: %+v, want no route", r)
	}
}

// TestLoadRejectsBadRoutes: a routes.yaml that would send requests nowhere,
// or somewhere other than its author meant, does not load, and says why.
func TestLoadRejectsBadRoutes(t *testing.T) {
	for _, c := range []struct{ name, routes, want string }{
		{"unknown key", "routes:\n  - {scope: '**', channel: C0A, chanel: C0B}\n", "chanel"},
		{"unknown top-level key", "route:\n  - {scope: '**', channel: C0A}\n", "route"},
		{"dm typo", "routes:\n  - {scope: '**', channel: C0A, dm_approver: true}\n", "dm_approver"},
		{"channel name", "routes:\n  - {scope: '**', channel: '#approvals'}\n", "channel name, not a channel id"},
		{"lower case", "routes:\n  - {scope: '**', channel: c0abc}\n", "not a Slack channel id"},
		{"a DM", "routes:\n  - {scope: '**', channel: D0ABC}\n", "DM or a user"},
		{"a user", "routes:\n  - {scope: '**', channel: U0ABC}\n", "DM or a user"},
		{"no channel", "routes:\n  - {scope: '**'}\n", "channel is missing"},
		{"too long", "routes:\n  - {scope: '**', channel: C" + strings.Repeat("A", 21) + "}\n", "not a Slack channel id"},
		{"no scope", "routes:\n  - {channel: C0A}\n", "scope is missing"},
		{"partial wildcard", "routes:\n  - {scope: 'globalaccount:acme*', channel: C0A}\n", "whole identifier"},
		{"bad guid", "routes:\n  - {scope: 'subaccount:123', channel: C0A}\n", "not a GUID"},
		{"unknown kind", "routes:\n  - {scope: 'org:acme', channel: C0A}\n", "unknown scope kind"},
		{"duplicate scope", "routes:\n  - {scope: 'directory:" + prodDir + "', channel: C0A}\n  - {name: again, scope: 'directory:" + strings.ToUpper(prodDir) + "', channel: C0B}\n", `route #2 "again": scope directory:` + prodDir + " is routed by route #1 already"},
		{"not a list", "routes: C0A\n", "routes.yaml"},
		{"two documents", "routes: []\n---\nroutes: []\n", "single YAML document"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyPolicy(t, "../../policies")
			writeFile(t, dir, routesFile, c.routes)
			_, err := Load(context.Background(), Options{Dir: dir})
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), routesFile) {
				t.Errorf("error %q does not say %q in %s", err, c.want, routesFile)
			}
		})
	}
}

func TestRoutesAreReloadedAndHashed(t *testing.T) {
	dir := copyPolicy(t, "../../policies")
	e, err := Load(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	before := e.Hash()
	writeFile(t, dir, routesFile, "routes:\n  - {scope: \"directory:"+prodDir+"\", channel: C0PROD}\n")
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Hash() == before {
		t.Error("routes.yaml does not change the policy hash")
	}
	if r := e.ApprovalRoute(sub(prodSub)); r.Channel != "C0PROD" {
		t.Errorf("after reload routed to %q, want C0PROD", r.Channel)
	}
	// A broken edit keeps the routes in force.
	writeFile(t, dir, routesFile, "routes:\n  - {scope: \"directory:"+prodDir+"\", channel: '#prod'}\n")
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("a broken routes.yaml loaded")
	}
	if r := e.ApprovalRoute(sub(prodSub)); r.Channel != "C0PROD" {
		t.Errorf("after a broken edit routed to %q, want C0PROD still", r.Channel)
	}
}

func TestEquallySpecificRoutesToDifferentChannelsWarn(t *testing.T) {
	e := routedPolicy(t, `
routes:
  - {name: first, scope: "directory:`+prodDir+`/*", channel: C0ONE}
  - {name: second, scope: "directory:`+prodDir+`/subaccount:*", channel: C0TWO}
  - {name: same channel, scope: "directory:`+prodDir+`/**/subaccount:*", channel: C0ONE}
`)
	if r := e.ApprovalRoute(sub(prodSub)); r.Channel != "C0ONE" || r.Name != "first" {
		t.Errorf("a tie went to %q (%s), want the earlier route", r.Channel, r.Rule)
	}
	var got []string
	for _, w := range e.snap.Load().warnings {
		if strings.HasPrefix(w, routesFile) && strings.Contains(w, "equally specific") {
			got = append(got, w)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], `"first"`) || !strings.Contains(got[0], `"second"`) {
		t.Errorf("tie warnings: %q, want one naming first and second", got)
	}
}

// TestDeepestAgreesWithMatch holds the ranking matcher to the coverage
// matcher the policy uses: a route covers exactly the scopes a row with the
// same pattern covers.
func TestDeepestAgreesWithMatch(t *testing.T) {
	paths := [][]string{
		{"globalaccount:acme-ga"},
		{"globalaccount:acme-ga", "directory:" + prodDir},
		{"globalaccount:acme-ga", "directory:" + prodDir, "subaccount:" + prodSub},
		{"globalaccount:acme-ga", "directory:" + localDir, "directory:" + prodDir, "subaccount:" + prodSub},
		{"subaccount:" + unlistedSub},
	}
	patterns := []string{"**", "*", "*/*", "*/*/*/*/*", "subaccount:*", "directory:*", "directory:*/subaccount:*",
		"globalaccount:acme-ga", "globalaccount:acme-ga/*", "globalaccount:acme-ga/**/subaccount:*",
		"directory:" + prodDir, "directory:" + prodDir + "/**", "directory:" + prodDir + "/*/**",
		"subaccount:" + prodSub, "directory:" + localDir + "/**/subaccount:" + prodSub, "**/directory:*/**/*",
		"globalaccount:acme-ga/subaccount:*", "subaccount:" + unlistedSub}
	for _, ps := range patterns {
		p, err := parseScopePattern(ps)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			_, ok := p.deepest(path)
			if want := p.match(path); ok != want {
				t.Errorf("%s against %v: deepest says %v, match says %v", ps, path, ok, want)
			}
		}
	}
}
