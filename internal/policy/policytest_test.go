package policy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedPolicyTests runs policies/*_test.yaml as "credbot policy test"
// does: the shipped example must pass its own tests.
func TestShippedPolicyTests(t *testing.T) {
	var out bytes.Buffer
	failed, err := RunTests(context.Background(), "../../policies", &out)
	if err != nil || failed != 0 {
		t.Errorf("RunTests = %d, %v\n%s", failed, err, out.String())
	}
	if !strings.HasPrefix(lastLine(out.String()), "ok: ") {
		t.Errorf("summary: %q", out.String())
	}
}

// TestRunTestsReportsFailures: a failing case names its file, line, and the
// rule that decided.
func TestRunTestsReportsFailures(t *testing.T) {
	dir := copyPolicy(t, "../../policies")
	writeFile(t, dir, "wrong_test.yaml", `
decisions:
  - {user: U0LOCALREQ, act: create, scope: "subaccount:44444444-5555-4666-8777-888888888888", want: allow}
  - {user: U0LOCALREQ, act: create, scope: "subaccount:11111111-2222-4333-8444-555555555555", want: allow, rule: "p, role:admin, globalaccount:acme-ga, create, allow"}
  - {user: U0LOCALREQ, act: create, scope: "subaccount:11111111-2222-4333-8444-555555555555", want: allow, rule: "p,role:requester,globalaccount:acme-ga,create,allow"}
quorum:
  - {scope: "directory:55555555-6666-4777-8888-999999999999", approvers: [U0LOCALAPR], want: met}
approvers:
  - {scope: "globalaccount:acme-ga", want: [U0LOCALAPR]}
`)
	var out bytes.Buffer
	failed, err := RunTests(context.Background(), dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 4 {
		t.Errorf("failed = %d, want 4\n%s", failed, out.String())
	}
	for _, want := range []string{
		"FAIL wrong_test.yaml:3: U0LOCALREQ create in subaccount:44444444-5555-4666-8777-888888888888: got deny, want allow",
		"deciding rule: p, role:requester, directory:33333333-4444-4555-8666-777777777777, create, deny (policy.csv:",
		"FAIL wrong_test.yaml:4:",
		"FAIL wrong_test.yaml:7: quorum",
		"FAIL wrong_test.yaml:9: approvers",
		"FAIL: 4 of ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunTestsErrors(t *testing.T) {
	dir := copyPolicy(t, "../../policies")
	writeFile(t, dir, "policy.csv", "p, nobody, **, list, allow\n")
	if _, err := RunTests(context.Background(), dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "does not load") {
		t.Errorf("broken policy: %v", err)
	}
	dir = copyPolicy(t, "testdata/golden")
	if _, err := RunTests(context.Background(), dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no *_test.yaml") {
		t.Errorf("no tables: %v", err)
	}
	writeFile(t, dir, "x_test.yaml", "decisions:\n  - {user: U1, act: list, scope: x, wnt: allow}\n")
	if _, err := RunTests(context.Background(), dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "wnt") {
		t.Errorf("typo in table: %v", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestRunTestsAssertsRoutes: a routes case says which channel a scope's
// requests go to ("default" for CREDBOT_APPROVAL_CHANNEL), and optionally
// whether approvers are DMed and which route decides.
func TestRunTestsAssertsRoutes(t *testing.T) {
	dir := copyPolicy(t, "../../policies")
	if err := os.Remove(filepath.Join(dir, "policy_test.yaml")); err != nil { // it expects the shipped routes
		t.Fatal(err)
	}
	writeFile(t, dir, routesFile, `
routes:
  - {name: production, scope: "directory:55555555-6666-4777-8888-999999999999", channel: C0PROD, dm_approvers: true}
  - {name: platform, scope: "directory:22222222-3333-4444-8555-666666666666", channel: C0PLAT}
`)
	writeFile(t, dir, "routes_test.yaml", `
routes:
  - {scope: "subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa", channel: C0PROD, dm_approvers: true, route: production}
  - {scope: "subaccount:11111111-2222-4333-8444-555555555555", channel: C0PLAT, dm_approvers: false}
  - {scope: "subaccount:44444444-5555-4666-8777-888888888888", channel: default}
  - {name: wrong channel, scope: "subaccount:11111111-2222-4333-8444-555555555555", channel: C0PROD}
  - {scope: "subaccount:44444444-5555-4666-8777-888888888888", channel: C0PLAT}
  - {scope: "subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa", channel: C0PROD, dm_approvers: false}
  - {scope: "subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa", channel: C0PROD, route: platform}
`)
	var out bytes.Buffer
	failed, err := RunTests(context.Background(), dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 4 {
		t.Errorf("failed = %d, want 4\n%s", failed, out.String())
	}
	for _, want := range []string{
		`FAIL routes_test.yaml:6 wrong channel: requests in subaccount:11111111-2222-4333-8444-555555555555 go to C0PLAT, want C0PROD`,
		`decided by: "platform" (routes.yaml #2, directory:22222222-3333-4444-8555-666666666666)`,
		`FAIL routes_test.yaml:7: requests in subaccount:44444444-5555-4666-8777-888888888888 go to default, want C0PLAT`,
		`no route covers it (CREDBOT_APPROVAL_CHANNEL)`,
		`FAIL routes_test.yaml:8: requests in subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa: dm_approvers is true, want false`,
		`FAIL routes_test.yaml:9: requests in subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa go to C0PROD as expected, but by "production"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	writeFile(t, dir, "routes_test.yaml", "routes:\n  - {scope: \"subaccount:66666666-7777-4888-8999-aaaaaaaaaaaa\", channel: '#prod'}\n")
	if _, err := RunTests(context.Background(), dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "routes_test.yaml:2") {
		t.Errorf("a case with a channel name instead of an id: %v", err)
	}
}
