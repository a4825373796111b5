package policy

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Subject names in policy rows:
//
//	U012ABCDEF            a Slack user ID (W… on Enterprise Grid)
//	email:ann@example.com a Slack user's profile email, trusted only for active,
//	                      non-guest, non-bot users
//	group:platform-admins a Slack user group by handle, or group:S012ABCDEF by ID;
//	                      grants no approve unless trust_groups_for_approval,
//	                      since members may often edit groups themselves
//	role:approver         a role, granted to other subjects by g rows
var (
	groupIDRE     = regexp.MustCompile(`^S[A-Z0-9]{2,20}$`)
	groupHandleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,79}$`)
	roleRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,79}$`)
	emailRE       = regexp.MustCompile(`^[^@\s,"*]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$`)
)

const (
	prefixEmail = "email:"
	prefixGroup = "group:"
	prefixRole  = "role:"
)

// parseSubject validates and normalises one subject name.
func parseSubject(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, prefixEmail):
		addr := strings.ToLower(strings.TrimPrefix(s, prefixEmail))
		if !emailRE.MatchString(addr) {
			return "", fmt.Errorf("subject %q: not an email address", s)
		}
		return prefixEmail + addr, nil
	case strings.HasPrefix(s, prefixGroup):
		g := strings.TrimPrefix(s, prefixGroup)
		if groupIDRE.MatchString(g) {
			return s, nil
		}
		g = strings.ToLower(g)
		if !groupHandleRE.MatchString(g) {
			return "", fmt.Errorf("subject %q: want group:<handle> or group:<S… ID>", s)
		}
		return prefixGroup + g, nil
	case strings.HasPrefix(s, prefixRole):
		if !roleRE.MatchString(strings.TrimPrefix(s, prefixRole)) {
			return "", fmt.Errorf("subject %q: role names are lowercase letters, digits, '.', '_' and '-'", s)
		}
		return s, nil
	case isUserID(s):
		return s, nil
	}
	return "", fmt.Errorf("subject %q: want a Slack user ID (U…/W…), email:<address>, group:<handle or ID> or role:<name>", s)
}

// isUserID reports whether s looks like a Slack user ID: U or W, then 2 to 20
// upper-case letters or digits. Hand-written: it runs on every decision.
func isUserID(s string) bool {
	if len(s) < 3 || len(s) > 21 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isRole(name string) bool { return strings.HasPrefix(name, prefixRole) }

// Directory is what the engine needs to know about Slack users: implemented by
// the Slack adapter (users.info, usergroups.users.list), faked in tests.
type Directory interface {
	// User returns the profile of a Slack user ID.
	User(ctx context.Context, id string) (Identity, error)
	// GroupMembers returns the user IDs of a Slack user group, named by handle
	// ("platform-admins") or ID ("S012ABCDEF").
	GroupMembers(ctx context.Context, group string) ([]string, error)
}

// Identity is a Slack user as users.info describes them. The zero value is
// untrusted on purpose: an adapter that forgets to set Active grants nothing
// through email or group rows.
type Identity struct {
	ID     string
	Email  string // profile email; needs the users:read.email scope
	Active bool   // not deactivated (users.info "deleted" is false)
	Bot    bool   // is_bot, or an app user
	Guest  bool   // is_restricted or is_ultra_restricted
}

// trusted reports whether the identity's email and group memberships may grant
// anything. Deny rows apply to them regardless.
func (id Identity) trusted() bool { return id.Active && !id.Bot && !id.Guest }

// name is one subject name a person carries in a decision.
type name struct {
	name    string
	gen     uint64 // the snapshot generation id belongs to; 0 if none
	id      int32
	trusted bool   // may match allow rows; every name matches deny rows
	source  string // how we know: "Slack user ID", "users.info email", …
}

// identityCache remembers Directory answers for a TTL, so that a decision
// costs no Slack call in the common case and group lists (a Tier 2 method)
// are fetched at most once per TTL.
type identityCache struct {
	dir   Directory
	ttl   time.Duration
	clock func() time.Time

	mu       sync.Mutex
	users    map[string]cachedUser
	groups   map[string]cachedGroup
	resolved map[string]cachedNames // user -> every name, per policy
}

// cachedNames are a user's resolved names under one policy (whose set of
// groups they were checked against), valid until the earliest expiry of the
// answers they came from.
type cachedNames struct {
	gen   uint64 // of the snapshot they were resolved under
	names []name
	exp   time.Time
}

type cachedUser struct {
	id  Identity
	exp time.Time
}

type cachedGroup struct {
	members map[string]bool
	exp     time.Time
}

func newIdentityCache(dir Directory, ttl time.Duration, clock func() time.Time) *identityCache {
	return &identityCache{dir: dir, ttl: ttl, clock: clock, users: map[string]cachedUser{}, groups: map[string]cachedGroup{}, resolved: map[string]cachedNames{}}
}

func (c *identityCache) user(ctx context.Context, now time.Time, id string) (Identity, time.Time, error) {
	c.mu.Lock()
	u, ok := c.users[id]
	c.mu.Unlock()
	if ok && now.Before(u.exp) {
		return u.id, u.exp, nil
	}
	ident, err := c.dir.User(ctx, id)
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("look up Slack user %s: %w", id, err)
	}
	if ident.ID != id {
		return Identity{}, time.Time{}, fmt.Errorf("look up Slack user %s: directory answered for %q", id, ident.ID)
	}
	u = cachedUser{id: ident, exp: now.Add(c.ttl)}
	c.mu.Lock()
	c.users[id] = u
	c.mu.Unlock()
	return ident, u.exp, nil
}

func (c *identityCache) inGroup(ctx context.Context, now time.Time, group, user string) (bool, time.Time, error) {
	c.mu.Lock()
	g, ok := c.groups[group]
	c.mu.Unlock()
	if ok && now.Before(g.exp) {
		return g.members[user], g.exp, nil
	}
	members, err := c.dir.GroupMembers(ctx, group)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("list members of Slack group %s: %w", group, err)
	}
	g = cachedGroup{members: make(map[string]bool, len(members)), exp: now.Add(c.ttl)}
	for _, m := range members {
		g.members[m] = true
	}
	c.mu.Lock()
	c.groups[group] = g
	c.mu.Unlock()
	return g.members[user], g.exp, nil
}

// names resolves every subject name user carries under policy s: only the
// groups s mentions are asked about. The result is shared: do not modify it.
func (c *identityCache) names(ctx context.Context, user string, s *snapshot) ([]name, error) {
	if c == nil {
		return []name{{name: user, trusted: true, source: "Slack user ID"}}, nil
	}
	now := c.clock()
	c.mu.Lock()
	cn, ok := c.resolved[user]
	c.mu.Unlock()
	if ok && cn.gen == s.gen && s.gen != 0 && now.Before(cn.exp) {
		return cn.names, nil
	}
	out, exp, err := c.resolve(ctx, now, user, s.groups)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].gen = s.gen
		if id, ok := s.nameIDs[out[i].name]; ok {
			out[i].id = id
		} else {
			out[i].id = -1
		}
	}
	c.mu.Lock()
	c.resolved[user] = cachedNames{gen: s.gen, names: out, exp: exp}
	c.mu.Unlock()
	return out, nil
}

func (c *identityCache) resolve(ctx context.Context, now time.Time, user string, groups []string) ([]name, time.Time, error) {
	out := []name{{name: user, trusted: true, source: "Slack user ID"}}
	ident, exp, err := c.user(ctx, now, user)
	if err != nil {
		return nil, exp, err
	}
	trusted := ident.trusted()
	src := ""
	if !trusted {
		src = " (untrusted: " + untrustedWhy(ident) + "; counts for deny rows only)"
	}
	if ident.Email != "" {
		out = append(out, name{name: prefixEmail + strings.ToLower(ident.Email), trusted: trusted, source: "users.info email" + src})
	}
	for _, g := range groups {
		in, gexp, err := c.inGroup(ctx, now, g, user)
		if err != nil {
			return nil, exp, err
		}
		if gexp.Before(exp) {
			exp = gexp
		}
		if in {
			out = append(out, name{name: prefixGroup + g, trusted: trusted, source: "usergroups.users.list" + src})
		}
	}
	return out, exp, nil
}

// personKey is what tells people apart under distinct_people_by_email: the
// user's profile email, normalised by emailKey; "" when there is none to read
// (no directory, no email, or no users:read.email scope).
func (c *identityCache) personKey(ctx context.Context, user string) (string, error) {
	if c == nil {
		return "", nil
	}
	ident, _, err := c.user(ctx, c.clock(), user)
	if err != nil {
		return "", err
	}
	return emailKey(ident.Email), nil
}

// emailKey normalises an email address for telling people apart: trimmed,
// lower-cased, and without a "+tag" in the local part, so that
// ann+second@example.com is ann@example.com. Plus addressing delivers both to
// one mailbox at Google, Microsoft and most mail hosts, so a workspace that
// admits anyone with an @example.com address would otherwise let one person
// confirm a second account. Stripping can only merge addresses, never split
// them: at worst two people are taken for one and a request waits for
// another approver. Dots are kept (only consumer Gmail ignores them). "" if
// email is not an address.
func emailKey(email string) string {
	e := strings.ToLower(strings.TrimSpace(email))
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return ""
	}
	local, domain := e[:at], e[at+1:]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local + "@" + domain
}

func untrustedWhy(id Identity) string {
	var why []string
	if !id.Active {
		why = append(why, "deactivated")
	}
	if id.Bot {
		why = append(why, "bot")
	}
	if id.Guest {
		why = append(why, "guest")
	}
	return strings.Join(why, ", ")
}
