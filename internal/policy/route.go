package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/credbot/credbot/internal/approval"
)

// routesFile says where approval requests go: routes.yaml. It is policy (in
// the hash, reloaded with the rest) because who sees a request is part of who
// approves it.
const routesFile = "routes.yaml"

// Route is where a scope's approval requests are posted.
type Route struct {
	// Channel is the Slack channel id (C… or G…) of the route that won, or ""
	// when no route covers the scope: then CREDBOT_APPROVAL_CHANNEL.
	Channel string
	// DMApprovers also sends each approver the policy names for the scope the
	// request, with the same buttons, in a DM.
	DMApprovers bool
	// Rule names the route that won, for explanations and policy tests
	// (e.g. `"production" (routes.yaml #2, directory:…)`); "" with no route.
	Rule string
	// Name is the winning route's name, if it has one.
	Name string
}

// routeChannelRE is a Slack channel id a bot can post an approval request
// in: C… (public or private) or G… (older private channels). DMs (D…) and
// user ids are not channels for approvals.
var routeChannelRE = regexp.MustCompile(`^[CG][A-Z0-9]{2,20}$`)

// maxRoutes bounds routes.yaml: each request is matched against every route.
const maxRoutes = 1000

type routePolicy struct {
	rules []routeRule
}

type routeRule struct {
	index   int
	name    string
	scope   scopePattern
	channel string
	dm      bool
	named   int // literal segments in the pattern: more names, more specific
}

func (r routeRule) label() string {
	l := fmt.Sprintf("%s #%d (%s)", routesFile, r.index+1, r.scope.src)
	if r.name != "" {
		l = strconv.Quote(r.name) + " (" + routesFile + " #" + strconv.Itoa(r.index+1) + ", " + r.scope.src + ")"
	}
	return l
}

type routesDoc struct {
	Routes []struct {
		Name        string `yaml:"name"`
		Scope       string `yaml:"scope"`
		Channel     string `yaml:"channel"`
		DMApprovers bool   `yaml:"dm_approvers"`
	} `yaml:"routes"`
}

func parseRoutes(b []byte, errs *errorList) routePolicy {
	var rp routePolicy
	var doc routesDoc
	if err := decodeYAML(b, &doc); err != nil {
		errs.add("%s: %w", routesFile, err)
		return rp
	}
	if len(doc.Routes) > maxRoutes {
		errs.add("%s: %d routes; at most %d", routesFile, len(doc.Routes), maxRoutes)
		return rp
	}
	seen := map[string]int{} // normalised scope pattern -> route number
	for i, r := range doc.Routes {
		where := fmt.Sprintf("%s: route #%d", routesFile, i+1)
		if r.Name != "" {
			where += " " + strconv.Quote(r.Name)
		}
		if r.Scope == "" {
			errs.add("%s: scope is missing (a scope pattern, e.g. directory:<guid>)", where)
			continue
		}
		pat, err := parseScopePattern(r.Scope)
		if err != nil {
			errs.add("%s: %w", where, err)
			continue
		}
		if err := checkRouteChannel(r.Channel); err != nil {
			errs.add("%s: %w", where, err)
			continue
		}
		if prev, dup := seen[pat.src]; dup {
			errs.add("%s: scope %s is routed by route #%d already; one route per scope pattern", where, pat.src, prev)
			continue
		}
		seen[pat.src] = i + 1
		named := 0
		for _, s := range pat.segs {
			if s.kind == segLiteral {
				named++
			}
		}
		rp.rules = append(rp.rules, routeRule{index: i, name: r.Name, scope: pat, channel: r.Channel, dm: r.DMApprovers, named: named})
	}
	return rp
}

func checkRouteChannel(ch string) error {
	switch {
	case ch == "":
		return fmt.Errorf("channel is missing (the channel id, C…, from the channel's details)")
	case routeChannelRE.MatchString(ch):
		return nil
	case strings.HasPrefix(ch, "#"):
		return fmt.Errorf("channel %q is a channel name, not a channel id; use the id from the channel's details (it starts with C)", ch)
	case strings.HasPrefix(ch, "D") || strings.HasPrefix(ch, "U") || strings.HasPrefix(ch, "W"):
		return fmt.Errorf("channel %q is a DM or a user, not a channel; route to a channel (C…) and set dm_approvers: true to DM the approvers as well", ch)
	}
	return fmt.Errorf("channel %q is not a Slack channel id (C… or G…, capital letters and digits)", ch)
}

// routeRank orders the routes that cover a scope. Routes are compared by the
// deepest scope of the request's path (root first, as hierarchy.yaml places
// it) that they name exactly, then by the deepest one they match through a
// wildcard, then by how many scopes they name. So a route on a subaccount
// beats one on its directory, which beats one on the global account, and any
// route that names a scope of the path beats one that matches it only by
// wildcards (subaccount:*, **). Equal ranks go to the earlier route.
type routeRank struct {
	named, any, count int
}

func (a routeRank) beats(b routeRank) bool {
	if a.named != b.named {
		return a.named > b.named
	}
	if a.any != b.any {
		return a.any > b.any
	}
	return a.count > b.count
}

// route returns the winning route for path, if any route covers it.
func (rp routePolicy) route(path []string) (routeRule, bool) {
	var best routeRule
	var bestRank routeRank
	found := false
	for _, r := range rp.rules {
		rank, ok := r.scope.deepest(path)
		if !ok {
			continue
		}
		rank.count = r.named
		if !found || rank.beats(bestRank) {
			best, bestRank, found = r, rank, true
		}
	}
	return best, found
}

// ties lists, for path, the routes that rank equal with the winner and name
// a different channel: the winner is only the earlier one in the file, which
// is worth a warning.
func (rp routePolicy) ties(path []string) (winner routeRule, others []routeRule) {
	w, ok := rp.route(path)
	if !ok {
		return w, nil
	}
	wr, _ := w.scope.deepest(path)
	wr.count = w.named
	for _, r := range rp.rules {
		if r.index == w.index || r.channel == w.channel {
			continue
		}
		rank, ok := r.scope.deepest(path)
		rank.count = r.named
		if ok && !rank.beats(wr) && !wr.beats(rank) {
			others = append(others, r)
		}
	}
	return w, others
}

// deepest matches the pattern against path like match, and reports the
// deepest path positions (0 is the root) that a literal segment and that any
// segment other than ** matched, over every way the pattern can match (-1:
// none). Paths and patterns are short, and the memo makes it
// O(len(pattern)·len(path)).
func (p *scopePattern) deepest(path []string) (routeRank, bool) {
	type res struct {
		done, ok bool
		r        routeRank
	}
	n, m := len(p.segs), len(path)
	memo := make([]res, (n+1)*(m+1))
	none := routeRank{named: -1, any: -1}
	var f func(pi, si int) (routeRank, bool)
	f = func(pi, si int) (routeRank, bool) {
		if pi == n {
			return none, true // the implicit trailing ** takes the rest
		}
		c := &memo[pi*(m+1)+si]
		if c.done {
			return c.r, c.ok
		}
		best, found := none, false
		consider := func(r routeRank, ok bool) {
			if ok && (!found || r.beats(best)) {
				best, found = r, true
			}
		}
		seg := p.segs[pi]
		switch {
		case seg.kind == segMany:
			consider(f(pi+1, si)) // ** matches no scope here
			if si < m {
				consider(f(pi, si+1)) // or one more
			}
		case si < m && seg.matches(path[si]):
			r, ok := f(pi+1, si+1)
			// What the rest matched lies deeper than si, so it wins.
			if ok && r.any < 0 {
				r.any = si
			}
			if ok && r.named < 0 && seg.kind == segLiteral {
				r.named = si
			}
			consider(r, ok)
		}
		c.done, c.ok, c.r = true, found, best
		return best, found
	}
	best, found := none, false
	for si := 0; si <= m; si++ { // the implicit leading **
		if r, ok := f(0, si); ok && (!found || r.beats(best)) {
			best, found = r, true
		}
	}
	return best, found
}

// ApprovalRoute says where approval requests for scope go: the most specific
// route of routes.yaml that covers it (see routeRank), or a Route with no
// Channel when none does, and CREDBOT_APPROVAL_CHANNEL takes them.
func (e *Engine) ApprovalRoute(scope approval.Scope) Route {
	return e.snap.Load().approvalRoute(scope)
}

func (s *snapshot) approvalRoute(scope approval.Scope) Route {
	if len(s.routes.rules) == 0 || scope.Validate() != nil {
		return Route{}
	}
	r, ok := s.routes.route(s.pathOf(scope.String()))
	if !ok {
		return Route{}
	}
	return Route{Channel: r.channel, DMApprovers: r.dm, Rule: r.label(), Name: r.name}
}

// RouteChannels lists the channels routes.yaml sends requests to, each once,
// in file order: the bot must be a member of each.
func (e *Engine) RouteChannels() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range e.snap.Load().routes.rules {
		if !seen[r.channel] {
			seen[r.channel] = true
			out = append(out, r.channel)
		}
	}
	return out
}

// warnRoutes notes routes that tie for a scope of the hierarchy while naming
// different channels (the earlier wins, which the author may not expect), and
// routes that name scopes the hierarchy does not list.
func (s *snapshot) warnRoutes(check func(where string, p scopePattern)) {
	for _, r := range s.routes.rules {
		check(routesFile+": route "+r.label(), r.scope)
	}
	keys := make([]string, 0, len(s.paths))
	for k := range s.paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	reported := map[[2]int]bool{}
	for _, k := range keys {
		w, others := s.routes.ties(s.paths[k])
		for _, o := range others {
			pair := [2]int{min(w.index, o.index), max(w.index, o.index)}
			if reported[pair] {
				continue
			}
			reported[pair] = true
			s.warnings = append(s.warnings, fmt.Sprintf("%s: routes %s and %s are equally specific for %s and name different channels; the earlier, %s, wins", routesFile, w.label(), o.label(), k, w.label()))
		}
	}
}
