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
	group   bool  // reached only through a Slack user group: no approve unless trusted (snapshot.counts)
	via     *rule // the g row that granted this role; nil for the person's own names
	from    int   // index of the entry the role was granted to
	source  string
}

// rank orders how much an entry may grant: 0 deny rows only (an untrusted
// name), 1 everything but approve unless groups are trusted (a Slack group, or
// a role held only through one), 2 everything.
func (e *entry) rank() int {
	switch {
	case !e.trusted:
		return 0
	case e.group:
		return 1
	}
	return 2
}

// isGroup reports whether a subject name is a Slack user group.
func isGroup(n string) bool { return len(n) > len(prefixGroup) && n[:len(prefixGroup)] == prefixGroup }

// closure expands names with every role they hold at path, breadth first, as
// Casbin's role manager does for g(r.sub, p.sub, r.dom). A role inherits the
// trust of the name it was reached from: held through an untrusted name it
// counts for deny rows only, held only through a Slack group it may not
// grant approve unless groups are trusted. buf avoids allocation on the hot
// path.
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
		cl = appendEntry(cl, entry{name: n.name, id: id, trusted: n.trusted, group: isGroup(n.name), from: -1, source: n.source})
	}
	for i := 0; i < len(cl); i++ {
		if cl[i].id < 0 {
			continue
		}
		for _, l := range s.gByName[cl[i].id] {
			if l.seg >= 0 && !containsID(path.ids, l.seg) || l.seg < 0 && !l.rule.dom.match(path.segs) {
				continue
			}
			cl = appendEntry(cl, entry{name: l.rule.role, id: l.role, trusted: cl[i].trusted, group: cl[i].group, via: l.rule, from: i})
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

// appendEntry adds e unless its name is present. A present name reached
// again with a higher rank (say a role held through a Slack group, now also
// held through the user's own ID) takes e's rank and route, and so do the
// roles reached from it: they were recorded with the lower rank.
func appendEntry(cl []entry, e entry) []entry {
	for i := range cl {
		if cl[i].name == e.name {
			if e.rank() > cl[i].rank() {
				cl[i].trusted, cl[i].group, cl[i].via, cl[i].from = e.trusted, e.group, e.via, e.from
				// Until nothing changes: an upgraded role may sit before the
				// role it was reached from. Ranks only rise, so this ends.
				for changed := true; changed; {
					changed = false
					for j := range cl {
						if f := cl[j].from; f >= 0 && cl[f].rank() > cl[j].rank() {
							cl[j].trusted, cl[j].group = cl[f].trusted, cl[f].group
							changed = true
						}
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
	// groupAllow is the first approve row that would have allowed through a
	// Slack group, had groups been trusted for approvals: it explains a deny.
	groupAllow *rule
	groupEntry int
}

func (v verdict) allowed() bool { return v.allow != nil && v.deny == nil }

// counts reports whether an allow row matched through cl[i] may allow act: the
// name is trusted, and is not a Slack group (or a role held only through one)
// asked to grant approve while groups are not trusted for approvals.
func (s *snapshot) counts(cl []entry, i int, act approval.Action) bool {
	return cl[i].trusted && !(cl[i].group && act.Privileged() && !s.quorum.trustGroups)
}

// groupRoot is the Slack group a group-derived entry was reached from.
func groupRoot(cl []entry, i int) string {
	for cl[i].from >= 0 {
		i = cl[i].from
	}
	return cl[i].name
}

// decide evaluates the model's matcher over the index: for every name in the
// closure, the p rows of that name and action whose scope pattern covers path.
// Deny rows match any name; allow rows only trusted ones, and approve rows
// only names not reached through a Slack group unless groups are trusted for
// approvals. each, if not nil, sees every match, for explanations.
func (s *snapshot) decide(cl []entry, act approval.Action, path reqPath, each func(match)) verdict {
	v := verdict{allowEntry: -1, denyEntry: -1, groupEntry: -1}
	act, obj := act.Split()
	ai := actIndex(act)
	if ai < 0 {
		return v
	}
	noGroups := act.Privileged() && !s.quorum.trustGroups
	consider := func(r *rule, i int) {
		if r.obj != "" && !objMatch(obj, r.obj) {
			return // an assign row for other role collections
		}
		if each != nil {
			each(match{rule: r, entry: i})
		}
		switch {
		case !r.allow:
			if v.deny == nil || r.order < v.deny.order {
				v.deny, v.denyEntry = r, i
			}
		case !cl[i].trusted:
		case noGroups && cl[i].group:
			if v.groupAllow == nil || r.order < v.groupAllow.order {
				v.groupAllow, v.groupEntry = r, i
			}
		case v.allow == nil || r.order < v.allow.order:
			v.allow, v.allowEntry = r, i
		}
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
