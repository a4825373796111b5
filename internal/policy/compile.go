package policy

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2/model"
	"gopkg.in/yaml.v3"

	"github.com/credbot/credbot/internal/approval"
)

// File names in a policy directory. Everything else (README.md, *_test.yaml,
// Kubernetes' ..data links) is not policy and does not change the hash.
const (
	modelFile     = "model.conf"
	hierarchyFile = "hierarchy.yaml"
	quorumFile    = "quorum.yaml"
	// routesFile ("routes.yaml") is in route.go.
	policyExt = ".csv"
)

// Model is the Casbin model credbot evaluates. policies/model.conf must say
// the same (comments and spacing aside): the engine answers from an index
// compiled from the rows, and tests hold that index to Casbin running this
// model, so a different model would silently not be what runs. The model
// carries the invariants admins rely on: deny wins, nothing is allowed unless a
// row allows it, and nobody approves their own request.
const Model = `[request_definition]
r = sub, dom, act, user, owner

[policy_definition]
p = sub, dom, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = globMatch(r.act, p.act) && scopeMatch(r.dom, p.dom) && g(r.sub, p.sub, r.dom) && !(r.act == "approve" && r.user == r.owner)
`

// legacyModel is the model before assign rows, whose matcher compared actions
// with ==. A policy directory that still ships it loads as long as it has no
// assign row (no other action has a wildcard, so both matchers agree).
const legacyModel = `[request_definition]
r = sub, dom, act, user, owner

[policy_definition]
p = sub, dom, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.act == p.act && scopeMatch(r.dom, p.dom) && g(r.sub, p.sub, r.dom) && !(r.act == "approve" && r.user == r.owner)
`

// Limits that keep a hostile or mistaken file from exhausting the process.
const (
	maxRoleDepth      = 8  // g chains; Casbin's role manager stops at 10
	maxDirectoryDepth = 10 // nested directories in hierarchy.yaml
	maxApprovals      = 20
	maxErrors         = 20 // errors reported per load
)

// policyActions are the actions a row may name.
var policyActions = map[approval.Action]bool{
	approval.ActionCreate:     true,
	approval.ActionApprove:    true,
	approval.ActionList:       true,
	approval.ActionGet:        true,
	approval.ActionDelete:     true,
	approval.ActionRotate:     true,
	approval.ActionExtend:     true,
	approval.ActionBreakglass: true,
	approval.ActionReview:     true,
	approval.ActionAssign:     true, // written assign:<role collection pattern>
}

// requestAction reports whether act may be asked about: an action rows may
// name, and for assign exactly one well-formed role collection (no pattern).
func requestAction(act approval.Action) bool {
	base, obj := act.Split()
	if !policyActions[base] || (base == approval.ActionAssign) != (obj != "") {
		return false
	}
	return obj == "" || approval.ValidateRoleCollection(obj) == nil
}

// objMatch is globMatch for an assign row's role collection pattern, where
// '*' stands for any run of characters (role collection names hold none of
// the other glob metacharacters).
func objMatch(obj, pattern string) bool {
	if !strings.Contains(pattern, "*") {
		return obj == pattern
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(obj, parts[0]) {
		return false
	}
	obj = obj[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(obj, p)
		if i < 0 {
			return false
		}
		obj = obj[i+len(p):]
	}
	return len(obj) >= len(last) && strings.HasSuffix(obj, last)
}

// rule is one row of a policy CSV file.
type rule struct {
	order int // position across all files: Casbin's "first matching row"
	file  string
	line  int
	ptype string // "p" or "g"
	sub   string // p: subject; g: member
	role  string // g only
	act   approval.Action
	// obj is an assign row's role collection pattern ("Subaccount Viewer",
	// "Subaccount *", "*"): '*' stands for any run of characters.
	obj   string
	allow bool // p only
	dom   scopePattern

	// Interned by buildIndex, for the decision path.
	roleID int32 // g: the role's name ID
	segID  int32 // the segment ID of a one-literal-segment domain, else -1
}

// fields are the row as Casbin holds it, without the ptype.
func (r *rule) fields() []string {
	if r.ptype == "g" {
		return []string{r.sub, r.role, r.dom.src}
	}
	eft := "deny"
	if r.allow {
		eft = "allow"
	}
	act := string(r.act)
	if r.obj != "" {
		act += ":" + r.obj
	}
	return []string{r.sub, r.dom.src, act, eft}
}

// text is the normalised row, e.g. "p, role:approver, directory:…, approve, allow".
func (r *rule) text() string { return r.ptype + ", " + strings.Join(r.fields(), ", ") }

// String is the row with where it was written, as decisions report it.
func (r *rule) String() string { return r.text() + " (" + r.file + ":" + strconv.Itoa(r.line) + ")" }

// snapshot is one loaded policy: immutable once built, swapped atomically on
// reload, so every index and cache derived from it is invalidated with it.
type snapshot struct {
	gen      uint64 // set by Engine.install: names cached with IDs carry it
	hash     string
	loadedAt time.Time
	files    []string
	// legacyModel: model.conf is the model from before assign rows.
	legacyModel bool

	rules  []*rule
	g      map[string][]*rule // member -> its g rows
	gRev   map[string][]*rule // role -> g rows granting it
	groups []string           // Slack groups the policy names, without "group:"
	emails bool               // some row names an email

	paths  map[string][]string // scope string -> path segments, root first
	quorum quorumPolicy
	routes routePolicy // where approval requests go

	// The decision index: names and scope segments interned to small
	// integers, so a decision indexes slices instead of hashing strings.
	nameIDs  map[string]int32
	segIDs   map[string]int32
	pByName  [][numActions]*idRuleSet // name ID, action index -> p rows
	gByName  [][]gLink                // member name ID -> g rows
	reqPaths map[string]reqPath       // scope string -> interned path

	warnings []string

	// validScopes memoises approval.Scope.Validate (a regexp per call) for
	// the scopes decisions see, up to a bound so hostile input cannot grow it.
	validScopes sync.Map // approval.Scope -> struct{}
	validCount  atomic.Int64
}

// validate is scope.Validate, remembered.
func (s *snapshot) validate(scope approval.Scope) error {
	if _, ok := s.validScopes.Load(scope); ok {
		return nil
	}
	if err := scope.Validate(); err != nil {
		return err
	}
	if s.validCount.Add(1) <= int64(4*len(s.paths)+1024) {
		s.validScopes.Store(scope, struct{}{})
	}
	return nil
}

type errorList struct{ errs []error }

func (l *errorList) add(format string, args ...any) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, fmt.Errorf(format, args...))
	} else if len(l.errs) == maxErrors {
		l.errs = append(l.errs, errors.New("too many errors"))
	}
}

func (l *errorList) err() error { return errors.Join(l.errs...) }

// compile parses and validates a policy directory's files into a snapshot.
// files maps base names to contents; only policy files are passed.
func compile(files map[string][]byte) (*snapshot, error) {
	var errs errorList
	s := &snapshot{
		g:     map[string][]*rule{},
		gRev:  map[string][]*rule{},
		paths: map[string][]string{},
	}
	for n := range files {
		s.files = append(s.files, n)
	}
	sort.Strings(s.files)

	if m, ok := files[modelFile]; !ok {
		errs.add("%s: missing", modelFile)
	} else if err := checkModel(string(m)); err != nil {
		if checkModelText(string(m), legacyModel) != nil {
			errs.add("%s: %w", modelFile, err)
		} else {
			s.legacyModel = true
		}
	}

	csvs := 0
	for _, n := range s.files {
		if strings.HasSuffix(n, policyExt) {
			csvs++
			s.parseCSV(n, files[n], &errs)
		}
	}
	if csvs == 0 {
		errs.add("no policy rows: add a *%s file", policyExt)
	}
	if b, ok := files[hierarchyFile]; ok {
		s.parseHierarchy(b, &errs)
	}
	q := quorumPolicy{def: 1}
	if b, ok := files[quorumFile]; ok {
		q = parseQuorum(b, &errs)
	}
	s.quorum = q
	if b, ok := files[routesFile]; ok {
		s.routes = parseRoutes(b, &errs)
	}
	s.checkRoles(&errs)
	if s.legacyModel {
		for _, r := range s.rules {
			if r.obj != "" {
				errs.add("%s:%d: assign rows need the current %s, whose matcher reads globMatch(r.act, p.act) (see policies/README.md)", r.file, r.line, modelFile)
				break
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	s.collectNames()
	s.buildIndex()
	s.warn()
	return s, nil
}

// checkModel holds model.conf to Model, ignoring comments and spacing.
func checkModel(text string) error { return checkModelText(text, Model) }

func checkModelText(text, model_ string) error {
	got, err := model.NewModelFromString(text)
	if err != nil {
		return fmt.Errorf("not a Casbin model: %w", err)
	}
	want, err := model.NewModelFromString(model_)
	if err != nil {
		return fmt.Errorf("built-in model: %w", err)
	}
	strip := func(s string) string { return strings.Join(strings.Fields(s), "") }
	for _, sec := range []string{"r", "p", "g", "e", "m"} {
		if len(got[sec]) != len(want[sec]) {
			return fmt.Errorf("section %q differs from the model credbot evaluates (see policies/README.md)", sec)
		}
		for key, w := range want[sec] {
			g, ok := got[sec][key]
			if !ok || strip(g.Value) != strip(w.Value) {
				return fmt.Errorf("%s differs from the model credbot evaluates (see policies/README.md)", key)
			}
		}
	}
	if len(got) != len(want) {
		return errors.New("extra sections: credbot evaluates exactly the model in policies/README.md")
	}
	return nil
}

func (s *snapshot) parseCSV(file string, b []byte, errs *errorList) {
	r := csv.NewReader(bytes.NewReader(b))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	seen := map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			errs.add("%s: %w", file, err)
			return
		}
		line, _ := r.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		ru, err := parseRow(rec)
		if err != nil {
			errs.add("%s:%d: %w", file, line, err)
			continue
		}
		ru.file, ru.line, ru.order = file, line, len(s.rules)
		key := ru.text()
		if prev, dup := seen[key]; dup {
			errs.add("%s:%d: duplicate of line %d", file, line, prev)
			continue
		}
		seen[key] = line
		s.add(ru)
	}
}

func parseRow(rec []string) (*rule, error) {
	switch rec[0] {
	case "p":
		if len(rec) != 5 {
			return nil, fmt.Errorf("p rows have 4 fields (subject, scope, action, allow|deny), got %d", len(rec)-1)
		}
		sub, err := parseSubject(rec[1])
		if err != nil {
			return nil, err
		}
		dom, err := parseScopePattern(rec[2])
		if err != nil {
			return nil, err
		}
		act, obj := approval.Action(rec[3]).Split()
		if !policyActions[act] {
			return nil, fmt.Errorf("unknown action %q (want create, approve, list, get, delete, rotate, extend, breakglass or review, or assign:<role collection>)", rec[3])
		}
		if (act == approval.ActionAssign) != (obj != "") {
			return nil, fmt.Errorf("action %q: assign names the role collection it allows, e.g. assign:Subaccount Viewer or assign:*, and no other action names anything", rec[3])
		}
		if obj != "" {
			if err := approval.ValidateRoleCollection(strings.ReplaceAll(obj, "*", "x")); err != nil && obj != "*" {
				return nil, fmt.Errorf("action %q: %w", rec[3], err)
			}
		}
		var allow bool
		switch rec[4] {
		case "allow":
			allow = true
		case "deny":
		default:
			return nil, fmt.Errorf("effect %q: want allow or deny", rec[4])
		}
		return &rule{ptype: "p", sub: sub, dom: dom, act: act, obj: obj, allow: allow}, nil
	case "g":
		if len(rec) != 4 {
			return nil, fmt.Errorf("g rows have 3 fields (member, role, scope), got %d", len(rec)-1)
		}
		sub, err := parseSubject(rec[1])
		if err != nil {
			return nil, err
		}
		role, err := parseSubject(rec[2])
		if err != nil {
			return nil, err
		}
		if !isRole(role) {
			return nil, fmt.Errorf("%q: the second field of a g row must be a role:<name>", rec[2])
		}
		if sub == role {
			return nil, fmt.Errorf("%s cannot be a member of itself", role)
		}
		dom, err := parseScopePattern(rec[3])
		if err != nil {
			return nil, err
		}
		return &rule{ptype: "g", sub: sub, role: role, dom: dom}, nil
	}
	return nil, fmt.Errorf("row type %q: want p or g", rec[0])
}

func (s *snapshot) add(r *rule) {
	s.rules = append(s.rules, r)
	if r.ptype == "g" {
		s.g[r.sub] = append(s.g[r.sub], r)
		s.gRev[r.role] = append(s.gRev[r.role], r)
	}
}

const numActions = 10

// actApprove is actIndex(approval.ActionApprove).
const actApprove = 1

// actIndex numbers the actions rows may name; -1 for any other.
func actIndex(a approval.Action) int {
	switch a {
	case approval.ActionCreate:
		return 0
	case approval.ActionApprove:
		return actApprove
	case approval.ActionList:
		return 2
	case approval.ActionGet:
		return 3
	case approval.ActionDelete:
		return 4
	case approval.ActionRotate:
		return 5
	case approval.ActionExtend:
		return 6
	case approval.ActionBreakglass:
		return 7
	case approval.ActionReview:
		return 8
	case approval.ActionAssign:
		return 9
	}
	return -1
}

// gLink is a g row packed for the decision path: a member's links sit in one
// contiguous slice, and literal domains match without touching the row.
type gLink struct {
	role int32
	seg  int32 // as rule.segID
	rule *rule
}

// idRuleSet holds the p rows of one name and action: rows on one literal
// scope are found by segment ID, the few wildcard rows by scanning.
type idRuleSet struct {
	byScope map[int32][]*rule
	wild    []*rule
}

// reqPath is a scope path as decisions use it: its segments, and their IDs
// (-1 for a segment no row or hierarchy entry mentions).
type reqPath struct {
	segs []string
	ids  []int32
}

// buildIndex interns names and segments and files every row under them.
func (s *snapshot) buildIndex() {
	s.nameIDs = map[string]int32{}
	s.segIDs = map[string]int32{}
	nameID := func(n string) int32 {
		id, ok := s.nameIDs[n]
		if !ok {
			id = int32(len(s.nameIDs))
			s.nameIDs[n] = id
			s.pByName = append(s.pByName, [numActions]*idRuleSet{})
			s.gByName = append(s.gByName, nil)
		}
		return id
	}
	segID := func(seg string) int32 {
		id, ok := s.segIDs[seg]
		if !ok {
			id = int32(len(s.segIDs))
			s.segIDs[seg] = id
		}
		return id
	}
	for _, path := range s.paths {
		for _, seg := range path {
			segID(seg)
		}
	}
	for _, r := range s.rules {
		r.segID = -1
		if r.dom.literal != "" {
			r.segID = segID(r.dom.literal)
		}
		sub := nameID(r.sub)
		if r.ptype == "g" {
			r.roleID = nameID(r.role)
			s.gByName[sub] = append(s.gByName[sub], gLink{role: r.roleID, seg: r.segID, rule: r})
			continue
		}
		ai := actIndex(r.act)
		rs := s.pByName[sub][ai]
		if rs == nil {
			rs = &idRuleSet{}
			s.pByName[sub][ai] = rs
		}
		if r.segID >= 0 {
			if rs.byScope == nil {
				rs.byScope = map[int32][]*rule{}
			}
			rs.byScope[r.segID] = append(rs.byScope[r.segID], r)
		} else {
			rs.wild = append(rs.wild, r)
		}
	}
	s.reqPaths = make(map[string]reqPath, len(s.paths))
	for key, path := range s.paths {
		s.reqPaths[key] = s.intern(path)
	}
}

func (s *snapshot) intern(path []string) reqPath {
	p := reqPath{segs: path, ids: make([]int32, len(path))}
	for i, seg := range path {
		id, ok := s.segIDs[seg]
		if !ok {
			id = -1
		}
		p.ids[i] = id
	}
	return p
}

// path returns the interned path of a scope string: its ancestry from
// hierarchy.yaml, or the scope alone when the hierarchy does not list it.
func (s *snapshot) path(scope string) reqPath {
	if p, ok := s.reqPaths[scope]; ok {
		return p
	}
	return s.intern([]string{scope})
}

// checkRoles refuses cyclic or deep role inheritance: both make "who is what"
// hard to explain, and Casbin's role manager silently stops at 10 levels.
func (s *snapshot) checkRoles(errs *errorList) {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	depth := map[string]int{}
	var visit func(n string) int
	visit = func(n string) int {
		switch state[n] {
		case active:
			errs.add("role inheritance loops through %s", n)
			return 0
		case done:
			return depth[n]
		}
		state[n] = active
		d := 0
		for _, r := range s.g[n] {
			if c := visit(r.role) + 1; c > d {
				d = c
			}
		}
		state[n] = done
		depth[n] = d
		return d
	}
	members := make([]string, 0, len(s.g))
	for m := range s.g {
		members = append(members, m)
	}
	sort.Strings(members)
	for _, m := range members {
		if d := visit(m); d > maxRoleDepth {
			errs.add("%s inherits roles %d levels deep; at most %d", m, d, maxRoleDepth)
			return
		}
	}
}

// collectNames records which Slack groups and whether any emails the policy
// names, so that identity resolution asks Slack only about those.
func (s *snapshot) collectNames() {
	groups := map[string]bool{}
	note := func(n string) {
		switch {
		case strings.HasPrefix(n, prefixGroup):
			groups[strings.TrimPrefix(n, prefixGroup)] = true
		case strings.HasPrefix(n, prefixEmail):
			s.emails = true
		}
	}
	for _, r := range s.rules {
		note(r.sub)
	}
	for _, q := range s.quorum.rules {
		for _, f := range q.from {
			note(f)
		}
	}
	for g := range groups {
		s.groups = append(s.groups, g)
	}
	sort.Strings(s.groups)
}

// warn notes what is legal but probably a mistake.
func (s *snapshot) warn() {
	if len(s.paths) > 0 {
		known := map[string]bool{}
		for _, p := range s.paths {
			for _, seg := range p {
				known[seg] = true
			}
		}
		reported := map[string]bool{}
		check := func(where string, p scopePattern) {
			for _, seg := range p.segs {
				if seg.kind == segLiteral && !known[seg.text] && !reported[seg.text] {
					reported[seg.text] = true
					s.warnings = append(s.warnings, fmt.Sprintf("%s: %s is not in %s, so rules on its ancestors do not cover it", where, seg.text, hierarchyFile))
				}
			}
		}
		for _, r := range s.rules {
			check(fmt.Sprintf("%s:%d", r.file, r.line), r.dom)
		}
		for _, q := range s.quorum.rules {
			check(quorumFile+": rule "+q.label(), q.scope)
		}
		s.warnRoutes(check)
	}
	// A quorum that names a group nobody in it may approve in can never be met.
	for _, q := range s.quorum.rules {
		for _, f := range q.from {
			if isGroup(f) && !s.quorum.trustGroups {
				s.warnings = append(s.warnings, fmt.Sprintf("%s: rule %s requires an approval from %s, which can never come: %s", quorumFile, q.label(), f, groupsUntrusted))
				continue
			}
			if q.scope.literal != "" && !s.mayApprove(f, s.path(q.scope.literal)) {
				s.warnings = append(s.warnings, fmt.Sprintf("%s: rule %s requires an approval from %s, but no row lets %s approve in %s", quorumFile, q.label(), f, f, q.scope.literal))
			}
		}
	}
	if !s.quorum.trustGroups {
		s.warnGroupApprovals()
	}
}

// warnGroupApprovals names every row through which a Slack group would grant
// a privileged action (approve, breakglass, review), had groups been trusted
// for approvals: those grants are ignored, and the policy's author should
// know (scopes aside: a warning, not a proof).
func (s *snapshot) warnGroupApprovals() {
	grants := map[string][]string{} // names with a privileged allow row: the actions
	for _, r := range s.rules {
		if r.ptype == "p" && r.allow && r.act.Privileged() && !slices.Contains(grants[r.sub], string(r.act)) {
			grants[r.sub] = append(grants[r.sub], string(r.act))
		}
	}
	var reaches func(role string, depth int, acts []string) []string
	reaches = func(role string, depth int, acts []string) []string {
		for _, a := range grants[role] {
			if !slices.Contains(acts, a) {
				acts = append(acts, a)
			}
		}
		for _, r := range s.g[role] {
			if depth < maxRoleDepth {
				acts = reaches(r.role, depth+1, acts)
			}
		}
		return acts
	}
	for _, r := range s.rules {
		if !isGroup(r.sub) {
			continue
		}
		switch {
		case r.ptype == "p" && r.allow && r.act.Privileged():
			s.warnings = append(s.warnings, fmt.Sprintf("%s:%d: %s may not grant %s: %s; this row allows nothing", r.file, r.line, r.sub, r.act, groupsUntrusted))
		case r.ptype == "g":
			if acts := reaches(r.role, 1, nil); len(acts) > 0 {
				slices.Sort(acts)
				s.warnings = append(s.warnings, fmt.Sprintf("%s:%d: %s may not grant %s: %s; its members get %s's other permissions, not %s", r.file, r.line, r.sub, strings.Join(acts, ", "), groupsUntrusted, r.role, strings.Join(acts, ", ")))
			}
		}
	}
}

// mayApprove reports whether name itself (not through other names of a person)
// is allowed to approve at path.
func (s *snapshot) mayApprove(n string, path reqPath) bool {
	return s.mayDo(n, approval.ActionApprove, path)
}

// mayDo reports whether name itself is allowed act at path.
func (s *snapshot) mayDo(n string, act approval.Action, path reqPath) bool {
	var buf [16]entry
	cl := s.closure([]name{{name: n, trusted: true}}, path, buf[:0])
	d := s.decide(cl, act, path, nil)
	return d.allow != nil && d.deny == nil
}

// pathOf returns the path of a scope string: its ancestry from hierarchy.yaml,
// or the scope alone when the hierarchy does not list it.
func (s *snapshot) pathOf(scope string) []string {
	if p, ok := s.paths[scope]; ok {
		return p
	}
	return []string{scope}
}

type hierarchyDoc struct {
	GlobalAccount string          `yaml:"globalaccount"`
	Name          string          `yaml:"name"`
	Children      []hierarchyNode `yaml:"children"`
}

type hierarchyNode struct {
	Directory  string          `yaml:"directory"`
	Subaccount string          `yaml:"subaccount"`
	Name       string          `yaml:"name"`
	Children   []hierarchyNode `yaml:"children"`
}

func (s *snapshot) parseHierarchy(b []byte, errs *errorList) {
	var doc hierarchyDoc
	if err := decodeYAML(b, &doc); err != nil {
		errs.add("%s: %w", hierarchyFile, err)
		return
	}
	if doc.GlobalAccount == "" {
		if len(doc.Children) > 0 {
			errs.add("%s: children need a globalaccount at the root", hierarchyFile)
		}
		return
	}
	ga := strings.ToLower(doc.GlobalAccount)
	if err := validateScopeID(approval.ScopeGlobalAccount, ga); err != nil {
		errs.add("%s: %w", hierarchyFile, err)
		return
	}
	root := string(approval.ScopeGlobalAccount) + ":" + ga
	s.paths[root] = []string{root}
	var walk func(parent []string, nodes []hierarchyNode, dirDepth int)
	walk = func(parent []string, nodes []hierarchyNode, dirDepth int) {
		for _, n := range nodes {
			var kind approval.ScopeKind
			var id string
			switch {
			case n.Directory != "" && n.Subaccount == "":
				kind, id = approval.ScopeDirectory, n.Directory
			case n.Subaccount != "" && n.Directory == "":
				kind, id = approval.ScopeSubaccount, n.Subaccount
			default:
				errs.add("%s: under %s: each child is either directory: <guid> or subaccount: <guid>", hierarchyFile, parent[len(parent)-1])
				continue
			}
			id = strings.ToLower(id)
			if err := validateScopeID(kind, id); err != nil {
				errs.add("%s: %w", hierarchyFile, err)
				continue
			}
			seg := string(kind) + ":" + id
			if _, dup := s.paths[seg]; dup {
				errs.add("%s: %s appears twice", hierarchyFile, seg)
				continue
			}
			path := append(append(make([]string, 0, len(parent)+1), parent...), seg)
			s.paths[seg] = path
			if kind == approval.ScopeSubaccount {
				if len(n.Children) > 0 {
					errs.add("%s: subaccount %s cannot have children", hierarchyFile, id)
				}
				continue
			}
			if dirDepth+1 > maxDirectoryDepth {
				errs.add("%s: directories nest deeper than %d levels at %s", hierarchyFile, maxDirectoryDepth, seg)
				continue
			}
			walk(path, n.Children, dirDepth+1)
		}
	}
	walk([]string{root}, doc.Children, 0)
}

// decodeYAML decodes one YAML document strictly: unknown keys are errors, so a
// typo ("aprovals") fails the load instead of being ignored.
func decodeYAML(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return errors.New("want a single YAML document")
	}
	return nil
}
