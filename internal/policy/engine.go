// Package policy decides who may request, approve, list, get and delete SAP BTP
// API credentials, from a Casbin model and policy kept as files (policies/):
// RBAC with domains, where a domain is a BTP scope and a rule on a directory or
// global account covers everything below it; allow and deny rows, where deny
// wins and nothing is allowed by default; and quorum rules saying how many
// distinct approvers a scope needs.
//
// Decisions come from an index compiled from the rows, which answers in
// microseconds where Casbin's enforcer scans every row; tests hold the index to
// Casbin running the same model. The engine polls the files and swaps in a new
// policy only when it loads cleanly, so a broken edit keeps the last good
// policy and shows up in Health and in metrics.
package policy

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credbot/credbot/internal/approval"
)

// Options configure Load.
type Options struct {
	// Dir holds model.conf, *.csv, and optionally hierarchy.yaml and
	// quorum.yaml; see policies/README.md.
	Dir string
	// Directory resolves emails and Slack user groups. If nil, only Slack user
	// IDs are subjects and email and group rows never match.
	Directory Directory
	// DirectoryTTL is how long Directory answers are reused. Default 1 minute.
	DirectoryTTL time.Duration
	Logger       *slog.Logger
	// Registerer receives the engine's metrics; nil registers none.
	Registerer prometheus.Registerer
	// ReloadInterval is how often Run polls the files. Default 5 seconds.
	ReloadInterval time.Duration
	// Changed, when set, is told of every policy put in force: the hash it
	// replaces ("" at start), the new one, and how it came (for the audit
	// trail).
	Changed func(ctx context.Context, from, to, how string)
	// LastGood, when set, keeps every policy that loaded, so that a replica
	// starting while the mounted files are broken serves the last good policy
	// instead of failing (see Load).
	LastGood LastGood
	// Clock defaults to time.Now.
	Clock func() time.Time
}

// Engine answers authorization questions from the policy in force.
type Engine struct {
	dir      string
	log      *slog.Logger
	clock    func() time.Time
	interval time.Duration
	ids      *identityCache // nil without a Directory
	metrics  *metrics

	snap atomic.Pointer[snapshot]
	gen  atomic.Uint64 // generations of installed snapshots

	reloadMu   sync.Mutex // one reload at a time
	healthMu   sync.Mutex
	failedHash string // content hash of the broken files, if the last load failed
	failedErr  error
	failedAt   time.Time

	changed  func(ctx context.Context, from, to, how string)
	keep     LastGood    // nil: nothing kept
	lastGood atomic.Bool // the policy in force came from keep, not from dir
}

var _ approval.Authorizer = (*Engine)(nil)

// SelfApprovalRule is the Decision.Rule of a refused approval of one's own
// request; no policy row can override it.
const SelfApprovalRule = "built-in: requesters never approve their own requests"

// SelfReviewRule is the Decision.Rule of a refused review of one's own
// break-glass.
const SelfReviewRule = "built-in: nobody reviews their own break-glass"

// SamePersonRule is the Decision.Rule of a refused approval by another Slack
// account with the requester's email, when quorum.yaml sets
// distinct_people_by_email.
const SamePersonRule = "built-in: distinct_people_by_email: one email is one person"

// EmailRequiredRule is the Decision.Rule of a refused create or approve by
// someone whose profile email credbot cannot read (or of a request whose
// requester's it cannot), when quorum.yaml sets distinct_people_by_email: it
// could not tell whether two accounts are one person, so it refuses.
const EmailRequiredRule = "built-in: distinct_people_by_email: people are told apart by profile email"

// groupsUntrusted is why a Slack group's approve permission did not count.
const groupsUntrusted = "groups are not trusted for approvals (trust_groups_for_approval in quorum.yaml)"

// LastGood keeps the last policy that loaded, outside the pod (Redis): its
// files and their content hash.
type LastGood interface {
	SaveLastGoodPolicy(ctx context.Context, hash string, files map[string][]byte) error
	LastGoodPolicy(ctx context.Context) (hash string, files map[string][]byte, err error)
}

// Load reads and compiles the policy in opts.Dir. If the files are broken it
// falls back to the last good policy opts.LastGood kept (reporting the broken
// files in Health, and loading them as soon as they are fixed); without one
// it fails: a service should not start without a policy.
func Load(ctx context.Context, opts Options) (*Engine, error) {
	e, err := newEngine(opts)
	if err != nil {
		return nil, err
	}
	err = e.Reload(ctx)
	if err == nil {
		return e, nil
	}
	if opts.LastGood == nil {
		return nil, err
	}
	hash, files, lerr := opts.LastGood.LastGoodPolicy(ctx)
	if lerr != nil || len(files) == 0 {
		return nil, fmt.Errorf("%w (and no last good policy is kept to fall back on: %v)", err, lerr)
	}
	s, cerr := compile(files)
	if cerr != nil || hashFiles(files) != hash {
		return nil, fmt.Errorf("%w (and the last good policy kept does not load: %v)", err, cerr)
	}
	s.hash, s.loadedAt = hash, e.clock()
	e.install(s)
	e.metrics.rules.Set(float64(len(s.rules)))
	e.lastGood.Store(true)
	if opts.Changed != nil {
		opts.Changed(ctx, "", hash, "the files in "+e.dir+" are broken ("+err.Error()+"); serving the last good policy kept in Redis")
	}
	e.log.ErrorContext(ctx, "the policy files are broken; serving the last good policy kept in Redis until they are fixed",
		"in_force", hash, "dir", e.dir, "error", err)
	return e, nil
}

func newEngine(opts Options) (*Engine, error) {
	e := &Engine{
		dir:      opts.Dir,
		log:      opts.Logger,
		clock:    opts.Clock,
		interval: opts.ReloadInterval,
		keep:     opts.LastGood,
		changed:  opts.Changed,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	if e.interval <= 0 {
		e.interval = 5 * time.Second
	}
	if opts.Directory != nil {
		ttl := opts.DirectoryTTL
		if ttl <= 0 {
			ttl = time.Minute
		}
		e.ids = newIdentityCache(opts.Directory, ttl, e.clock)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("policy: register metrics: %w", err)
	}
	e.metrics = m
	return e, nil
}

// Reload loads the policy files now if their content changed. On failure the
// policy in force stays, and Health and the metrics say why.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	files, hash, err := readPolicy(e.dir)
	if err != nil {
		return e.failed("", fmt.Errorf("policy: %w", err))
	}
	cur := e.snap.Load()
	if cur != nil && hash == cur.hash {
		e.recovered()
		return nil
	}
	e.healthMu.Lock()
	known := hash == e.failedHash
	prevErr := e.failedErr
	e.healthMu.Unlock()
	if known {
		return prevErr // already logged and counted
	}
	// A ConfigMap update swaps all files at once, but our reads are not
	// atomic: read again and accept only a stable set.
	if _, again, err := readPolicy(e.dir); err != nil || again != hash {
		return fmt.Errorf("policy: files changed while reading; retrying at the next poll")
	}
	s, err := compile(files)
	if err != nil {
		return e.failed(hash, fmt.Errorf("policy %s: %w", short(hash), err))
	}
	s.hash = hash
	s.loadedAt = e.clock()
	if e.ids == nil && (s.emails || len(s.groups) > 0) {
		s.warnings = append(s.warnings, "email and group rows never match: no Slack directory is configured")
	}
	if e.ids == nil && s.quorum.byEmail {
		s.warnings = append(s.warnings, quorumFile+": distinct_people_by_email refuses every create and approve: no Slack directory is configured to read emails")
	}
	prev := ""
	if cur != nil {
		prev = cur.hash
	}
	e.install(s)
	e.recovered()
	e.lastGood.Store(false)
	if e.changed != nil {
		e.changed(ctx, prev, hash, "loaded from "+e.dir)
	}
	if e.keep != nil {
		if err := e.keep.SaveLastGoodPolicy(ctx, hash, files); err != nil {
			e.log.WarnContext(ctx, "could not keep the policy as the last good one in Redis; a replica starting with broken files would not start", "hash", hash, "error", err)
		}
	}
	e.metrics.reloads.WithLabelValues("success").Inc()
	e.metrics.lastSuccess.Set(float64(s.loadedAt.Unix()))
	e.metrics.rules.Set(float64(len(s.rules)))
	e.log.InfoContext(ctx, "policy loaded", "hash", hash, "dir", e.dir, "rules", len(s.rules), "scopes", len(s.paths), "quorum_rules", len(s.quorum.rules), "routes", len(s.routes.rules))
	for _, w := range s.warnings {
		e.log.WarnContext(ctx, "policy warning", "hash", hash, "warning", w)
	}
	return nil
}

// install puts s in force. Its generation tells cached names, which carry
// name IDs of the snapshot they were resolved under, that they are stale.
func (e *Engine) install(s *snapshot) {
	s.gen = e.gen.Add(1)
	e.snap.Store(s)
}

func (e *Engine) failed(hash string, err error) error {
	e.healthMu.Lock()
	e.failedHash, e.failedErr, e.failedAt = hash, err, e.clock()
	e.healthMu.Unlock()
	e.metrics.reloads.WithLabelValues("failure").Inc()
	e.metrics.healthy.Set(0)
	if cur := e.snap.Load(); cur != nil {
		e.log.Error("policy reload failed; keeping the policy in force", "in_force", cur.hash, "error", err)
	}
	return err
}

func (e *Engine) recovered() {
	e.healthMu.Lock()
	e.failedHash, e.failedErr = "", nil
	e.healthMu.Unlock()
	e.metrics.healthy.Set(1)
}

// Run polls the policy files every ReloadInterval until ctx is done. It reads
// contents rather than watching for events, so it sees Kubernetes ConfigMap
// updates (an atomic swap of the ..data symlink) like any other edit.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = e.Reload(ctx) // failures are logged, counted and in Health
		}
	}
}

// Hash is the content hash of the policy in force.
func (e *Engine) Hash() string { return e.snap.Load().hash }

// Scopes returns every scope hierarchy.yaml names, each after its parent:
// the scopes the inventory lists at BTP.
func (e *Engine) Scopes() []approval.Scope { return e.snap.Load().scopes() }

// Health reports whether the policy files on disk are the policy in force. When
// they are broken, ok is false and detail says what is wrong and which policy
// still decides.
func (e *Engine) Health() (ok bool, detail string) {
	s := e.snap.Load()
	e.healthMu.Lock()
	err, at := e.failedErr, e.failedAt
	e.healthMu.Unlock()
	inForce := fmt.Sprintf("policy %s loaded %s (%d rules)", short(s.hash), s.loadedAt.UTC().Format(time.RFC3339), len(s.rules))
	if e.lastGood.Load() {
		inForce = fmt.Sprintf("the last good policy %s kept in Redis (%d rules; this replica started while the files were broken)", short(s.hash), len(s.rules))
	}
	if err != nil {
		return false, fmt.Sprintf("policy files broken since %s, keeping %s: %v", at.UTC().Format(time.RFC3339), inForce, err)
	}
	return true, inForce
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

// Authorize decides whether user may do act in scope. owner is the requester
// of the request acted on; approve without one is denied, as is approving
// one's own request (with distinct_people_by_email, from any account with the
// requester's email). Invalid input is denied, never an error; an error means
// the user's identity could not be resolved (and the decision is a deny).
func (e *Engine) Authorize(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string) (approval.Decision, error) {
	x, err := e.explain(ctx, user, act, scope, owner, false)
	e.metrics.decision(act, x.Decision.Allowed, err)
	return x.Decision, err
}

// Explanation is a decision with everything that led to it, for
// "/credbot why" and for audits.
type Explanation struct {
	Decision approval.Decision
	User     string
	Action   approval.Action
	Scope    approval.Scope
	// Path is the scope with its ancestors from hierarchy.yaml, root first.
	Path string
	// InHierarchy is false when hierarchy.yaml does not list the scope, so
	// that only rules naming it or wildcards apply.
	InHierarchy bool
	// Subjects are the names the user carries here: their own, and the roles
	// those hold in the scope.
	Subjects []ExplainedSubject
	// Matches are every row that matched, in file order.
	Matches []ExplainedRule
}

// ExplainedSubject is one subject name and how the user came to carry it.
type ExplainedSubject struct {
	Name    string
	Trusted bool // false: counts for deny rows only
	// NoApprove: a Slack group, or a role held only through one, while
	// groups are not trusted for approvals: it may grant anything but approve.
	NoApprove bool
	Via       string // the g row that granted a role, or where a name came from
}

// ExplainedRule is one matching row and the name it matched through.
type ExplainedRule struct {
	Rule    string
	Allow   bool
	Subject string
	// Counted is false for an allow row matched through an untrusted name,
	// or an approve row matched through a Slack group while groups are not
	// trusted for approvals; NotCounted says which.
	Counted    bool
	NotCounted string
	Deciding   bool
}

// Explain decides like Authorize and says why: which rule allowed or denied,
// through which of the user's names and roles, and what else matched.
func (e *Engine) Explain(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string) (Explanation, error) {
	return e.explain(ctx, user, act, scope, owner, true)
}

func (e *Engine) explain(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string, full bool) (Explanation, error) {
	s := e.snap.Load()
	x := Explanation{User: user, Action: act, Scope: scope}
	deny := func(reason string) (Explanation, error) {
		x.Decision = approval.Decision{Reason: reason, PolicyHash: s.hash}
		return x, nil
	}
	switch {
	case user == "":
		return deny("denied: no user")
	case !isUserID(user):
		return deny(fmt.Sprintf("denied: %q is not a Slack user ID", user))
	case !requestAction(act):
		return deny(fmt.Sprintf("denied: unknown action %q", act))
	}
	if err := s.validate(scope); err != nil {
		return deny("denied: " + err.Error())
	}
	if act == approval.ActionApprove && owner == "" {
		// Every approval is of someone's request; without the requester the
		// self-approval check could not run, so refuse rather than guess.
		return deny("denied: approve needs the requester of the request (owner)")
	}
	if act == approval.ActionApprove && owner == user {
		x.Decision = approval.Decision{Rule: SelfApprovalRule, Reason: "denied: " + user + " requested this and cannot approve it", PolicyHash: s.hash}
		return x, nil
	}
	if act == approval.ActionReview && owner == "" {
		return deny("denied: review needs the user who broke glass (owner)")
	}
	if act == approval.ActionReview && owner == user {
		// The model's matcher knows only approve; this check is the rule for
		// review (model.conf stays as deployments mounted it).
		x.Decision = approval.Decision{Rule: SelfReviewRule, Reason: "denied: " + user + " broke glass here and cannot review it", PolicyHash: s.hash}
		return x, nil
	}
	names, err := e.ids.names(ctx, user, s)
	if err != nil {
		x.Decision = approval.Decision{Reason: "denied: could not resolve who " + user + " is", PolicyHash: s.hash}
		return x, fmt.Errorf("policy: %w", err)
	}
	key := scope.String()
	path := s.path(key)
	_, x.InHierarchy = s.paths[key]
	var buf [16]entry
	cl := s.closure(names, path, buf[:0])
	var each func(match)
	var matches []match
	if full {
		each = func(m match) { matches = append(matches, m) }
	}
	// The model's matcher excludes approving one's own request; so does the
	// check above, so this is belt and braces.
	var v verdict
	if !(act == approval.ActionApprove && owner == user) {
		v = s.decide(cl, act, path, each)
	}
	x.Decision = s.decision(cl, v, user, act, key)
	if x.Decision.Allowed && s.quorum.byEmail && (act == approval.ActionApprove || act == approval.ActionCreate) {
		d, err := e.distinctPeople(ctx, s, user, act, owner)
		if err != nil {
			x.Decision = approval.Decision{Reason: "denied: could not resolve who " + user + " is", PolicyHash: s.hash}
			return x, fmt.Errorf("policy: %w", err)
		}
		if d != nil {
			x.Decision = *d
			v = verdict{} // no row decided: mark none as deciding
		}
	}
	if full {
		x.Path = strings.Join(path.segs, "/")
		for i, c := range cl {
			es := ExplainedSubject{Name: c.name, Trusted: c.trusted, NoApprove: c.trusted && !s.counts(cl, i, approval.ActionApprove), Via: c.source}
			if c.via != nil {
				es.Via = fmt.Sprintf("%s, as %s", c.via.String(), cl[c.from].name)
			}
			x.Subjects = append(x.Subjects, es)
		}
		slices.SortFunc(matches, func(a, b match) int { return a.rule.order - b.rule.order })
		for _, m := range matches {
			er := ExplainedRule{
				Rule:     m.rule.String(),
				Allow:    m.rule.allow,
				Subject:  cl[m.entry].name,
				Counted:  !m.rule.allow || s.counts(cl, m.entry, act),
				Deciding: m.rule == v.deny || (v.deny == nil && m.rule == v.allow),
			}
			switch {
			case er.Counted:
			case !cl[m.entry].trusted:
				er.NotCounted = "untrusted name"
			default:
				er.NotCounted = groupRoot(cl, m.entry) + " may not grant " + string(act) + ": " + groupsUntrusted
			}
			x.Matches = append(x.Matches, er)
		}
	}
	return x, nil
}

func (s *snapshot) decision(cl []entry, v verdict, user string, act approval.Action, scope string) approval.Decision {
	d := approval.Decision{PolicyHash: s.hash}
	switch {
	case v.deny != nil:
		d.Rule = v.deny.String()
		d.Reason = "denied: " + describe(cl, v.denyEntry) + " may not " + string(act) + " in " + v.deny.dom.src
	case v.allow != nil:
		d.Allowed = true
		d.Rule = v.allow.String()
		d.Reason = "allowed: " + describe(cl, v.allowEntry) + " may " + string(act) + " in " + v.allow.dom.src
	case v.groupAllow != nil:
		// Say why the row that would have allowed did not: otherwise a member
		// of @security reads "no rule lets you" beside a rule naming it.
		d.Reason = "denied: " + groupRoot(cl, v.groupEntry) + " may not grant " + string(act) + ": " + groupsUntrusted +
			"; no other rule lets " + user + " " + string(act) + " in " + scope
	default:
		d.Reason = "denied: no rule lets " + user + " " + string(act) + " in " + scope
	}
	return d
}

// distinctPeople applies distinct_people_by_email to an allowed create or
// approve: the user needs a readable profile email, and an approver that of
// the requester, and the two must differ. It returns the refusal, or nil.
func (e *Engine) distinctPeople(ctx context.Context, s *snapshot, user string, act approval.Action, owner string) (*approval.Decision, error) {
	refuse := func(rule, reason string) (*approval.Decision, error) {
		return &approval.Decision{Rule: rule, Reason: "denied: " + reason, PolicyHash: s.hash}, nil
	}
	mine, err := e.ids.personKey(ctx, user)
	if err != nil {
		return nil, err
	}
	if mine == "" {
		return refuse(EmailRequiredRule, "credbot cannot read "+user+"'s Slack profile email, and this policy tells people apart by email (distinct_people_by_email in quorum.yaml)")
	}
	if act != approval.ActionApprove {
		return nil, nil
	}
	theirs, err := e.ids.personKey(ctx, owner)
	if err != nil {
		return nil, err
	}
	switch {
	case theirs == "":
		return refuse(EmailRequiredRule, "credbot cannot read the requester "+owner+"'s Slack profile email, so it cannot tell whether "+user+" is the same person (distinct_people_by_email in quorum.yaml)")
	case theirs == mine:
		return refuse(SamePersonRule, user+" and the requester "+owner+" have the same email ("+mine+"): one person cannot approve their own request (distinct_people_by_email in quorum.yaml)")
	}
	return nil, nil
}

// describe renders how a name was reached, e.g. "U123 as role:approver".
func describe(cl []entry, i int) string {
	chain := []string{cl[i].name}
	root := i
	for j := cl[i].from; j >= 0; j = cl[j].from {
		chain = append(chain, cl[j].name)
		root = j
	}
	if root != 0 {
		chain = append(chain, cl[0].name) // the user ID, who carries every name
	}
	if len(chain) == 1 {
		return chain[0]
	}
	var b strings.Builder
	b.WriteString(chain[len(chain)-1])
	for k := len(chain) - 2; k >= 0; k-- {
		b.WriteString(" as ")
		b.WriteString(chain[k])
	}
	return b.String()
}

// String renders the explanation for Slack or a terminal.
func (x Explanation) String() string {
	var b strings.Builder
	verdict := "DENY"
	if x.Decision.Allowed {
		verdict = "ALLOW"
	}
	fmt.Fprintf(&b, "%s: %s %s in %s\n", verdict, x.User, x.Action, x.Scope)
	fmt.Fprintf(&b, "  reason: %s\n", x.Decision.Reason)
	if x.Decision.Rule != "" {
		fmt.Fprintf(&b, "  deciding rule: %s\n", x.Decision.Rule)
	}
	if x.Path != "" {
		fmt.Fprintf(&b, "  scope path: %s", x.Path)
		if !x.InHierarchy {
			b.WriteString(" (not in hierarchy.yaml: rules on ancestors do not apply)")
		}
		b.WriteString("\n")
	}
	for _, s := range x.Subjects {
		trust := ""
		switch {
		case !s.Trusted:
			trust = " [deny rows only]"
		case s.NoApprove && x.Action == approval.ActionApprove:
			trust = " [not for approve: " + groupsUntrusted + "]"
		}
		fmt.Fprintf(&b, "  subject %s%s: %s\n", s.Name, trust, s.Via)
	}
	for _, m := range x.Matches {
		mark := " "
		if m.Deciding {
			mark = "*"
		}
		note := ""
		if !m.Counted {
			note = " (not counted: " + m.NotCounted + ")"
		}
		fmt.Fprintf(&b, "  %s matched %s via %s%s\n", mark, m.Rule, m.Subject, note)
	}
	fmt.Fprintf(&b, "  policy %s", short(x.Decision.PolicyHash))
	return b.String()
}

// Quorum reports whether the distinct approvers so far satisfy the scope's
// quorum. Each approver is authorized again against the policy in force: an
// approval from someone who may no longer approve here does not count. With
// distinct_people_by_email, accounts sharing an email are one approver, and
// an account whose email cannot be read does not count.
//
// Have counts only approvals that advance the rule: required groups are
// matched to distinct approvers first, and the rule's remaining places (its
// approvals beyond its groups) are filled in the order people approved.
// Anyone left over is named in Uncounted with the reason, and Waiting says
// precisely what is still missing.
func (e *Engine) Quorum(ctx context.Context, scope approval.Scope, approvers []string) (approval.QuorumStatus, error) {
	return e.QuorumFor(ctx, approval.ActionCreate, scope, approvers)
}

// QuorumFor is Quorum for one action: create, rotate or extend (quorum.yaml
// rules may name an action; a rule with approvals: 0 needs nobody).
func (e *Engine) QuorumFor(ctx context.Context, act approval.Action, scope approval.Scope, approvers []string) (approval.QuorumStatus, error) {
	act, _ = act.Split() // assign:<collection> needs what assign needs
	if err := scope.Validate(); err != nil {
		return approval.QuorumStatus{}, fmt.Errorf("policy: quorum: %w", err)
	}
	if !quorumActions[act] {
		return approval.QuorumStatus{}, fmt.Errorf("policy: quorum: no quorum for action %q", act)
	}
	s := e.snap.Load()
	path := s.path(scope.String())
	req := s.quorum.requirementFor(act, path.segs)
	st := approval.QuorumStatus{Need: req.need, Rule: req.label(s.quorum.def)}

	seen := map[string]bool{}
	var member []map[string]bool // one per distinct person: the names they approve as
	var who []string             // the account each person approved with first
	person := map[string]int{}   // with distinct_people_by_email: email -> index in member
	var ineligible []string
	uncounted := func(user, why string) {
		st.Uncounted = append(st.Uncounted, approval.Uncounted{User: user, Why: why})
	}
	for _, a := range approvers {
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		if !isUserID(a) {
			ineligible = append(ineligible, a)
			uncounted(a, "it is not a Slack user id")
			continue
		}
		names, err := e.ids.names(ctx, a, s)
		if err != nil {
			return approval.QuorumStatus{}, fmt.Errorf("policy: quorum: %w", err)
		}
		var buf [16]entry
		cl := s.closure(names, path, buf[:0])
		if !s.decide(cl, approval.ActionApprove, path, nil).allowed() {
			ineligible = append(ineligible, a)
			uncounted(a, "the policy in force does not let them approve in "+scope.String())
			continue
		}
		// Only names that may grant approve fill a from: a role held
		// through a Slack group does not, unless groups are trusted.
		in := map[string]bool{}
		for i, c := range cl {
			if s.counts(cl, i, approval.ActionApprove) {
				in[c.name] = true
			}
		}
		if s.quorum.byEmail {
			key, err := e.ids.personKey(ctx, a)
			if err != nil {
				return approval.QuorumStatus{}, fmt.Errorf("policy: quorum: %w", err)
			}
			if key == "" {
				ineligible = append(ineligible, a) // fail closed: cannot tell who this is
				uncounted(a, "credbot cannot read their Slack profile email, and this policy tells people apart by email")
				continue
			}
			if j, ok := person[key]; ok {
				// Another account of someone who approved already: still one
				// person, who covers one from at most (assign sees one row).
				maps.Copy(member[j], in)
				uncounted(a, "they are the same person as "+who[j]+" (same Slack profile email), who approved already")
				continue
			}
			person[key] = len(member)
		}
		member = append(member, in)
		who = append(who, a)
	}
	owner := assign(req.from, member)
	matched := make([]bool, len(member))
	var missing []string
	for gi, g := range req.from {
		if owner[gi] < 0 {
			missing = append(missing, g)
		} else {
			matched[owner[gi]] = true
			st.Have++
		}
	}
	free := st.Need - len(req.from) // places anyone who may approve fills
	for i := range member {
		switch {
		case matched[i]:
		case free > 0:
			free--
			st.Have++
		default:
			uncounted(who[i], notCountedWhy(req, member[i], owner, who))
		}
	}
	for _, g := range missing {
		st.Waiting = append(st.Waiting, "one approver from "+g)
	}
	switch {
	case free == 1:
		st.Waiting = append(st.Waiting, "one more approver")
	case free > 1:
		st.Waiting = append(st.Waiting, fmt.Sprintf("%d more approvers", free))
	}
	st.Met = len(missing) == 0 && free <= 0
	if len(ineligible) > 0 {
		e.log.WarnContext(ctx, "quorum ignores approvals of users who may not approve", "scope", scope.String(), "users", ineligible, "policy", s.hash)
	}
	return st, nil
}

// notCountedWhy says why an eligible approver left over after matching does
// not count: they are in none of the rule's groups, or the groups they are
// in are already filled by others (a maximum matching: no reshuffle frees
// one), and the rule has no other place left.
func notCountedWhy(req requirement, in map[string]bool, owner []int, who []string) string {
	var mine []string
	for gi, g := range req.from {
		if in[g] {
			mine = append(mine, fmt.Sprintf("%s is already filled by %s", g, who[owner[gi]]))
		}
	}
	if len(mine) > 0 {
		return strings.Join(mine, " and ") + otherPlaces(req)
	}
	if len(req.from) == 0 {
		return fmt.Sprintf("its %d approval(s) are already given", req.need)
	}
	none := "none of them"
	if len(req.from) == 2 {
		none = "neither"
	}
	return "this rule counts only approvers from " + orList(req.from) + ", and they are in " + none + otherPlaces(req)
}

func otherPlaces(req requirement) string {
	if req.need > len(req.from) {
		return fmt.Sprintf(", and its other %d place(s) are already filled", req.need-len(req.from))
	}
	return ""
}

// orList renders "a", "a or b", "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// Approvers lists the subject names allowed to approve in scope: user IDs,
// email:… and group:… names, with roles expanded to their members. With a
// Directory, each user ID is judged with all of that person's names, so
// someone denied through a group is left out; emails and groups are judged
// as names alone, and a member may still be denied through another name.
func (e *Engine) Approvers(ctx context.Context, scope approval.Scope) ([]string, error) {
	return e.holders(ctx, approval.ActionApprove, scope)
}

// Reviewers lists, as Approvers does, the subject names allowed to review
// (acknowledge or revoke) a break-glass in scope.
func (e *Engine) Reviewers(ctx context.Context, scope approval.Scope) ([]string, error) {
	return e.holders(ctx, approval.ActionReview, scope)
}

func (e *Engine) holders(ctx context.Context, act approval.Action, scope approval.Scope) ([]string, error) {
	if err := scope.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %s: %w", act, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := e.snap.Load()
	path := s.path(scope.String())
	var out []string
	for _, n := range s.approverNames(act, path) {
		if e.ids == nil || !isUserID(n) {
			if s.mayDo(n, act, path) {
				out = append(out, n)
			}
			continue
		}
		names, err := e.ids.names(ctx, n, s)
		if err != nil {
			return nil, fmt.Errorf("policy: %s: %w", act, err)
		}
		var buf [16]entry
		if s.decide(s.closure(names, path, buf[:0]), act, path, nil).allowed() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// approverNames walks from the approve rows that allow at path back through
// the g rows that hold there, to the names that are not roles.
func (s *snapshot) approverNames(act approval.Action, path reqPath) []string {
	seen := map[string]bool{}
	var queue []string
	approve := actIndex(act)
	for n, id := range s.nameIDs {
		rs := s.pByName[id][approve]
		if rs == nil {
			continue
		}
		hit := false
		for _, seg := range path.ids {
			for _, r := range rs.byScope[seg] {
				hit = hit || r.allow
			}
		}
		for _, r := range rs.wild {
			hit = hit || (r.allow && r.dom.match(path.segs))
		}
		if hit && !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	for i := 0; i < len(queue); i++ {
		for _, r := range s.gRev[queue[i]] {
			if !seen[r.sub] && r.dom.match(path.segs) {
				seen[r.sub] = true
				queue = append(queue, r.sub)
			}
		}
	}
	var out []string
	for _, n := range queue {
		if !isRole(n) {
			out = append(out, n)
		}
	}
	return out
}
