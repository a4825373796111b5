package policy

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// Break-glass skips approval, so who may do it is as sensitive as who may
// approve: rows grant it by name, never through a Slack group anyone can
// join, and nobody reviews their own.
const breakglassRows = `p, role:oncall, **, breakglass, allow
p, role:security, **, review, allow
p, role:oncall, directory:*, breakglass, deny
g, U0ONCALL, role:oncall, **
g, U0SEC, role:security, **
g, U0ONCALL, role:security, **
g, group:sre, role:oncall, **
p, group:sre, **, review, allow
`

func TestBreakglassAndReviewAreGrantedByRows(t *testing.T) {
	e := loadGolden(t, identityPolicy(t, breakglassRows, ""), newFakeDirectory().group("sre", "U0JOINER"))
	ce, err := newCasbinEnforcer(e.snap.Load())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		user  string
		act   approval.Action
		scope approval.Scope
		owner string
		allow bool
		why   string
	}{
		{"on-call breaks glass", "U0ONCALL", approval.ActionBreakglass, sub(anySub), "", true, "U0ONCALL as role:oncall may breakglass"},
		{"a deny row wins", "U0ONCALL", approval.ActionBreakglass, dir(gD1), "", false, "may not breakglass"},
		{"security may not break glass", "U0SEC", approval.ActionBreakglass, sub(anySub), "", false, "no rule lets U0SEC breakglass"},
		{"nobody else", "U0OTHER", approval.ActionBreakglass, sub(anySub), "", false, "no rule"},
		{"a group grants no breakglass", "U0JOINER", approval.ActionBreakglass, sub(anySub), "", false, "group:sre may not grant breakglass"},
		{"security reviews", "U0SEC", approval.ActionReview, sub(anySub), "U0ONCALL", true, "may review"},
		{"a group grants no review", "U0JOINER", approval.ActionReview, sub(anySub), "U0ONCALL", false, "group:sre may not grant review"},
		{"nobody reviews their own", "U0ONCALL", approval.ActionReview, sub(anySub), "U0ONCALL", false, "cannot review it"},
		{"review needs the owner", "U0SEC", approval.ActionReview, sub(anySub), "", false, "needs the user who broke glass"},
		{"review is not approve", "U0SEC", approval.ActionApprove, sub(anySub), "U0ONCALL", false, "no rule"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Authorize(ctx, c.user, c.act, c.scope, c.owner)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != c.allow || !strings.Contains(d.Reason, c.why) {
				t.Errorf("allowed=%v %q (rule %q), want %v and %q", d.Allowed, d.Reason, d.Rule, c.allow, c.why)
			}
			if d.PolicyHash == "" {
				t.Error("no policy hash")
			}
			if refusedBeforeModel(c.user, c.act, c.scope, c.owner) {
				return
			}
			s := e.snap.Load()
			names, err := e.ids.names(ctx, c.user, s)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := ce.decide(names, c.act, s.pathOf(c.scope.String()), c.user, c.owner)
			if err != nil || got != c.allow {
				t.Errorf("Casbin says %v (%v), the engine %v", got, err, c.allow)
			}
		})
	}
	if got, err := e.Reviewers(ctx, sub(anySub)); err != nil || !slices.Equal(got, []string{"U0ONCALL", "U0SEC"}) {
		t.Errorf("Reviewers = %v, %v; want U0ONCALL, U0SEC (groups are not trusted)", got, err)
	}
	var warned []string
	for _, w := range e.snap.Load().warnings {
		if strings.Contains(w, "may not grant") {
			warned = append(warned, w)
		}
	}
	want := []string{
		"policy.csv:7: group:sre may not grant breakglass: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml); its members get role:oncall's other permissions, not breakglass",
		"policy.csv:8: group:sre may not grant review: groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml); this row allows nothing",
	}
	if !slices.Equal(warned, want) {
		t.Errorf("warnings\n%q\nwant\n%q", warned, want)
	}
}

func TestPolicyTestAssertsWhoMayBreakGlass(t *testing.T) {
	dir := identityPolicy(t, breakglassRows, "")
	writeFile(t, dir, "bg_test.yaml", `
decisions:
  - {user: U0ONCALL, act: breakglass, scope: "subaccount:`+anySub+`", want: allow, rule: "p, role:oncall, **, breakglass, allow"}
  - {user: U0SEC, act: review, scope: "subaccount:`+anySub+`", owner: U0ONCALL, want: allow}
  - {user: U0ONCALL, act: review, scope: "subaccount:`+anySub+`", owner: U0ONCALL, want: deny}
  - {user: U0SEC, act: breakglass, scope: "subaccount:`+anySub+`", want: allow}
`)
	var out bytes.Buffer
	failed, err := RunTests(context.Background(), dir, &out)
	if err != nil || failed != 1 {
		t.Fatalf("RunTests = %d, %v\n%s", failed, err, out.String())
	}
	if !strings.Contains(out.String(), "FAIL bg_test.yaml:6: U0SEC breakglass") {
		t.Errorf("output:\n%s", out.String())
	}
}
