package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

func TestExplainShowsEveryMatchAndTheDecider(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	x, err := e.Explain(context.Background(), "U0CONTR", "create", sub(prodSub), "")
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Allowed || !strings.Contains(x.Decision.Rule, "p, group:contractors") {
		t.Fatalf("decision %+v", x.Decision)
	}
	if x.Decision.Reason != "denied: U0CONTR as group:contractors may not create in directory:"+prodDir {
		t.Errorf("reason %q", x.Decision.Reason)
	}
	if !x.InHierarchy || x.Path != "globalaccount:acme-ga/directory:"+prodDir+"/subaccount:"+prodSub {
		t.Errorf("path %q in hierarchy %v", x.Path, x.InHierarchy)
	}
	var names []string
	for _, s := range x.Subjects {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "U0CONTR group:contractors role:requester" {
		t.Errorf("subjects %q", got)
	}
	if len(x.Matches) != 2 || !x.Matches[0].Allow || x.Matches[0].Deciding || x.Matches[1].Allow || !x.Matches[1].Deciding {
		t.Errorf("matches %+v", x.Matches)
	}
	s := x.String()
	for _, want := range []string{"DENY: U0CONTR create", "deciding rule: p, group:contractors", "* matched p, group:contractors", "via role:requester"} {
		if !strings.Contains(s, want) {
			t.Errorf("String lacks %q:\n%s", want, s)
		}
	}
}

func TestExplainUntrustedNames(t *testing.T) {
	d := shippedDirectory().set(Identity{ID: "U0CAROLG", Email: "carol@example.com", Active: true, Guest: true})
	e := loadGolden(t, "../../policies", d)
	x, err := e.Explain(context.Background(), "U0CAROLG", "approve", sub(localSub), "U0LOCALREQ")
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Allowed {
		t.Fatal("guest allowed through email")
	}
	if len(x.Matches) != 1 || x.Matches[0].Counted {
		t.Errorf("matches %+v, want one uncounted allow", x.Matches)
	}
	if !strings.Contains(x.String(), "[deny rows only]") || !strings.Contains(x.String(), "guest") {
		t.Errorf("String:\n%s", x)
	}
}

func TestExplainScopeOutsideHierarchy(t *testing.T) {
	e := loadGolden(t, "testdata/golden", nil)
	x, err := e.Explain(context.Background(), "U0READER", "list", sub(gS4), "")
	if err != nil {
		t.Fatal(err)
	}
	if x.InHierarchy || !strings.Contains(x.String(), "not in hierarchy.yaml") {
		t.Errorf("explanation:\n%s", x)
	}
}

func TestApprovers(t *testing.T) {
	e := loadGolden(t, "testdata/golden", goldenDirectory())
	ctx := context.Background()
	for _, c := range []struct {
		scope string
		want  string
	}{
		// U0APR2 is in the denied group:blocked; role:lead holds only in D3.
		{sub(gS1).String(), "U0APR U0APRFIN"},
		{sub(gS2).String(), "U0APR U0LEAD"},
		{sub(gS4).String(), ""},
	} {
		scope, _ := approval.ParseScope(c.scope)
		got, err := e.Approvers(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("Approvers(%s) = %v, want %s", c.scope, got, c.want)
		}
	}
	if _, err := e.Approvers(ctx, sub("nope")); err == nil {
		t.Error("invalid scope: no error")
	}
}

// TestApproversWithoutDirectory: without Slack, names are judged alone.
func TestApproversWithoutDirectory(t *testing.T) {
	e := loadGolden(t, "testdata/golden", nil)
	got, err := e.Approvers(context.Background(), sub(gS1))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "U0APR U0APR2 U0APRFIN" {
		t.Errorf("Approvers = %v", got)
	}
}
