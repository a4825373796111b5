package slackapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/slackfake"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDirectoryAdmitsOnlyActiveFullMembersOfAllowedTeams(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	users := []slackfake.User{
		{ID: "U0MEMBER1", Team: slackfake.DefaultTeam},
		{ID: "U0GRIDMEM", Team: "T0SISTER", Enterprise: "E0ORG"},
		{ID: "U0GUEST01", Team: slackfake.DefaultTeam, Restricted: true},
		{ID: "U0GUEST02", Team: slackfake.DefaultTeam, UltraRestricted: true},
		{ID: "U0ROBOT01", Team: slackfake.DefaultTeam, Bot: true},
		{ID: "U0GONE001", Team: slackfake.DefaultTeam, Deleted: true},
		{ID: "U0ABROAD1", Team: "T0OTHER"},
		{ID: "U0STRANGE", Team: "T0OTHER", Stranger: true},
	}
	for _, u := range users {
		s.SetUser(u)
	}
	for _, c := range []struct {
		allowed []string
		admit   []string
	}{
		{nil, []string{"U0MEMBER1"}}, // the installation's team, from auth.test
		{[]string{"T0LOCAL", "T0OTHER"}, []string{"U0MEMBER1", "U0ABROAD1"}},
		{[]string{"E0ORG"}, []string{"U0GRIDMEM"}},
	} {
		d := NewDirectory(api, DirectoryConfig{AllowedTeams: c.allowed})
		for _, u := range users {
			err := d.Check(ctx, u.ID)
			if want := slices.Contains(c.admit, u.ID); (err == nil) != want {
				t.Errorf("allowed %v: Check(%s) = %v, want admitted=%v", c.allowed, u.ID, err, want)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Errorf("Check(%s): %v is not a refusal", u.ID, err)
			}
		}
	}
	if err := NewDirectory(api, DirectoryConfig{}).Check(ctx, "B0NOTAUSER"); !errors.Is(err, ErrRefused) {
		t.Errorf("an id Slack does not know: %v", err)
	}
}

func TestDirectoryCachesUsersForItsTTL(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d := NewDirectory(api, DirectoryConfig{TTL: time.Minute, Now: clk.Now})
	for range 5 {
		if err := d.Check(ctx, "U0CACHED1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(s, "users.info"); n != 1 {
		t.Fatalf("users.info called %d times within the TTL", n)
	}
	// A deactivation shows once the entry expires.
	s.SetUser(slackfake.User{ID: "U0CACHED1", Team: slackfake.DefaultTeam, Deleted: true})
	clk.Add(61 * time.Second)
	if err := d.Check(ctx, "U0CACHED1"); !errors.Is(err, ErrRefused) {
		t.Fatalf("after the TTL: %v, want a refusal", err)
	}
	if n := count(s, "auth.test"); n != 1 {
		t.Fatalf("auth.test called %d times; the home team does not change", n)
	}
}

func TestDirectoryServesThePolicy(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	s.SetUser(slackfake.User{ID: "U0CAROL01", Team: slackfake.DefaultTeam, Email: "Carol@Example.com"})
	s.SetUser(slackfake.User{ID: "U0GUEST01", Team: slackfake.DefaultTeam, Email: "g@example.com", Restricted: true})
	s.SetUser(slackfake.User{ID: "U0ABROAD1", Team: "T0OTHER", Email: "a@example.com"})
	s.SetGroup("S0PLATFORM", "platform-eng", "U0CAROL01", "U0OTHER01")
	var dir policy.Directory = NewDirectory(api, DirectoryConfig{})

	id, err := dir.User(ctx, "U0CAROL01")
	if err != nil || id != (policy.Identity{ID: "U0CAROL01", Email: "carol@example.com", Active: true}) {
		t.Fatalf("User: %+v %v", id, err)
	}
	for _, u := range []string{"U0GUEST01", "U0ABROAD1"} {
		if id, err := dir.User(ctx, u); err != nil || !id.Guest {
			t.Errorf("%s: %+v %v — a guest or a foreign member must count for deny rows only", u, id, err)
		}
	}
	for _, g := range []string{"platform-eng", "S0PLATFORM"} {
		m, err := dir.GroupMembers(ctx, g)
		if err != nil || !slices.Equal(m, []string{"U0CAROL01", "U0OTHER01"}) {
			t.Errorf("GroupMembers(%s) = %v %v", g, m, err)
		}
	}
	if m, err := dir.GroupMembers(ctx, "no-such-group"); err != nil || len(m) != 0 {
		t.Errorf("unknown group: %v %v", m, err)
	}
}

func TestMentionsResolveOnlyToFullMembers(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	s.SetUser(slackfake.User{ID: "U0CAROL01", Team: slackfake.DefaultTeam, Email: "carol@example.com"})
	s.SetUser(slackfake.User{ID: "U0GUEST01", Team: slackfake.DefaultTeam, Email: "guest@example.com", Restricted: true})
	s.SetGroup("S0SEC", "security", "U0CAROL01")
	d := NewDirectory(api, DirectoryConfig{})
	for subject, want := range map[string]string{
		"U0APPROVER":              "<@U0APPROVER>",
		"group:security":          "<!subteam^S0SEC>",
		"group:S0SEC":             "<!subteam^S0SEC>",
		"group:unknown":           "@unknown",
		"email:carol@example.com": "<@U0CAROL01>",
		"email:guest@example.com": "guest@example.com",
		"email:nobody@x.example":  "nobody@x.example",
		"<!channel>":              "&lt;!channel&gt;",
	} {
		if got := d.Mention(ctx, subject); got != want {
			t.Errorf("Mention(%q) = %q, want %q", subject, got, want)
		}
	}
	if got := d.Mention(ctx, "group:<!here>"); strings.Contains(got, "<!") {
		t.Errorf("a hostile group name became a live mention: %q", got)
	}
}

// An email subject that resolves to nobody, or to nobody who may be mentioned,
// is looked up once per TTL, not once per message: every approval message of a
// policy naming a former employee by email called users.lookupByEmail again.
func TestMentionsRememberEmailsThatResolveToNobody(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	s.SetUser(slackfake.User{ID: "U0GUEST01", Team: slackfake.DefaultTeam, Email: "guest@example.com", Restricted: true})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d := NewDirectory(api, DirectoryConfig{TTL: time.Minute, Now: clk.Now})
	for range 5 {
		for subject, want := range map[string]string{"email:nobody@x.example": "nobody@x.example", "email:guest@example.com": "guest@example.com"} {
			if got := d.Mention(ctx, subject); got != want {
				t.Fatalf("Mention(%q) = %q, want %q", subject, got, want)
			}
		}
	}
	if n := count(s, "users.lookupByEmail"); n != 2 {
		t.Fatalf("users.lookupByEmail called %d times for two addresses within the TTL, want 2", n)
	}
	// Someone who joins later is mentioned once the entry expires.
	s.SetUser(slackfake.User{ID: "U0NOBODY1", Team: slackfake.DefaultTeam, Email: "nobody@x.example"})
	clk.Add(61 * time.Second)
	if got := d.Mention(ctx, "email:nobody@x.example"); got != "<@U0NOBODY1>" {
		t.Fatalf("after the TTL: Mention = %q, want <@U0NOBODY1>", got)
	}
}
