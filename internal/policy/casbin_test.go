package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/casbin/casbin/v2/util"

	"github.com/credbot/credbot/internal/approval"
)

// A small universe for random policies: few names and scopes, so that rows
// collide, roles chain and denies overlap allows.
var (
	randGA   = "globalaccount:ga"
	randDirs = []string{"directory:d1000000-0000-4000-8000-000000000001", "directory:d2000000-0000-4000-8000-000000000002", "directory:d3000000-0000-4000-8000-000000000003"}
	randSubs = []string{"subaccount:51000000-0000-4000-8000-000000000001", "subaccount:52000000-0000-4000-8000-000000000002", "subaccount:53000000-0000-4000-8000-000000000003", "subaccount:54000000-0000-4000-8000-000000000004"}
	// d2 nests in d1; s1 in d2, s2 in d3, s3 under the GA, s4 nowhere.
	randHierarchy = "globalaccount: ga\nchildren:\n" +
		"  - directory: d1000000-0000-4000-8000-000000000001\n    children:\n" +
		"      - directory: d2000000-0000-4000-8000-000000000002\n        children:\n" +
		"          - subaccount: 51000000-0000-4000-8000-000000000001\n" +
		"  - directory: d3000000-0000-4000-8000-000000000003\n    children:\n" +
		"      - subaccount: 52000000-0000-4000-8000-000000000002\n" +
		"  - subaccount: 53000000-0000-4000-8000-000000000003\n"
	randUsers   = []string{"U01", "U02", "U03"}
	randOthers  = []string{"email:a@x.io", "group:g1", "group:g2"}
	randRoles   = []string{"role:r1", "role:r2", "role:r3"}
	randActions = []approval.Action{"create", "approve", "list"}
	// assign rows name role collection patterns; requests name collections.
	randAssignRows = []approval.Action{"assign:Subaccount Viewer", "assign:Subaccount *", "assign:*", "assign:* Administrator", "assign:Sub*Viewer"}
	randAssigns    = []approval.Action{"assign:Subaccount Viewer", "assign:Subaccount Administrator", "assign:Destination Viewer", "assign:Sub Viewer"}
)

func randRowAction(r *rand.Rand) approval.Action {
	if r.IntN(3) == 0 {
		return randAssignRows[r.IntN(len(randAssignRows))]
	}
	return randActions[r.IntN(len(randActions))]
}

func randPattern(r *rand.Rand) string {
	all := append(append([]string{randGA, "globalaccount:gb"}, randDirs...), randSubs...)
	switch r.IntN(8) {
	case 0:
		return "**"
	case 1:
		return []string{"subaccount:*", "directory:*", "*"}[r.IntN(3)]
	case 2:
		return randGA + "/" + []string{"directory:*", "*", "**/subaccount:*", "directory:*/subaccount:*"}[r.IntN(4)]
	case 3:
		return randDirs[r.IntN(len(randDirs))] + "/**/" + randSubs[r.IntN(len(randSubs))]
	}
	return all[r.IntN(len(all))]
}

func randPolicy(r *rand.Rand) string {
	var b strings.Builder
	subjects := append(append(append([]string{}, randUsers...), randOthers...), randRoles...)
	for range 2 + r.IntN(14) {
		eft := "allow"
		if r.IntN(3) == 0 {
			eft = "deny"
		}
		fmt.Fprintf(&b, "p, %s, %s, %s, %s\n", subjects[r.IntN(len(subjects))], randPattern(r), randRowAction(r), eft)
	}
	for range r.IntN(10) {
		member := subjects[r.IntN(len(subjects))]
		fmt.Fprintf(&b, "g, %s, %s, %s\n", member, randRoles[r.IntN(len(randRoles))], randPattern(r))
	}
	return b.String()
}

// TestIndexAgreesWithCasbin generates random policies and requests and holds
// the engine's index to plain Casbin running Model: same verdict, and for a
// single name the same deciding row.
func TestIndexAgreesWithCasbin(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	want := 300
	if testing.Short() {
		want = 30
	}
	policies, requests := 0, 0
	for policies < want {
		files := map[string][]byte{
			modelFile:     []byte(Model),
			"policy.csv":  []byte(randPolicy(r)),
			hierarchyFile: []byte(randHierarchy),
		}
		if r.IntN(2) == 0 {
			files[quorumFile] = []byte("trust_groups_for_approval: true\n")
		}
		s, err := compile(files)
		if err != nil {
			continue // duplicates and role loops are refused; draw again
		}
		policies++
		ce, err := newCasbinEnforcer(s)
		if err != nil {
			t.Fatal(err)
		}
		scopes := append(append([]string{randGA, "globalaccount:gb"}, randDirs...), randSubs...)
		for range 40 {
			requests++
			user := randUsers[r.IntN(len(randUsers))]
			names := []name{{name: user, trusted: true}}
			for _, o := range randOthers {
				if r.IntN(2) == 0 {
					names = append(names, name{name: o, trusted: r.IntN(3) > 0})
				}
			}
			act := randActions[r.IntN(len(randActions))]
			if r.IntN(3) == 0 {
				act = randAssigns[r.IntN(len(randAssigns))]
			}
			owner := ""
			if act == approval.ActionApprove {
				owner = randUsers[r.IntN(len(randUsers))]
			}
			rp := s.path(scopes[r.IntN(len(scopes))])
			path := rp.segs
			var v verdict
			if !(act == approval.ActionApprove && owner == user) {
				var buf [16]entry
				v = s.decide(s.closure(names, rp, buf[:0]), act, rp, nil)
			}
			ok, crule, err := ce.decide(names, act, path, user, owner)
			if err != nil {
				t.Fatal(err)
			}
			if ok != v.allowed() || (crule != "" && !ok) != (v.deny != nil) {
				t.Fatalf("disagreement on %v %s %s owner %q\npolicy:\n%s\nindex: allow=%v deny=%v\ncasbin: %v %q",
					names, act, strings.Join(path, "/"), owner, files["policy.csv"], v.allow, v.deny, ok, crule)
			}
			if len(names) == 1 {
				var want string
				switch {
				case v.deny != nil:
					want = strings.Join(v.deny.fields(), ", ")
				case v.allow != nil:
					want = strings.Join(v.allow.fields(), ", ")
				}
				if crule != want {
					t.Fatalf("deciding rule: index %q, casbin %q\npolicy:\n%s", want, crule, files["policy.csv"])
				}
			}
		}
	}
	t.Logf("%d random policies, %d requests agree", policies, requests)
}

// TestScopeMatchIsGlob holds our matcher to Casbin's globMatch with the
// pattern wrapped in "**/…/**", on every pattern and path of the universe.
func TestScopeMatchIsGlob(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	paths := [][]string{}
	s, err := compile(map[string][]byte{modelFile: []byte(Model), "p.csv": []byte("p, U01, **, list, allow\n"), hierarchyFile: []byte(randHierarchy)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.paths {
		paths = append(paths, p)
	}
	paths = append(paths, []string{"globalaccount:acme-evil"}, []string{"subaccount:54000000-0000-4000-8000-000000000004"})
	patterns := []string{"globalaccount:acme", "globalaccount:ga/**", "**/**/directory:*", "*/*", "*/*/*/*", "**/subaccount:*/**"}
	for range 500 {
		patterns = append(patterns, randPattern(r))
	}
	for _, pat := range patterns {
		p, err := parseScopePattern(pat)
		if err != nil {
			t.Fatalf("%s: %v", pat, err)
		}
		for _, path := range paths {
			// "**/**" is "**" (doublestar disagrees at the ends of a
			// pattern, where it makes "a/**/**" miss "a").
			glob := "**/" + p.src + "/**"
			for strings.Contains(glob, "**/**") {
				glob = strings.ReplaceAll(glob, "**/**", "**")
			}
			want, err := util.GlobMatch(strings.Join(path, "/"), glob)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.match(path); got != want {
				t.Errorf("%q matches %q: %v, globMatch says %v", pat, strings.Join(path, "/"), got, want)
			}
		}
	}
}

func TestNoPrefixSurprises(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"globalaccount:acme", "globalaccount:acme-evil", false},
		{"globalaccount:acme", "globalaccount:acme", true},
		{"globalaccount:acme", "globalaccount:acme/directory:d1000000-0000-4000-8000-000000000001", true},
		{"globalaccount:acme/**", "globalaccount:acme-evil/directory:d1000000-0000-4000-8000-000000000001", false},
		{"directory:*", "globalaccount:acme", false},
		{"subaccount:*", "globalaccount:acme/directory:d1000000-0000-4000-8000-000000000001", false},
	} {
		if got := scopeMatch(c.path, c.pattern); got != c.want {
			t.Errorf("scopeMatch(%q, %q) = %v, want %v", c.path, c.pattern, got, c.want)
		}
	}
	for _, bad := range []string{"globalaccount:acme*", "globalaccount:*acme", "subaccount:1111*", "ga:acme", "acme*", "***", "globalaccount:acme/", "/globalaccount:acme", "globalaccount:ACME_X"} {
		if _, err := parseScopePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
