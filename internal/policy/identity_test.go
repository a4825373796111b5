package policy

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// identityPolicy writes a policy directory from rows and a quorum.yaml, with
// no hierarchy: every rule is on "**".
func identityPolicy(t *testing.T, rows, quorum string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, modelFile, Model)
	writeFile(t, dir, "policy.csv", rows)
	if quorum != "" {
		writeFile(t, dir, quorumFile, quorum)
	}
	return dir
}

const anySub = "51000000-0000-4000-8000-000000000001"

// A Slack user group is only as trustworthy as whoever may edit it, which in
// many workspaces is any member.
const groupRows = `p, role:approver, **, approve, allow
p, role:security, **, approve, allow
p, role:requester, **, create, allow
g, group:security, role:security, **
p, group:security, **, get, allow
p, group:direct, **, approve, allow
g, U0NAMED, role:security, **
g, U0APR, role:approver, **
g, U0APR2, role:approver, **
`

func groupDirectory() *fakeDirectory {
	return newFakeDirectory().
		group("security", "U0JOINER", "U0NAMED", "U0APR").
		group("direct", "U0DIRECT")
}

func TestSelfAddedGroupMemberCannotApprove(t *testing.T) {
	e := loadGolden(t, identityPolicy(t, groupRows, ""), groupDirectory())
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		user  string
		act   approval.Action
		allow bool
		why   string // substring of the reason
	}{
		{"a role held through a group does not grant approve", "U0JOINER", "approve", false,
			"group:security may not grant approve: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml)"},
		{"an approve row on a group does not grant approve", "U0DIRECT", "approve", false, "group:direct may not grant approve"},
		{"groups still grant the other actions", "U0JOINER", "get", true, "group:security may get"},
		{"a member named by ID approves", "U0NAMED", "approve", true, "U0NAMED as role:security"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Authorize(ctx, c.user, c.act, sub(anySub), "U0REQ")
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != c.allow || !strings.Contains(d.Reason, c.why) {
				t.Errorf("%s %s: allowed=%v %q, want %v and %q", c.user, c.act, d.Allowed, d.Reason, c.allow, c.why)
			}
		})
	}
	x, err := e.Explain(ctx, "U0JOINER", "approve", sub(anySub), "U0REQ")
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Matches) != 1 || x.Matches[0].Counted || x.Matches[0].Deciding {
		t.Errorf("matches %+v, want one uncounted allow", x.Matches)
	}
	for _, want := range []string{
		"not counted: group:security may not grant approve: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml)",
		"subject role:security [not for approve: groups are not trusted",
	} {
		if !strings.Contains(x.String(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, x)
		}
	}
	// Loading says which rows are ignored for approve, so that policy test
	// shows it before anyone is surprised in Slack.
	var warned []string
	for _, w := range e.snap.Load().warnings {
		if strings.Contains(w, "may not grant approve") {
			warned = append(warned, w)
		}
	}
	if len(warned) != 2 || !strings.HasPrefix(warned[0], "policy.csv:4: group:security") || !strings.HasPrefix(warned[1], "policy.csv:6: group:direct") {
		t.Errorf("warnings %q, want policy.csv:4 and :6", warned)
	}
}

// TestPolicyTestSaysGroupsMayNotApprove: "credbot policy test" warns about
// each ignored group grant, and a case expecting one to allow says why not.
func TestPolicyTestSaysGroupsMayNotApprove(t *testing.T) {
	dir := identityPolicy(t, groupRows, "")
	writeFile(t, dir, "groups_test.yaml", `
directory:
  groups:
    security: [U0JOINER]
decisions:
  - {user: U0JOINER, act: approve, scope: "subaccount:`+anySub+`", owner: U0REQ, want: allow}
  - {user: U0JOINER, act: get, scope: "subaccount:`+anySub+`", want: allow}
`)
	var out bytes.Buffer
	failed, err := RunTests(context.Background(), dir, &out)
	if err != nil || failed != 1 {
		t.Fatalf("RunTests = %d, %v\n%s", failed, err, out.String())
	}
	for _, want := range []string{
		"warning: policy.csv:4: group:security may not grant approve: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml)",
		"FAIL groups_test.yaml:6: U0JOINER approve",
		"reason: denied: group:security may not grant approve: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestTrustedGroupsGrantApprove(t *testing.T) {
	e := loadGolden(t, identityPolicy(t, groupRows, "trust_groups_for_approval: true\n"), groupDirectory())
	for _, u := range []string{"U0JOINER", "U0DIRECT", "U0NAMED"} {
		d, err := e.Authorize(context.Background(), u, "approve", sub(anySub), "U0REQ")
		if err != nil || !d.Allowed {
			t.Errorf("%s approve with trusted groups: %+v %v", u, d, err)
		}
	}
	for _, w := range e.snap.Load().warnings {
		t.Errorf("warning with trusted groups: %s", w)
	}
}

// TestQuorumFromRoleIgnoresGroupMembership: "one from security" counts only
// someone who holds role:security through a name the policy trusts to
// approve. U0APR approves as role:approver, and holds role:security only
// through @security.
func TestQuorumFromRoleIgnoresGroupMembership(t *testing.T) {
	const quorum = "rules:\n  - scope: '**'\n    approvals: 2\n    from: [role:security]\n"
	ctx := context.Background()
	for _, c := range []struct {
		trust     bool
		approvers []string
		met       bool
		have      int
	}{
		{false, []string{"U0APR", "U0APR2"}, false, 1}, // one fills the free place; the other advances nothing
		{false, []string{"U0APR", "U0JOINER"}, false, 1},
		{false, []string{"U0APR", "U0NAMED"}, true, 2},
		{true, []string{"U0APR", "U0APR2"}, true, 2},
		{true, []string{"U0APR", "U0JOINER"}, true, 2},
	} {
		q := quorum
		if c.trust {
			q = "trust_groups_for_approval: true\n" + q
		}
		e := loadGolden(t, identityPolicy(t, groupRows, q), groupDirectory())
		got, err := e.Quorum(ctx, sub(anySub), c.approvers)
		if err != nil {
			t.Fatal(err)
		}
		if got.Met != c.met || got.Have != c.have {
			t.Errorf("trust=%v %v: %+v, want met=%v have=%d", c.trust, c.approvers, got, c.met, c.have)
		}
		if !c.met && !slices.Contains(got.Waiting, "one approver from role:security") {
			t.Errorf("trust=%v %v: waiting %v", c.trust, c.approvers, got.Waiting)
		}
	}
}

func TestApproversLeaveOutUntrustedGroups(t *testing.T) {
	ctx := context.Background()
	for trust, want := range map[bool]string{
		false: "U0APR U0APR2 U0NAMED",
		true:  "U0APR U0APR2 U0NAMED group:direct group:security",
	} {
		q := ""
		if trust {
			q = "trust_groups_for_approval: true\n"
		}
		e := loadGolden(t, identityPolicy(t, groupRows, q), groupDirectory())
		got, err := e.Approvers(ctx, sub(anySub))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("trust=%v: approvers %v, want %s", trust, got, want)
		}
	}
}

// TestQuorumFromGroupWarnsWhenUntrusted: a from naming a group can never be
// met while groups are not trusted for approvals; loading says so.
func TestQuorumFromGroupWarnsWhenUntrusted(t *testing.T) {
	const quorum = "rules:\n  - name: sec\n    scope: '**'\n    from: [group:security]\n"
	e := loadGolden(t, identityPolicy(t, "p, U0A, **, list, allow\n", quorum), groupDirectory())
	ws := e.snap.Load().warnings
	if len(ws) != 1 || !strings.Contains(ws[0], `rule "sec" requires an approval from group:security, which can never come: groups are not trusted`) {
		t.Errorf("warnings %q", ws)
	}
}

// TestRoleHeldThroughIDAndGroupCounts: a role first reached through a group,
// then through a longer chain from the user's own ID, is held through the ID,
// and so are the roles it holds, even those recorded before the upgrade.
func TestRoleHeldThroughIDAndGroupCounts(t *testing.T) {
	rows := `g, U0X, role:a, **
g, role:a, role:b, **
g, role:b, role:mid, **
g, group:security, role:mid, **
g, role:mid, role:top, **
p, role:top, **, approve, allow
`
	e := loadGolden(t, identityPolicy(t, rows, ""), newFakeDirectory().group("security", "U0X", "U0Y"))
	ctx := context.Background()
	for user, allow := range map[string]bool{"U0X": true, "U0Y": false} {
		d, err := e.Authorize(ctx, user, "approve", sub(anySub), "U0REQ")
		if err != nil || d.Allowed != allow {
			t.Errorf("%s approve: %+v %v, want allowed=%v", user, d, err, allow)
		}
	}
	x, err := e.Explain(ctx, "U0X", "approve", sub(anySub), "U0REQ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(x.Decision.Reason, "U0X as role:a as role:b as role:mid as role:top") {
		t.Errorf("reason %q: want the route through the user ID", x.Decision.Reason)
	}
}

// One person, two Slack accounts: with distinct_people_by_email the second
// account neither approves the first's request nor counts twice.
const emailRows = `p, role:approver, **, approve, allow
p, role:requester, **, create, allow
g, U0REQ, role:requester, **
g, U0NOMAIL, role:requester, **
g, U0REQALT, role:approver, **
g, U0ANN, role:approver, **
g, U0ANNALT, role:approver, **
g, U0BOB, role:approver, **
g, U0NOMAIL, role:approver, **
`

func emailDirectory() *fakeDirectory {
	return newFakeDirectory().
		active("U0REQ", "req@example.com").
		active("U0REQALT", " REQ@Example.com ").
		active("U0ANN", "ann@example.com").
		active("U0ANNALT", "Ann+second@example.com").
		active("U0BOB", "bob@example.com").
		active("U0NOMAIL", "")
}

func TestSecondAccountCannotApproveOwnRequest(t *testing.T) {
	ctx := context.Background()
	byEmail := loadGolden(t, identityPolicy(t, emailRows, "distinct_people_by_email: true\n"), emailDirectory())
	byID := loadGolden(t, identityPolicy(t, emailRows, ""), emailDirectory())
	for _, c := range []struct {
		name        string
		user, owner string
		act         approval.Action
		allow       bool // with distinct_people_by_email
		rule, why   string
	}{
		{"another account with the requester's email", "U0REQALT", "U0REQ", "approve", false, SamePersonRule,
			"U0REQALT and the requester U0REQ have the same email (req@example.com): one person cannot approve their own request"},
		{"a +tag is the same mailbox", "U0ANNALT", "U0ANN", "approve", false, SamePersonRule, "same email (ann@example.com)"},
		{"someone else approves", "U0BOB", "U0REQ", "approve", true, "p, role:approver", "allowed"},
		{"an approver without an email is refused", "U0NOMAIL", "U0REQ", "approve", false, EmailRequiredRule,
			"cannot read U0NOMAIL's Slack profile email"},
		{"a requester without an email cannot be told apart", "U0BOB", "U0NOMAIL", "approve", false, EmailRequiredRule,
			"cannot read the requester U0NOMAIL's Slack profile email"},
		{"a requester without an email cannot ask", "U0NOMAIL", "", "create", false, EmailRequiredRule, "cannot read U0NOMAIL's"},
		{"a requester with one asks", "U0REQ", "", "create", true, "p, role:requester", "allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := byEmail.Authorize(ctx, c.user, c.act, sub(anySub), c.owner)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != c.allow || !strings.HasPrefix(d.Rule, c.rule) || !strings.Contains(d.Reason, c.why) {
				t.Errorf("got allowed=%v rule %q reason %q, want %v, %q, %q", d.Allowed, d.Rule, d.Reason, c.allow, c.rule, c.why)
			}
			if d.PolicyHash != byEmail.Hash() {
				t.Errorf("policy hash %q", d.PolicyHash)
			}
			// Without the mode, Slack user IDs alone tell people apart.
			if d, err := byID.Authorize(ctx, c.user, c.act, sub(anySub), c.owner); err != nil || !d.Allowed {
				t.Errorf("by ID: %+v %v, want allowed", d, err)
			}
		})
	}
	x, err := byEmail.Explain(ctx, "U0REQALT", "approve", sub(anySub), "U0REQ")
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Rule != SamePersonRule || slices.ContainsFunc(x.Matches, func(m ExplainedRule) bool { return m.Deciding }) {
		t.Errorf("explanation %+v: want the built-in rule deciding, no row", x)
	}
}

func TestSecondAccountCountsOnce(t *testing.T) {
	ctx := context.Background()
	const quorum = "distinct_people_by_email: true\ndefault: 2\n"
	byEmail := loadGolden(t, identityPolicy(t, emailRows, quorum), emailDirectory())
	byID := loadGolden(t, identityPolicy(t, emailRows, "default: 2\n"), emailDirectory())
	for _, c := range []struct {
		approvers     []string
		byEmail, byID int // approvals counted (never more than the 2 needed)
	}{
		{[]string{"U0ANN", "U0ANNALT"}, 1, 2},
		{[]string{"U0REQALT", "U0ANN", "U0ANNALT"}, 2, 2},
		{[]string{"U0ANN", "U0BOB"}, 2, 2},
		{[]string{"U0NOMAIL", "U0BOB"}, 1, 2}, // fail closed: who is U0NOMAIL?
		{[]string{"U0ANNALT", "U0BOB", "U0ANN"}, 2, 2},
	} {
		for _, m := range []struct {
			e    *Engine
			have int
		}{{byEmail, c.byEmail}, {byID, c.byID}} {
			got, err := m.e.Quorum(ctx, sub(anySub), c.approvers)
			if err != nil {
				t.Fatal(err)
			}
			if got.Have != m.have || got.Met != (m.have >= 2) {
				t.Errorf("%v (email mode %v): %+v, want have %d", c.approvers, m.e == byEmail, got, m.have)
			}
		}
	}
}

// TestSecondAccountCoversOneFrom: one person holding one required role in
// each of two accounts covers one of them, as one account holding both does.
func TestSecondAccountCoversOneFrom(t *testing.T) {
	rows := emailRows + "p, role:owner, **, approve, allow\np, role:security, **, approve, allow\ng, U0ANN, role:owner, **\ng, U0ANNALT, role:security, **\ng, U0BOB, role:security, **\n"
	const quorum = "distinct_people_by_email: true\nrules:\n  - scope: '**'\n    from: [role:owner, role:security]\n"
	e := loadGolden(t, identityPolicy(t, rows, quorum), emailDirectory())
	ctx := context.Background()
	got, err := e.Quorum(ctx, sub(anySub), []string{"U0ANN", "U0ANNALT"})
	if err != nil || got.Met || got.Have != 1 {
		t.Errorf("one person, two accounts: %+v %v, want 1 of 2", got, err)
	}
	if got, err := e.Quorum(ctx, sub(anySub), []string{"U0ANNALT", "U0ANN", "U0BOB"}); err != nil || !got.Met {
		t.Errorf("with another security approver: %+v %v, want met", got, err)
	}
}

func TestEmailModeFailsClosed(t *testing.T) {
	ctx := context.Background()
	dir := identityPolicy(t, emailRows, "distinct_people_by_email: true\n")
	d := emailDirectory()
	e := loadGolden(t, dir, d)
	// Warm U0BOB's names: only the email lookup of the requester fails.
	if _, err := e.Authorize(ctx, "U0BOB", "approve", sub(anySub), "U0ANN"); err != nil {
		t.Fatal(err)
	}
	d.err = errSlackDown
	got, err := e.Authorize(ctx, "U0BOB", "approve", sub(anySub), "U0REQ")
	if !errors.Is(err, errSlackDown) || got.Allowed {
		t.Errorf("directory down: %+v %v, want a deny and the error", got, err)
	}
	if _, err := e.Quorum(ctx, sub(anySub), []string{"U0REQALT"}); !errors.Is(err, errSlackDown) {
		t.Errorf("quorum with the directory down: %v", err)
	}

	// Without a directory there are no emails to compare: refuse, and say
	// so when loading.
	e = loadGolden(t, dir, nil)
	if got, err := e.Authorize(ctx, "U0BOB", "approve", sub(anySub), "U0REQ"); err != nil || got.Allowed || got.Rule != EmailRequiredRule {
		t.Errorf("no directory: %+v %v", got, err)
	}
	if q, err := e.Quorum(ctx, sub(anySub), []string{"U0BOB"}); err != nil || q.Have != 0 {
		t.Errorf("no directory quorum: %+v %v", q, err)
	}
	if ws := e.snap.Load().warnings; !slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, "distinct_people_by_email refuses every") }) {
		t.Errorf("warnings %q", ws)
	}
}

func TestEmailKey(t *testing.T) {
	for in, want := range map[string]string{
		"ann@example.com":            "ann@example.com",
		"  Ann@Example.COM\t":        "ann@example.com",
		"ann+ci@example.com":         "ann@example.com",
		"ann+a+b@example.com":        "ann@example.com",
		"a.nn@example.com":           "a.nn@example.com", // dots are kept
		"+ann@example.com":           "+ann@example.com", // no mailbox before the tag: kept whole
		"ann@sub.example.com":        "ann@sub.example.com",
		"ann@example.com@evil.test":  "ann@example.com@evil.test",
		"":                           "",
		"ann":                        "",
		"@example.com":               "",
		"ann@":                       "",
		"ann+ci@EXAMPLE.com ":        "ann@example.com",
		"first.last+x@mail.test.org": "first.last@mail.test.org",
	} {
		if got := emailKey(in); got != want {
			t.Errorf("emailKey(%q) = %q, want %q", in, got, want)
		}
	}
}
