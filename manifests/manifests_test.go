package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/slackapi"
	"github.com/credbot/credbot/internal/vendored"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schemaDir is Slack's manifest schema, vendored in testdata (see
// testdata/PROVENANCE.md) and checked against the checksums recorded when it
// was copied. A missing or edited copy fails the test: it never skips.
func schemaDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join("testdata", "slack-manifest-schema")
	if err := vendored.Check(d, d+".sha256"); err != nil {
		t.Fatalf("Slack's manifest schema: %v", err)
	}
	return d
}

// TestVendoredSchemaEqualsShared compares the vendored schema with its
// source, shared/fixtures/slack-manifest-schema, where CI lays it beside the
// repository, so that a newer upstream copy is noticed and copied in.
func TestVendoredSchemaEqualsShared(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(root, "..", "shared", "fixtures", "slack-manifest-schema")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no %s to compare the vendored copy with (the vendored copy itself is checked by every schema test)", shared)
	}
	if err := vendored.Same(schemaDir(t), shared); err != nil {
		t.Fatal(err)
	}
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir := schemaDir(t)
	f, err := os.Open(filepath.Join(dir, "manifest.schema.1.0.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(ecmaLite)
	if err := c.AddResource("manifest.schema.1.0.0.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("manifest.schema.1.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// ecmaLite compiles the schema's patterns. They are ECMAScript regexps; all but
// one are also valid Go (RE2) syntax, and that one opens with a negative
// lookahead, "^(?!A)B", which this reads as "does not start with A, and
// matches ^B". Any other construct RE2 lacks fails the compile, loudly.
func ecmaLite(pattern string) (jsonschema.Regexp, error) {
	if rest, ok := strings.CutPrefix(pattern, "^(?!"); ok {
		depth := 1
		for i, r := range rest {
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				not, err := regexp.Compile("^(?:" + rest[:i] + ")")
				if err != nil {
					return nil, err
				}
				then, err := regexp.Compile("^" + rest[i+1:])
				if err != nil {
					return nil, err
				}
				return lookahead{pattern, not, then}, nil
			}
		}
	}
	return regexp.Compile(pattern)
}

type lookahead struct {
	src       string
	not, then *regexp.Regexp
}

func (l lookahead) MatchString(s string) bool { return !l.not.MatchString(s) && l.then.MatchString(s) }
func (l lookahead) String() string            { return l.src }

// asJSON converts YAML to the JSON value Slack would receive.
func asJSON(t *testing.T, yml []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(yml, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// The validator itself must tell Slack's own valid example from its invalid one.
func TestSchemaAcceptsSlacksValidExampleAndRejectsItsInvalidOne(t *testing.T) {
	sch := compile(t)
	dir := schemaDir(t)
	for name, wantValid := range map[string]bool{"manifest.valid.json": true, "manifest.invalid.json": false} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); (err == nil) != wantValid {
			t.Errorf("%s: valid=%v, want %v (%v)", name, err == nil, wantValid, err)
		}
	}
}

type manifest struct {
	Features struct {
		AppHome struct {
			HomeTab     bool `yaml:"home_tab_enabled"`
			MessagesTab bool `yaml:"messages_tab_enabled"`
		} `yaml:"app_home"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			URL          string `yaml:"url"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuth struct {
		Scopes struct {
			Bot  []string `yaml:"bot"`
			User []string `yaml:"user"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Events struct {
			URL       string   `yaml:"request_url"`
			BotEvents []string `yaml:"bot_events"`
		} `yaml:"event_subscriptions"`
		Interactivity struct {
			Enabled bool   `yaml:"is_enabled"`
			URL     string `yaml:"request_url"`
		} `yaml:"interactivity"`
		SocketMode bool `yaml:"socket_mode_enabled"`
	} `yaml:"settings"`
}

func TestManifestsAreValidAndAskForExactlyTheScopesTheCodeUses(t *testing.T) {
	sch := compile(t)
	for _, name := range []string{HTTP, Socket} {
		t.Run(name, func(t *testing.T) {
			yml, err := FS.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(asJSON(t, yml)); err != nil {
				t.Fatalf("Slack would reject %s: %v", name, err)
			}
			var m manifest
			if err := yaml.Unmarshal(yml, &m); err != nil {
				t.Fatal(err)
			}
			got, want := slices.Sorted(slices.Values(m.OAuth.Scopes.Bot)), slices.Sorted(slices.Values(slackapi.BotScopes))
			if !slices.Equal(got, want) {
				t.Errorf("bot scopes %v, want exactly slackapi.BotScopes %v", got, want)
			}
			if len(m.OAuth.Scopes.User) > 0 {
				t.Errorf("user scopes %v: credbot acts only as its bot", m.OAuth.Scopes.User)
			}
			if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != "/credbot" || !m.Features.SlashCommands[0].ShouldEscape {
				t.Errorf("want one /credbot command with should_escape: %+v", m.Features.SlashCommands)
			}
			if !m.Settings.Interactivity.Enabled || !slices.Equal(m.Settings.Events.BotEvents, []string{"app_home_opened"}) {
				t.Errorf("want interactivity and exactly the app_home_opened event: %+v", m.Settings)
			}
			if !m.Features.AppHome.HomeTab || !m.Features.AppHome.MessagesTab {
				t.Error("the Home tab shows requests and the Messages tab carries the DMs: both must be on")
			}
			urls := []string{m.Features.SlashCommands[0].URL, m.Settings.Interactivity.URL, m.Settings.Events.URL}
			switch name {
			case Socket:
				if !m.Settings.SocketMode || slices.ContainsFunc(urls, func(u string) bool { return u != "" }) {
					t.Errorf("socket manifest: socket_mode_enabled=%v, Request URLs %q (want none)", m.Settings.SocketMode, urls)
				}
			case HTTP:
				if m.Settings.SocketMode {
					t.Error("http manifest enables Socket Mode")
				}
				for i, path := range []string{"/slack/commands", "/slack/interactivity", "/slack/events"} {
					if !strings.HasPrefix(urls[i], "https://") || !strings.HasSuffix(urls[i], path) {
						t.Errorf("Request URL %q, want https://…%s (the bot's route)", urls[i], path)
					}
				}
			}
		})
	}
}

// Every Web API method the code calls needs a scope the manifests ask for, and
// every scope asked for is needed by some method (or by the slash command).
func TestBotScopesAreExactlyWhatTheMethodsNeed(t *testing.T) {
	used := map[string]bool{"commands": true}
	for method, scopes := range slackapi.MethodScopes {
		for _, scope := range strings.Fields(scopes) {
			if !slices.Contains(slackapi.BotScopes, scope) {
				t.Errorf("%s needs %s, which slackapi.BotScopes lacks", method, scope)
			}
			used[scope] = true
		}
	}
	for _, s := range slackapi.BotScopes {
		if !used[s] {
			t.Errorf("scope %s is asked for but no method needs it", s)
		}
	}
}

// A manifest Slack would refuse is caught: the check is not vacuous.
func TestSchemaRejectsABrokenManifest(t *testing.T) {
	sch := compile(t)
	yml, err := FS.ReadFile(HTTP)
	if err != nil {
		t.Fatal(err)
	}
	for name, broken := range map[string]string{
		"name over 35 characters": strings.Replace(string(yml), "name: credbot\n", "name: credbot-with-a-name-far-too-long-for-slack\n", 1),
		"unknown setting":         strings.Replace(string(yml), "settings:\n", "settings:\n  frobnicate: true\n", 1),
		"command without slash":   strings.Replace(string(yml), "command: /credbot", "command: credbot", 1),
	} {
		if broken == string(yml) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if err := sch.Validate(asJSON(t, []byte(broken))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
