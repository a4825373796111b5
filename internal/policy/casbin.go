package policy

import (
	"fmt"
	"strings"
	"sync"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/credbot/credbot/internal/approval"
)

// casbinEnforcer is plain Casbin running Model over a snapshot's rows. The
// engine does not decide with it (it scans every row, milliseconds at 100k
// rows); policy tests and the test suite use it as the reference the index
// must agree with.
type casbinEnforcer struct {
	e           *casbin.Enforcer
	trustGroups bool // quorum.yaml's trust_groups_for_approval
}

func newCasbinEnforcer(s *snapshot) (*casbinEnforcer, error) {
	m, err := model.NewModelFromString(Model)
	if err != nil {
		return nil, err
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return nil, err
	}
	// Casbin calls the matcher for every row of every request; parse each
	// pattern once.
	var patterns sync.Map
	match := func(path, pattern string) bool {
		p, ok := patterns.Load(pattern)
		if !ok {
			parsed, err := parseScopePattern(pattern)
			if err != nil {
				return false
			}
			p, _ = patterns.LoadOrStore(pattern, &parsed)
		}
		return p.(*scopePattern).match(strings.Split(path, "/"))
	}
	e.AddFunction("scopeMatch", func(args ...any) (any, error) {
		if len(args) != 2 {
			return nil, fmt.Errorf("scopeMatch wants 2 arguments, got %d", len(args))
		}
		path, _ := args[0].(string)
		pattern, _ := args[1].(string)
		return match(path, pattern), nil
	})
	e.AddNamedDomainMatchingFunc("g", "scopeMatch", match)
	var ps, gs [][]string
	for _, r := range s.rules {
		if r.ptype == "p" {
			ps = append(ps, r.fields())
		} else {
			gs = append(gs, r.fields())
		}
	}
	if len(ps) > 0 {
		if _, err := e.AddPolicies(ps); err != nil {
			return nil, err
		}
	}
	if len(gs) > 0 {
		if _, err := e.AddGroupingPolicies(gs); err != nil {
			return nil, err
		}
	}
	return &casbinEnforcer{e: e, trustGroups: s.quorum.trustGroups}, nil
}

// decide asks Casbin once per name and combines the answers as the engine
// does: an explicit deny through any name wins; otherwise an allow through a
// trusted name allows, where a Slack group (with the roles Casbin resolves
// through it) may not allow approve unless groups are trusted for approvals.
// It returns the deciding row's fields.
func (c *casbinEnforcer) decide(names []name, act approval.Action, path []string, user, owner string) (bool, string, error) {
	dom := strings.Join(path, "/")
	var allow string
	for _, n := range names {
		ok, explain, err := c.e.EnforceEx(n.name, dom, string(act), user, owner)
		if err != nil {
			return false, "", err
		}
		grants := n.trusted && !(act.Privileged() && isGroup(n.name) && !c.trustGroups)
		switch {
		case !ok && len(explain) > 0:
			return false, strings.Join(explain, ", "), nil
		case ok && grants && allow == "":
			allow = strings.Join(explain, ", ")
		}
	}
	return allow != "", allow, nil
}
