package policy

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// FuzzLoadPolicy feeds the loader arbitrary files. Malformed input must be
// refused with an error, never a panic, and whatever loads must answer
// decisions, quorums, approver lists and explanations.
func FuzzLoadPolicy(f *testing.F) {
	for _, dir := range []string{"../../policies", "testdata/golden"} {
		f.Add(Model, readSeed(f, dir+"/policy.csv"), readSeed(f, dir+"/hierarchy.yaml"), readSeed(f, dir+"/quorum.yaml"))
	}
	f.Add(Model, "p, U01, **, list, allow\ng, U01, role:a, *\n", "", "")
	f.Add("[request_definition]\nr = sub\n", "p, \"U01\n", "globalaccount: [", "rules: {")
	f.Add(Model, "g, role:a, role:b, **\ng, role:b, role:a, **\n", "globalaccount: x\nchildren: [{directory: x}]", "default: 99")
	f.Fuzz(func(t *testing.T, model, rows, hierarchy, quorum string) {
		files := map[string][]byte{modelFile: []byte(model), "policy.csv": []byte(rows)}
		if hierarchy != "" {
			files[hierarchyFile] = []byte(hierarchy)
		}
		if quorum != "" {
			files[quorumFile] = []byte(quorum)
		}
		s, err := compile(files)
		if err != nil {
			if s != nil {
				t.Fatal("snapshot and error")
			}
			return
		}
		s.hash = hashFiles(files)
		e, err := newEngine(Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.install(s)
		ctx := context.Background()
		scopes := []approval.Scope{ga("acme-ga"), sub(localSub), dir(localDir)}
		for p := range s.paths {
			if sc, err := approval.ParseScope(p); err == nil {
				scopes = append(scopes, sc)
			}
		}
		users := []string{"U01", "U0LOCALAPR"}
		for _, r := range s.rules {
			if isUserID(r.sub) {
				users = append(users, r.sub)
			}
		}
		for _, sc := range scopes[:min(len(scopes), 8)] {
			for _, u := range users[:min(len(users), 4)] {
				for act := range policyActions {
					d, err := e.Authorize(ctx, u, act, sc, "U01")
					if err != nil || d.PolicyHash != s.hash {
						t.Fatalf("Authorize: %+v %v", d, err)
					}
					if act == approval.ActionApprove && u == "U01" && d.Allowed {
						t.Fatal("self-approval allowed")
					}
				}
				if _, err := e.Explain(ctx, u, approval.ActionApprove, sc, "U02"); err != nil {
					t.Fatal(err)
				}
			}
			q, err := e.Quorum(ctx, sc, users)
			if err != nil || q.Need < 1 {
				t.Fatalf("Quorum: %+v %v", q, err)
			}
			if _, err := e.Approvers(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzScopePattern: any pattern either fails to parse or matches without
// panicking, and a parsed pattern's normal form parses to itself.
func FuzzScopePattern(f *testing.F) {
	f.Add("globalaccount:acme/**/subaccount:*", "globalaccount:acme/directory:d1000000-0000-4000-8000-000000000001")
	f.Add("globalaccount:acme*", "globalaccount:acme-evil")
	f.Add("**/**/*", "")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		p, err := parseScopePattern(pattern)
		if err != nil {
			return
		}
		p.match(strings.Split(path, "/"))
		q, err := parseScopePattern(p.src)
		if err != nil || q.src != p.src {
			t.Fatalf("normal form %q of %q: %q, %v", p.src, pattern, q.src, err)
		}
		if strings.Contains(p.src, "*") && p.literal != "" {
			t.Fatalf("wildcard pattern %q indexed as literal", p.src)
		}
	})
}

func readSeed(f *testing.F, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}
