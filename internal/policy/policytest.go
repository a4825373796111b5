package policy

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/credbot/credbot/internal/approval"
)

// testFileSuffix names policy test tables: policies/*_test.yaml. They are not
// policy: editing them does not change the hash or trigger a reload.
const testFileSuffix = "_test.yaml"

// testDoc is one policy test table: the Slack directory it assumes, and the
// decisions, quorums and approver lists it expects.
type testDoc struct {
	Directory struct {
		Users map[string]struct {
			Email       string `yaml:"email"`
			Guest       bool   `yaml:"guest"`
			Bot         bool   `yaml:"bot"`
			Deactivated bool   `yaml:"deactivated"`
		} `yaml:"users"`
		Groups map[string][]string `yaml:"groups"`
	} `yaml:"directory"`
	Decisions []decisionCase  `yaml:"decisions"`
	Quorum    []quorumCase    `yaml:"quorum"`
	Approvers []approversCase `yaml:"approvers"`
	Routes    []routeCase     `yaml:"routes"`
}

// routeCase says where a request in scope must be posted: a channel id, or
// "default" for CREDBOT_APPROVAL_CHANNEL (no route covers it); optionally
// whether its approvers are DMed and which route decides.
type routeCase struct {
	Name        string `yaml:"name"`
	Scope       string `yaml:"scope"`
	Channel     string `yaml:"channel"`
	DMApprovers *bool  `yaml:"dm_approvers"`
	Route       string `yaml:"route"` // optional: the deciding route's name
}

// defaultChannel is how a routes case names CREDBOT_APPROVAL_CHANNEL.
const defaultChannel = "default"

type decisionCase struct {
	Name  string `yaml:"name"`
	User  string `yaml:"user"`
	Act   string `yaml:"act"`
	Scope string `yaml:"scope"`
	Owner string `yaml:"owner"`
	Want  string `yaml:"want"` // allow | deny
	Rule  string `yaml:"rule"` // optional: the deciding row, as written or normalised
}

type quorumCase struct {
	Name      string   `yaml:"name"`
	Scope     string   `yaml:"scope"`
	Act       string   `yaml:"act"` // create (the default), rotate or extend
	Approvers []string `yaml:"approvers"`
	Want      string   `yaml:"want"` // met | waiting
	Need      int      `yaml:"need"` // optional
}

type approversCase struct {
	Name  string   `yaml:"name"`
	Scope string   `yaml:"scope"`
	Want  []string `yaml:"want"`
}

// lines finds the line of each list item, for failure messages: yaml.v3 gives
// positions only through nodes.
type testLines struct {
	Decisions []yaml.Node `yaml:"decisions"`
	Quorum    []yaml.Node `yaml:"quorum"`
	Approvers []yaml.Node `yaml:"approvers"`
	Routes    []yaml.Node `yaml:"routes"`
}

// RunTests loads the policy in dir and checks it against every *_test.yaml
// table there, like "opa test": each failure is printed to w with the rule
// that decided, and a summary ends the output. Every decision is also put to
// plain Casbin running the model, and a disagreement is a failure. err is
// set when the policy or a table cannot be loaded.
func RunTests(ctx context.Context, dir string, w io.Writer) (failed int, err error) {
	files, hash, err := readPolicy(dir)
	if err != nil {
		return 0, err
	}
	s, err := compile(files)
	if err != nil {
		return 0, fmt.Errorf("policy %s does not load: %w", short(hash), err)
	}
	s.hash = hash
	for _, warn := range s.warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	ref, err := newCasbinEnforcer(s)
	if err != nil {
		return 0, fmt.Errorf("casbin: %w", err)
	}
	tables, err := filepath.Glob(filepath.Join(dir, "*"+testFileSuffix))
	if err != nil {
		return 0, err
	}
	if len(tables) == 0 {
		return 0, fmt.Errorf("no *%s files in %s", testFileSuffix, dir)
	}
	sort.Strings(tables)
	total := 0
	for _, path := range tables {
		n, f, err := runTable(ctx, s, ref, path, w)
		total += n
		failed += f
		if err != nil {
			return failed, err
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "FAIL: %d of %d policy tests failed (policy %s)\n", failed, total, short(hash))
	} else {
		fmt.Fprintf(w, "ok: %d policy tests passed (policy %s)\n", total, short(hash))
	}
	return failed, nil
}

func runTable(ctx context.Context, s *snapshot, ref *casbinEnforcer, path string, w io.Writer) (total, failed int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	file := filepath.Base(path)
	var doc testDoc
	if err := decodeYAML(b, &doc); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", file, err)
	}
	var lines testLines
	_ = yaml.Unmarshal(b, &lines) // cannot fail where the strict decode passed
	lineOf := func(nodes []yaml.Node, i int) int {
		if i < len(nodes) {
			return nodes[i].Line
		}
		return 0
	}

	dirFake := &tableDirectory{users: map[string]Identity{}, groups: map[string][]string{}}
	for id, u := range doc.Directory.Users {
		dirFake.users[id] = Identity{ID: id, Email: u.Email, Active: !u.Deactivated, Bot: u.Bot, Guest: u.Guest}
	}
	for g, m := range doc.Directory.Groups {
		dirFake.groups[strings.TrimPrefix(g, prefixGroup)] = m
	}
	// A private engine over the compiled snapshot: no files, no metrics, and
	// the table's directory for the whole run.
	e, err := newEngine(Options{Directory: dirFake, DirectoryTTL: 1 << 62})
	if err != nil {
		return 0, 0, err
	}
	e.install(s)

	fail := func(line int, name, format string, args ...any) {
		failed++
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(w, "FAIL %s:%d%s: %s\n", file, line, name, fmt.Sprintf(format, args...))
	}
	for i, c := range doc.Decisions {
		total++
		line := lineOf(lines.Decisions, i)
		scope, err := approval.ParseScope(c.Scope)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: scope: %w", file, line, err)
		}
		if c.Want != "allow" && c.Want != "deny" {
			return total, failed, fmt.Errorf("%s:%d: want must be allow or deny", file, line)
		}
		want := c.Want == "allow"
		d, err := e.Authorize(ctx, c.User, approval.Action(c.Act), scope, c.Owner)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		desc := fmt.Sprintf("%s %s in %s", c.User, c.Act, c.Scope)
		if c.Owner != "" {
			desc += " (request of " + c.Owner + ")"
		}
		rule := d.Rule
		if rule == "" {
			rule = "none (default deny)"
		}
		if d.Allowed != want {
			fail(line, c.Name, "%s: got %s, want %s\n    deciding rule: %s\n    reason: %s", desc, verdictWord(d.Allowed), c.Want, rule, d.Reason)
			continue
		}
		if c.Rule != "" && !sameRule(c.Rule, d.Rule) {
			fail(line, c.Name, "%s: %s as expected, but decided by %s, want %s", desc, c.Want, rule, c.Rule)
			continue
		}
		if refusedBeforeModel(c.User, approval.Action(c.Act), scope, c.Owner) || refusedAfterModel(d) {
			continue // the code refuses where the model is not asked
		}
		names, err := e.ids.names(ctx, c.User, s)
		if err != nil {
			return total, failed, err
		}
		ok, crule, err := ref.decide(names, approval.Action(c.Act), s.pathOf(scope.String()), c.User, c.Owner)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: casbin: %w", file, line, err)
		}
		if ok != d.Allowed {
			fail(line, c.Name, "%s: credbot says %s by %s, plain Casbin says %s by %q: please report this", desc, verdictWord(d.Allowed), rule, verdictWord(ok), crule)
		}
	}
	for i, c := range doc.Quorum {
		total++
		line := lineOf(lines.Quorum, i)
		scope, err := approval.ParseScope(c.Scope)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: scope: %w", file, line, err)
		}
		if c.Want != "met" && c.Want != "waiting" {
			return total, failed, fmt.Errorf("%s:%d: want must be met or waiting", file, line)
		}
		act := approval.Action(c.Act)
		if act == "" {
			act = approval.ActionCreate
		}
		q, err := e.QuorumFor(ctx, act, scope, c.Approvers)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		got := "waiting"
		if q.Met {
			got = "met"
		}
		if got != c.Want || (c.Need != 0 && q.Need != c.Need) {
			what := "quorum"
			if act != approval.ActionCreate {
				what = string(act) + " quorum"
			}
			fail(line, c.Name, "%s in %s with %v: got %s (%d of %d; waiting for %v), want %s%s",
				what, c.Scope, c.Approvers, got, q.Have, q.Need, q.Waiting, c.Want, needText(c.Need))
		}
	}
	for i, c := range doc.Approvers {
		total++
		line := lineOf(lines.Approvers, i)
		scope, err := approval.ParseScope(c.Scope)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: scope: %w", file, line, err)
		}
		got, err := e.Approvers(ctx, scope)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		want := slices.Clone(c.Want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			fail(line, c.Name, "approvers in %s: got %v, want %v", c.Scope, got, want)
		}
	}
	for i, c := range doc.Routes {
		total++
		line := lineOf(lines.Routes, i)
		scope, err := approval.ParseScope(c.Scope)
		if err != nil {
			return total, failed, fmt.Errorf("%s:%d: scope: %w", file, line, err)
		}
		if c.Channel != defaultChannel {
			if err := checkRouteChannel(c.Channel); err != nil {
				return total, failed, fmt.Errorf("%s:%d: %w (or %q: no route, CREDBOT_APPROVAL_CHANNEL)", file, line, err, defaultChannel)
			}
		}
		r := e.ApprovalRoute(scope)
		got, by := r.Channel, r.Rule
		if got == "" {
			got, by = defaultChannel, "no route covers it (CREDBOT_APPROVAL_CHANNEL)"
		}
		switch {
		case got != c.Channel:
			fail(line, c.Name, "requests in %s go to %s, want %s\n    decided by: %s", c.Scope, got, c.Channel, by)
		case c.DMApprovers != nil && *c.DMApprovers != r.DMApprovers:
			fail(line, c.Name, "requests in %s: dm_approvers is %v, want %v\n    decided by: %s", c.Scope, r.DMApprovers, *c.DMApprovers, by)
		case c.Route != "" && c.Route != r.Name:
			fail(line, c.Name, "requests in %s go to %s as expected, but by %s, want the route named %q", c.Scope, got, by, c.Route)
		}
	}
	return total, failed, nil
}

// refusedBeforeModel reports whether Authorize denies a request in code,
// before the rows are consulted: invalid input, approve without a requester,
// and self-approval (which the model refuses as well).
func refusedBeforeModel(user string, act approval.Action, scope approval.Scope, owner string) bool {
	return !isUserID(user) || !requestAction(act) || scope.Validate() != nil ||
		(act == approval.ActionApprove || act == approval.ActionReview) && (owner == "" || owner == user)
}

// refusedAfterModel reports whether Authorize overrode the model's allow:
// distinct_people_by_email compares people, which the model cannot.
func refusedAfterModel(d approval.Decision) bool {
	return d.Rule == SamePersonRule || d.Rule == EmailRequiredRule
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

func needText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" needing %d", n)
}

// sameRule compares an expected rule with a Decision.Rule ("p, …, allow
// (policy.csv:12)"): either as written, with or without the location, and
// with any spacing.
func sameRule(want, got string) bool {
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, ",", ", ")), " ") }
	want, got = norm(want), norm(got)
	if want == got {
		return true
	}
	text, _, _ := strings.Cut(got, " (")
	return want == text
}

// tableDirectory is the Slack directory a test table declares. Users it does
// not list are active members without an email.
type tableDirectory struct {
	users  map[string]Identity
	groups map[string][]string
}

func (d *tableDirectory) User(_ context.Context, id string) (Identity, error) {
	if u, ok := d.users[id]; ok {
		return u, nil
	}
	return Identity{ID: id, Active: true}, nil
}

func (d *tableDirectory) GroupMembers(_ context.Context, group string) ([]string, error) {
	return d.groups[group], nil
}
