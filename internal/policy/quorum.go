package policy

import (
	"fmt"

	"github.com/credbot/credbot/internal/approval"
	"sort"
	"strconv"
	"strings"
)

// quorumPolicy is quorum.yaml: how many distinct approvers a scope needs, and
// from which groups. Every rule whose scope pattern covers a request's scope
// applies at once, so adding a rule can only make approval harder below it,
// never easier; scopes no rule covers need def approvals.
type quorumPolicy struct {
	def   int
	rules []quorumRule

	// trustGroups lets Slack user groups grant approve. Off by default: in
	// many workspaces any member may create a user group or edit its
	// members, so "one from @security" would be one from whoever joined it.
	trustGroups bool
	// byEmail makes people distinct by normalised profile email as well as
	// by Slack user ID, so that one person with two accounts neither
	// approves their own request nor counts twice.
	byEmail bool
}

type quorumRule struct {
	index     int
	name      string
	action    approval.Action // create (the default), rotate or extend
	scope     scopePattern
	approvals int
	from      []string // subject names; one distinct approver from each
}

func (q quorumRule) label() string {
	if q.name != "" {
		return strconv.Quote(q.name)
	}
	return fmt.Sprintf("#%d (%s)", q.index+1, q.scope.src)
}

type quorumDoc struct {
	Default                *int `yaml:"default"`
	TrustGroupsForApproval bool `yaml:"trust_groups_for_approval"`
	DistinctPeopleByEmail  bool `yaml:"distinct_people_by_email"`
	Rules                  []struct {
		Name      string   `yaml:"name"`
		Scope     string   `yaml:"scope"`
		Action    string   `yaml:"action"`
		Approvals *int     `yaml:"approvals"`
		From      []string `yaml:"from"`
	} `yaml:"rules"`
}

func parseQuorum(b []byte, errs *errorList) quorumPolicy {
	q := quorumPolicy{def: 1}
	var doc quorumDoc
	if err := decodeYAML(b, &doc); err != nil {
		errs.add("%s: %w", quorumFile, err)
		return q
	}
	q.trustGroups, q.byEmail = doc.TrustGroupsForApproval, doc.DistinctPeopleByEmail
	if doc.Default != nil {
		if *doc.Default < 1 || *doc.Default > maxApprovals {
			errs.add("%s: default must be between 1 and %d approvals", quorumFile, maxApprovals)
		} else {
			q.def = *doc.Default
		}
	}
	for i, r := range doc.Rules {
		where := fmt.Sprintf("%s: rule #%d", quorumFile, i+1)
		if r.Name != "" {
			where += " " + strconv.Quote(r.Name)
		}
		if r.Scope == "" {
			errs.add("%s: scope is missing", where)
			continue
		}
		pat, err := parseScopePattern(r.Scope)
		if err != nil {
			errs.add("%s: %w", where, err)
			continue
		}
		act := approval.Action(r.Action)
		if act == "" {
			act = approval.ActionCreate
		}
		if !quorumActions[act] {
			errs.add("%s: action must be create, rotate, extend or assign, not %q", where, r.Action)
			continue
		}
		qr := quorumRule{index: i, name: r.Name, action: act, scope: pat, approvals: -1}
		if r.Approvals != nil {
			qr.approvals = *r.Approvals
		}
		seen := map[string]bool{}
		bad := false
		for _, f := range r.From {
			n, err := parseSubject(f)
			if err != nil {
				errs.add("%s: from: %w", where, err)
				bad = true
				continue
			}
			if seen[n] {
				errs.add("%s: from names %s twice", where, n)
				bad = true
				continue
			}
			seen[n] = true
			qr.from = append(qr.from, n)
		}
		if bad {
			continue
		}
		if qr.approvals < 0 || (qr.approvals == 0 && (act == approval.ActionCreate || act == approval.ActionAssign)) {
			// A new credential or a role collection always needs someone's yes.
			qr.approvals = max(1, len(qr.from))
		}
		switch {
		case qr.approvals == 0 && len(qr.from) > 0:
			errs.add("%s: approvals: 0 (no approval needed) cannot name groups in from", where)
		case qr.approvals == 0:
			// rotate or extend without approval: the policy's p rows alone decide.
			q.rules = append(q.rules, qr)
		case qr.approvals < 1 || qr.approvals > maxApprovals:
			errs.add("%s: approvals must be between 1 and %d", where, maxApprovals)
		case qr.approvals < len(qr.from):
			errs.add("%s: approvals (%d) is fewer than the groups in from (%d); each group needs its own approver", where, qr.approvals, len(qr.from))
		default:
			q.rules = append(q.rules, qr)
		}
	}
	return q
}

// requirement is what a scope needs, combined over every rule that covers it.
type requirement struct {
	need  int
	from  []string
	rules []quorumRule
}

// quorumActions are the actions a quorum rule may be for. Rotating and
// extending have their own rules so that, for example, an owner may rotate
// their credential without approval where creating one needs two.
var quorumActions = map[approval.Action]bool{
	approval.ActionCreate: true, approval.ActionRotate: true, approval.ActionExtend: true,
	approval.ActionAssign: true, // a role collection; without a rule of its own, what create needs
}

// requirementFor is what act needs in a scope. A rotate or extend that no
// rule of its own action covers needs what create needs there: a rule for
// rotate or extend is the only way to make either looser than create.
func (q quorumPolicy) requirementFor(act approval.Action, path []string) requirement {
	if act == "" {
		act = approval.ActionCreate
	}
	if act != approval.ActionCreate {
		if req := q.requirementOf(act, path); len(req.rules) > 0 {
			return req
		}
	}
	return q.requirementOf(approval.ActionCreate, path)
}

// requirement is what a create needs in a scope.
func (q quorumPolicy) requirement(path []string) requirement {
	return q.requirementFor(approval.ActionCreate, path)
}

func (q quorumPolicy) requirementOf(act approval.Action, path []string) requirement {
	var req requirement
	seen := map[string]bool{}
	for _, r := range q.rules {
		if r.action != act || !r.scope.match(path) {
			continue
		}
		req.rules = append(req.rules, r)
		req.need = max(req.need, r.approvals)
		for _, f := range r.from {
			if !seen[f] {
				seen[f] = true
				req.from = append(req.from, f)
			}
		}
	}
	if len(req.rules) == 0 {
		req.need = q.def
	}
	req.need = max(req.need, len(req.from))
	sort.Strings(req.from)
	return req
}

// label names the rules behind a requirement, for explanations.
func (r requirement) label(def int) string {
	if len(r.rules) == 0 {
		return fmt.Sprintf("default (%d approval(s))", def)
	}
	var out []string
	for _, q := range r.rules {
		out = append(out, q.label())
	}
	return strings.Join(out, " and ")
}

// assign matches required groups to distinct approvers (bipartite matching by
// augmenting paths; both sides are tiny; the matching is maximum). member[a][g]
// says approver a belongs to group g. It returns, per group, the approver
// matched to it, or -1.
func assign(groups []string, member []map[string]bool) []int {
	owner := make([]int, len(groups)) // group -> approver, -1 if none
	for i := range owner {
		owner[i] = -1
	}
	var try func(a int, seen []bool) bool
	try = func(a int, seen []bool) bool {
		for gi, g := range groups {
			if !member[a][g] || seen[gi] {
				continue
			}
			seen[gi] = true
			if owner[gi] < 0 || try(owner[gi], seen) {
				owner[gi] = a
				return true
			}
		}
		return false
	}
	for a := range member {
		try(a, make([]bool, len(groups)))
	}
	return owner
}
