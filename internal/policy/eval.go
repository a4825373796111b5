package policy

import (
	"github.com/credbot/credbot/internal/approval"
)

// entry is one subject name in a decision: a name the person carries, or a
// role reached from one through g rows whose scope covers the request.
type entry struct {
	name    string
	trusted bool
	via     *rule // the g row that granted this role; nil for the person's own names
	from    int   // index of the entry the role was granted to
	source  string
}

// closure expands names with every role they hold at path, breadth first, as
// Casbin's role manager does for g(r.sub, p.sub, r.dom). A role reached from a
// trusted name is trusted. buf avoids allocation on the hot path.
func (s *snapshot) closure(names []name, path []string, buf []entry) []entry {
	cl := buf[:0]
	for _, n := range names {
		cl = appendEntry(cl, entry{name: n.name, trusted: n.trusted, from: -1, source: n.source})
	}
	for i := 0; i < len(cl); i++ {
		for _, r := range s.g[cl[i].name] {
			if r.dom.match(path) {
				cl = appendEntry(cl, entry{name: r.role, trusted: cl[i].trusted, via: r, from: i})
			}
		}
	}
	return cl
}

// appendEntry adds e unless its name is present; a present untrusted name is
// upgraded when e is trusted (and then re-expanded, since it sits earlier).
func appendEntry(cl []entry, e entry) []entry {
	for i := range cl {
		if cl[i].name == e.name {
			if e.trusted && !cl[i].trusted {
				cl[i].trusted, cl[i].via, cl[i].from = true, e.via, e.from
				// Roles reached from it were recorded as untrusted: upgrade them.
				for j := i + 1; j < len(cl); j++ {
					if cl[j].from >= 0 && cl[cl[j].from].trusted && !cl[j].trusted {
						cl[j].trusted = true
					}
				}
			}
			return cl
		}
	}
	return append(cl, e)
}

// match is one p row that matched a request, and the name it matched through.
type match struct {
	rule  *rule
	entry int
}

// verdict is the outcome of evaluating the rows: the first (in file order)
// matching deny row and the first matching allow row, as Casbin's
// allow-and-deny effector picks them.
type verdict struct {
	allow, deny           *rule
	allowEntry, denyEntry int
}

func (v verdict) allowed() bool { return v.allow != nil && v.deny == nil }

// decide evaluates the model's matcher over the index: for every name in the
// closure, the p rows of that name and action whose scope pattern covers path.
// Deny rows match any name; allow rows only trusted ones. each, if not nil,
// sees every match, for explanations.
func (s *snapshot) decide(cl []entry, act approval.Action, path []string, each func(match)) verdict {
	v := verdict{allowEntry: -1, denyEntry: -1}
	consider := func(r *rule, i int) {
		if each != nil {
			each(match{rule: r, entry: i})
		}
		if r.allow {
			if cl[i].trusted && (v.allow == nil || r.order < v.allow.order) {
				v.allow, v.allowEntry = r, i
			}
		} else if v.deny == nil || r.order < v.deny.order {
			v.deny, v.denyEntry = r, i
		}
	}
	for i := range cl {
		rs := s.p[pkey{cl[i].name, act}]
		if rs == nil {
			continue
		}
		if rs.byScope != nil {
			for _, seg := range path {
				for _, r := range rs.byScope[seg] {
					consider(r, i)
				}
			}
		}
		for _, r := range rs.wild {
			if r.dom.match(path) {
				consider(r, i)
			}
		}
	}
	return v
}
