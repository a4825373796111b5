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
//	group:platform-admins a Slack user group by handle, or group:S012ABCDEF by ID
//	role:approver         a role, granted to other subjects by g rows
var (
	userIDRE      = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
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
	case userIDRE.MatchString(s):
		return s, nil
	}
	return "", fmt.Errorf("subject %q: want a Slack user ID (U…/W…), email:<address>, group:<handle or ID> or role:<name>", s)
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

	mu     sync.Mutex
	users  map[string]cachedUser
	groups map[string]cachedGroup
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
	return &identityCache{dir: dir, ttl: ttl, clock: clock, users: map[string]cachedUser{}, groups: map[string]cachedGroup{}}
}

func (c *identityCache) user(ctx context.Context, id string) (Identity, error) {
	now := c.clock()
	c.mu.Lock()
	u, ok := c.users[id]
	c.mu.Unlock()
	if ok && now.Before(u.exp) {
		return u.id, nil
	}
	ident, err := c.dir.User(ctx, id)
	if err != nil {
		return Identity{}, fmt.Errorf("look up Slack user %s: %w", id, err)
	}
	if ident.ID != id {
		return Identity{}, fmt.Errorf("look up Slack user %s: directory answered for %q", id, ident.ID)
	}
	c.mu.Lock()
	c.users[id] = cachedUser{id: ident, exp: now.Add(c.ttl)}
	c.mu.Unlock()
	return ident, nil
}

func (c *identityCache) inGroup(ctx context.Context, group, user string) (bool, error) {
	now := c.clock()
	c.mu.Lock()
	g, ok := c.groups[group]
	c.mu.Unlock()
	if ok && now.Before(g.exp) {
		return g.members[user], nil
	}
	members, err := c.dir.GroupMembers(ctx, group)
	if err != nil {
		return false, fmt.Errorf("list members of Slack group %s: %w", group, err)
	}
	set := make(map[string]bool, len(members))
	for _, m := range members {
		set[m] = true
	}
	c.mu.Lock()
	c.groups[group] = cachedGroup{members: set, exp: now.Add(c.ttl)}
	c.mu.Unlock()
	return set[user], nil
}

// names resolves every subject name user carries. groups are the group
// handles or IDs the policy mentions; only those are asked about.
func (c *identityCache) names(ctx context.Context, user string, groups []string) ([]name, error) {
	out := []name{{name: user, trusted: true, source: "Slack user ID"}}
	if c == nil {
		return out, nil
	}
	ident, err := c.user(ctx, user)
	if err != nil {
		return nil, err
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
		in, err := c.inGroup(ctx, g, user)
		if err != nil {
			return nil, err
		}
		if in {
			out = append(out, name{name: prefixGroup + g, trusted: trusted, source: "usergroups.users.list" + src})
		}
	}
	return out, nil
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
