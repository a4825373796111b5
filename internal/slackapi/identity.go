package slackapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/policy"
	"github.com/slack-go/slack"
)

// Profile is what credbot needs to know about a Slack user.
type Profile struct {
	ID         string
	Team       string // home workspace
	Enterprise string // Enterprise Grid org, if any
	Email      string
	Deleted    bool
	Bot        bool // a bot or app user, or Slackbot
	Guest      bool // a multi- or single-channel guest
	Stranger   bool // from another organisation, seen through Slack Connect
	Name       string
}

// ErrRefused marks an identity credbot will not serve; the error text says why,
// for the person refused.
var ErrRefused = errors.New("refused")

// Directory resolves Slack users and user groups through the Web API, with a
// TTL cache, and decides who may talk to credbot at all: active, full members
// of the allowed workspaces. It also implements policy.Directory, so that the
// policy's email: and group: subjects are answered from the same cache.
type Directory struct {
	api     *WebAPI
	ttl     time.Duration
	now     func() time.Time
	allowed []string // team (T…) or enterprise (E…) ids; empty: the installation's team

	mu      sync.Mutex
	users   map[string]cached[Profile]
	groups  map[string]cached[[]string] // group id → member ids
	handles cached[map[string]string]   // group handle → id
	emails  map[string]cached[string]   // email → user id
	home    string                      // the installation's team, from auth.test
}

type cached[T any] struct {
	v   T
	exp time.Time
}

var _ policy.Directory = (*Directory)(nil)

// DirectoryConfig configures NewDirectory.
type DirectoryConfig struct {
	// AllowedTeams are the workspaces (T…) or Enterprise Grid orgs (E…) whose
	// members credbot serves. Empty: only the workspace the app is installed in,
	// as auth.test reports it.
	AllowedTeams []string
	TTL          time.Duration // default 5 minutes
	Now          func() time.Time
}

// NewDirectory returns a directory on api.
func NewDirectory(api *WebAPI, cfg DirectoryConfig) *Directory {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var allowed []string
	for _, t := range cfg.AllowedTeams {
		if t = strings.TrimSpace(t); t != "" {
			allowed = append(allowed, t)
		}
	}
	return &Directory{
		api: api, ttl: cfg.TTL, now: cfg.Now, allowed: allowed,
		users: map[string]cached[Profile]{}, groups: map[string]cached[[]string]{}, emails: map[string]cached[string]{},
	}
}

// fresh returns the cached value of key in m if it has not expired at now.
func fresh[T any](d *Directory, m map[string]cached[T], key string, now time.Time) (T, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := m[key]
	return c.v, ok && now.Before(c.exp)
}

// keep caches v under key in m for the directory's TTL.
func keep[T any](d *Directory, m map[string]cached[T], key string, v T, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m[key] = cached[T]{v: v, exp: now.Add(d.ttl)}
}

// Profile returns the user's profile, from the cache when it is fresh.
func (d *Directory) Profile(ctx context.Context, id string) (Profile, error) {
	now := d.now()
	if v, ok := fresh(d, d.users, id, now); ok {
		return v, nil
	}
	u, err := d.api.UserInfo(ctx, id)
	if err != nil {
		if slackSaid(err, "user_not_found", "user_not_visible") {
			return Profile{}, fmt.Errorf("%w: Slack does not know user %s", ErrRefused, id)
		}
		return Profile{}, fmt.Errorf("users.info %s: %w", id, err)
	}
	p := Profile{
		ID: u.ID, Team: u.TeamID, Enterprise: u.Enterprise.EnterpriseID, Email: strings.ToLower(u.Profile.Email),
		Deleted: u.Deleted, Bot: u.IsBot || u.IsAppUser || u.ID == "USLACKBOT",
		Guest: u.IsRestricted || u.IsUltraRestricted, Stranger: u.IsStranger,
		Name: firstNonEmpty(u.Profile.DisplayName, u.RealName, u.Name),
	}
	if p.ID != id {
		return Profile{}, fmt.Errorf("users.info %s: answered for %q", id, p.ID)
	}
	keep(d, d.users, id, p, now)
	return p, nil
}

// Check returns nil if credbot serves user, or an error wrapping ErrRefused
// whose text tells them why not. It runs before anything of theirs is stored.
func (d *Directory) Check(ctx context.Context, user string) error {
	p, err := d.Profile(ctx, user)
	if err != nil {
		return err
	}
	switch {
	case p.Deleted:
		return fmt.Errorf("%w: your Slack account is deactivated", ErrRefused)
	case p.Bot:
		return fmt.Errorf("%w: bots and apps cannot request or approve credentials", ErrRefused)
	case p.Guest:
		return fmt.Errorf("%w: guests cannot request or approve credentials; ask a full member of the workspace", ErrRefused)
	case p.Stranger:
		return fmt.Errorf("%w: credbot serves only members of its own workspace, not people in shared channels", ErrRefused)
	}
	allowed, err := d.allowedTeams(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(allowed, p.Team) && (p.Enterprise == "" || !slices.Contains(allowed, p.Enterprise)) {
		return fmt.Errorf("%w: credbot serves only members of its own workspace; your account belongs to another one", ErrRefused)
	}
	return nil
}

func (d *Directory) allowedTeams(ctx context.Context) ([]string, error) {
	if len(d.allowed) > 0 {
		return d.allowed, nil
	}
	d.mu.Lock()
	home := d.home
	d.mu.Unlock()
	if home != "" {
		return []string{home}, nil
	}
	r, err := d.api.AuthTest(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth.test: %w", err)
	}
	if r.TeamID == "" {
		return nil, errors.New("auth.test: no team_id")
	}
	d.mu.Lock()
	d.home = r.TeamID
	d.mu.Unlock()
	return []string{r.TeamID}, nil
}

// User implements policy.Directory.
func (d *Directory) User(ctx context.Context, id string) (policy.Identity, error) {
	p, err := d.Profile(ctx, id)
	if errors.Is(err, ErrRefused) {
		// Unknown to Slack: an identity that grants nothing through email or groups.
		return policy.Identity{ID: id}, nil
	}
	if err != nil {
		return policy.Identity{}, err
	}
	ident := policy.Identity{ID: p.ID, Email: p.Email, Active: !p.Deleted, Bot: p.Bot, Guest: p.Guest || p.Stranger}
	if allowed, err := d.allowedTeams(ctx); err == nil && !slices.Contains(allowed, p.Team) && (p.Enterprise == "" || !slices.Contains(allowed, p.Enterprise)) {
		ident.Guest = true // a foreign workspace's member: deny rows only
	}
	return ident, nil
}

// GroupMembers implements policy.Directory: group is a handle ("platform-eng")
// or an id ("S012ABCDEF"). An unknown handle has no members.
func (d *Directory) GroupMembers(ctx context.Context, group string) ([]string, error) {
	id := group
	if !IsSlackID(group, 'S') {
		var ok bool
		var err error
		if id, ok, err = d.groupID(ctx, group); err != nil || !ok {
			return nil, err
		}
	}
	now := d.now()
	if v, ok := fresh(d, d.groups, id, now); ok {
		return v, nil
	}
	members, err := d.api.UserGroupMembers(ctx, id)
	if err != nil {
		if slackSaid(err, "no_such_subteam") {
			members, err = nil, nil
		} else {
			return nil, fmt.Errorf("usergroups.users.list %s: %w", id, err)
		}
	}
	keep(d, d.groups, id, members, now)
	return members, nil
}

// groupID maps a group handle to its id through usergroups.list.
func (d *Directory) groupID(ctx context.Context, handle string) (string, bool, error) {
	now := d.now()
	d.mu.Lock()
	c := d.handles
	d.mu.Unlock()
	if c.v == nil || !now.Before(c.exp) {
		gs, err := d.api.UserGroups(ctx)
		if err != nil {
			return "", false, fmt.Errorf("usergroups.list: %w", err)
		}
		c = cached[map[string]string]{v: make(map[string]string, len(gs)), exp: now.Add(d.ttl)}
		for _, g := range gs {
			c.v[strings.ToLower(g.Handle)] = g.ID
		}
		d.mu.Lock()
		d.handles = c
		d.mu.Unlock()
	}
	id, ok := c.v[strings.ToLower(handle)]
	return id, ok, nil
}

// Mention renders a policy subject so that Slack notifies that person or
// group: U… and group ids directly, handles and emails once resolved. Names
// that cannot be resolved come back as inert text, never as a broadcast.
func (d *Directory) Mention(ctx context.Context, subject string) string {
	switch {
	case strings.HasPrefix(subject, "group:"):
		g := strings.TrimPrefix(subject, "group:")
		id := g
		if !IsSlackID(g, 'S') {
			var ok bool
			var err error
			if id, ok, err = d.groupID(ctx, g); err != nil || !ok {
				return "@" + blockkit.Escape(g)
			}
		}
		return "<!subteam^" + id + ">"
	case strings.HasPrefix(subject, "email:"):
		email := strings.TrimPrefix(subject, "email:")
		if id, err := d.userByEmail(ctx, email); err == nil {
			return "<@" + id + ">"
		}
		return blockkit.Escape(email)
	case IsSlackID(subject, 'U') || IsSlackID(subject, 'W'):
		return "<@" + subject + ">"
	}
	return blockkit.Escape(subject)
}

// userByEmail resolves an email to a full member's id. Nobody by that address,
// or nobody who may be mentioned, is remembered as long as a match is (as ""):
// a policy that names someone without a Slack account costs one lookup per
// TTL, not one per approval message, against a method Slack allows about 50
// times a minute.
func (d *Directory) userByEmail(ctx context.Context, email string) (string, error) {
	notMember := func() error { return fmt.Errorf("%w: %s is not a full member", ErrRefused, email) }
	now := d.now()
	if v, ok := fresh(d, d.emails, email, now); ok {
		if v == "" {
			return "", notMember()
		}
		return v, nil
	}
	u, err := d.api.UserByEmail(ctx, email)
	if err != nil {
		if slackSaid(err, "users_not_found") {
			keep(d, d.emails, email, "", now)
		}
		return "", err
	}
	// Only a full, active member is mentioned through an email subject, just as
	// only they count for the policy.
	if u.Deleted || u.IsBot || u.IsRestricted || u.IsUltraRestricted {
		keep(d, d.emails, email, "", now)
		return "", notMember()
	}
	keep(d, d.emails, email, u.ID, now)
	return u.ID, nil
}

// slackSaid reports whether Slack answered the call with one of the error
// codes (an answer, not a failure to reach it).
func slackSaid(err error, codes ...string) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && slices.Contains(codes, se.Err)
}

func IsSlackID(s string, prefix byte) bool {
	if len(s) < 3 || len(s) > 21 || s[0] != prefix {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Refusal turns an identity error into a user-facing error.
func Refusal(err error) error {
	if errors.Is(err, ErrRefused) {
		return &approval.UserError{Msg: strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "), Err: approval.ErrForbidden}
	}
	return err
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
