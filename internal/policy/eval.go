package policy

import (
	"github.com/credbot/credbot/internal/approval"
)

// entry is one subject name in a decision: a name the person carries, or a
// role reached from one through g rows whose scope covers the request.
type entry struct {
	name    string
	id      int32 // name ID in the policy, -1 if no row names it
	trusted bool
	via     *rule // the g row that granted this role; nil for the person's own names
	from    int   // index of the entry the role was granted to
	source  string
}

// closure expands names with every role they hold at path, breadth first, as
// Casbin's role manager does for g(r.sub, p.sub, r.dom). A role reached from a
// trusted name is trusted. buf avoids allocation on the hot path.
func (s *snapshot) closure(names []name, path reqPath, buf []entry) []entry {
	cl := buf[:0]
	for _, n := range names {
		id := n.id
		if n.gen != s.gen || s.gen == 0 {
			var ok bool
			if id, ok = s.nameIDs[n.name]; !ok {
				id = -1
			}
		}
		cl = appendEntry(cl, entry{name: n.name, id: id, trusted: n.trusted, from: -1, source: n.source})
	}
	for i := 0; i < len(cl); i++ {
		if cl[i].id < 0 {
			continue
		}
		for _, l := range s.gByName[cl[i].id] {
			if l.seg >= 0 && !containsID(path.ids, l.seg) || l.seg < 0 && !l.rule.dom.match(path.segs) {
				continue
			}
			cl = appendEntry(cl, entry{name: l.rule.role, id: l.role, trusted: cl[i].trusted, via: l.rule, from: i})
		}
	}
	return cl
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
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
func (s *snapshot) decide(cl []entry, act approval.Action, path reqPath, each func(match)) verdict {
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
	ai := actIndex(act)
	if ai < 0 {
		return v
	}
	for i := range cl {
		if cl[i].id < 0 {
			continue
		}
		rs := s.pByName[cl[i].id][ai]
		if rs == nil {
			continue
		}
		if rs.byScope != nil {
			for _, seg := range path.ids {
				if seg < 0 {
					continue
				}
				for _, r := range rs.byScope[seg] {
					consider(r, i)
				}
			}
		}
		for _, r := range rs.wild {
			if r.dom.match(path.segs) {
				consider(r, i)
			}
		}
	}
	return v
}
