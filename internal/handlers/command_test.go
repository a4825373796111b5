package handlers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

func TestParseCommand(t *testing.T) {
	sa := "11111111-2222-4333-8444-555555555555"
	ok := []struct {
		text string
		want Command
	}{
		{"", Command{Verb: "help"}},
		{"help", Command{Verb: "help"}},
		{`create --subaccount ` + sa + ` --name ci-1 --reason "rotate the CI key"`,
			Command{Verb: "create", Scope: approval.Scope{Kind: approval.ScopeSubaccount, ID: sa}, HasScope: true, Name: "ci-1", Reason: "rotate the CI key"}},
		{`create --global-account=acme-ga --name=ro --read-only --reason='audit export'`,
			Command{Verb: "create", Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}, HasScope: true, Name: "ro", ReadOnly: true, Reason: "audit export"}},
		{"CREATE \u2014directory 22222222-3333-4444-8555-666666666666 \u2014name d \u2014reason \u201cfrom a Mac\u201d",
			Command{Verb: "create", Scope: approval.Scope{Kind: approval.ScopeDirectory, ID: "22222222-3333-4444-8555-666666666666"}, HasScope: true, Name: "d", Reason: "from a Mac"}},
		{"status r0123456789ab", Command{Verb: "status", Args: []string{"r0123456789ab"}}},
		{`breakglass --subaccount ` + sa + ` --name bg --reason "INC-1: down" --expires-in 30s`,
			Command{Verb: "breakglass", Scope: approval.Scope{Kind: approval.ScopeSubaccount, ID: sa}, HasScope: true, Name: "bg", Reason: "INC-1: down"}},
		{`rotate --subaccount ` + sa + ` --name ci-1`,
			Command{Verb: "rotate", Scope: approval.Scope{Kind: approval.ScopeSubaccount, ID: sa}, HasScope: true, Name: "ci-1"}},
		{`rotate security/api-credential --global-account acme-ga --name ci-1`,
			Command{Verb: "rotate", Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}, HasScope: true, Name: "ci-1"}},
		{"extend r0123456789ab --by 30d", Command{Verb: "extend", Args: []string{"r0123456789ab"}}},
		{`breakglass --global-account acme-ga --name bg --read-only --reason "OPS-2"`,
			Command{Verb: "breakglass", Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}, HasScope: true, Name: "bg", ReadOnly: true, Reason: "OPS-2"}},
	}
	for _, c := range ok {
		got, err := ParseCommand(c.text)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", c.text, err)
			continue
		}
		if got.Verb != c.want.Verb || got.Scope != c.want.Scope || got.Name != c.want.Name || got.ReadOnly != c.want.ReadOnly || got.Reason != c.want.Reason || strings.Join(got.Args, ",") != strings.Join(c.want.Args, ",") {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", c.text, got, c.want)
		}
	}
	bad := map[string]string{
		"frobnicate":      "unknown command",
		"rotate --name x": "needs one of",
		"rotate --directory 22222222-3333-4444-8555-666666666666": "rotate needs --name",
		"extend r0123456789ab":                   "extend needs --by",
		"extend --by 30d":                        "one request id",
		"extend r0123456789ab --by soon":         "--by",
		"extend r0123456789ab --by 30d --name x": "does not take --name",
		"create --name x --reason y":             "needs one of",
		"breakglass --name x --reason 'INC-1'":   "needs one of",
		"breakglass --subaccount 11111111-2222-4333-8444-555555555555 --reason 'INC-1'":                       "breakglass needs --name",
		"breakglass --subaccount 11111111-2222-4333-8444-555555555555 --name x":                               "breakglass needs --reason",
		"create --subaccount not-a-guid --name x --reason y":                                                  "GUID",
		"create --subaccount " + sa + " --directory 22222222-3333-4444-8555-666666666666 --name x --reason y": "exactly one",
		"create --subaccount " + sa + " --reason y":                                                           "needs --name",
		"create --subaccount " + sa + " --name x":                                                             "needs --reason",
		"create --subaccount " + sa + " --name 'a b' --reason y":                                              "letters, digits",
		"create --subaccount " + sa + " --name x --reason":                                                    "needs a value",
		"create --subaccount " + sa + " --name x --reason y --name z":                                         "twice",
		"create --subaccount " + sa + " --name x --reason two words":                                          "unexpected",
		"create --subaccount " + sa + " --name x --reason \"open":                                             "unbalanced",
		"create --subaccount " + sa + " --name x --token y --reason z":                                        "does not take --token",
		"create --global-account ACME..ga --name x --reason y":                                                "subdomain",
		"create --subaccount " + sa + " --name x --read-only=maybe --reason y":                                "true or false",
		"create --subaccount " + sa + " --name x --reason \"a\x00b\"":                                         "control",
		strings.Repeat("a", MaxCommandText+1):                                                                 "longer than",
	}
	for text, want := range bad {
		_, err := ParseCommand(text)
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCommand(%.60q) = %v, want a usage error mentioning %q", text, err, want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add(`create --subaccount 11111111-2222-4333-8444-555555555555 --name ci --reason "x"`)
	f.Add("create --global-account=acme-ga --read-only --name=a --reason='b c'")
	f.Add("\u2014\u2014\u201c")
	f.Add("create")
	f.Add("delete security/api-credential --subaccount 11111111-2222-4333-8444-555555555555 --name x")
	f.Add("help create")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCommand(text)
		if err != nil {
			return
		}
		if c.Verb == "create" && !c.Modal {
			// Whatever got through is safe to store and send to BTP.
			if c.Scope.Validate() != nil || approval.ValidateName(c.Name) != nil || c.Reason == "" {
				t.Fatalf("accepted an invalid create: %+v", c)
			}
		}
	})
}

func TestParseCommandMirrorsTheBTPCLI(t *testing.T) {
	sa := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	ga := approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}
	ok := []struct {
		text string
		want Command
	}{
		{"create", Command{Verb: "create", Modal: true}},
		{"create security/api-credential", Command{Verb: "create", Modal: true}},
		{`create security/api-credential --subaccount ` + sa.ID + ` --name ci --reason "x" --expires-in 30d`,
			Command{Verb: "create", Scope: sa, HasScope: true, Name: "ci", Reason: "x", ExpiresIn: 30 * 24 * time.Hour}},
		{`create --global-account acme-ga --name ci --reason x --expires-in=72h`,
			Command{Verb: "create", Scope: ga, HasScope: true, Name: "ci", Reason: "x", ExpiresIn: 72 * time.Hour}},
		{"list --subaccount " + sa.ID, Command{Verb: "list", Scope: sa, HasScope: true}},
		{"LIST security/api-credential --global-account=acme-ga", Command{Verb: "list", Scope: ga, HasScope: true}},
		{"get --subaccount " + sa.ID + " --name ci", Command{Verb: "get", Scope: sa, HasScope: true, Name: "ci"}},
		{"delete --name ci --subaccount " + sa.ID, Command{Verb: "delete", Scope: sa, HasScope: true, Name: "ci"}},
		{"status", Command{Verb: "status"}},
		{"cancel r0123456789ab", Command{Verb: "cancel", Args: []string{"r0123456789ab"}}},
		{"why r0123456789ab", Command{Verb: "why", Args: []string{"r0123456789ab"}}},
		{"approvers --global-account acme-ga", Command{Verb: "approvers", Scope: ga, HasScope: true}},
		{"help Create", Command{Verb: "help", Args: []string{"create"}}},
	}
	for _, c := range ok {
		got, err := ParseCommand(c.text)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", c.text, err)
			continue
		}
		if got.Verb != c.want.Verb || got.Scope != c.want.Scope || got.HasScope != c.want.HasScope || got.Name != c.want.Name ||
			got.Reason != c.want.Reason || got.ExpiresIn != c.want.ExpiresIn || got.Modal != c.want.Modal || strings.Join(got.Args, ",") != strings.Join(c.want.Args, ",") {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", c.text, got, c.want)
		}
	}
	bad := map[string]struct{ verb, msg string }{
		"list": {"list", "needs one of"},
		"list --subaccount " + sa.ID + " --name x":     {"list", "does not take --name"},
		"get --subaccount " + sa.ID:                    {"get", "needs --name"},
		"delete --name x":                              {"delete", "needs one of"},
		"delete --subaccount " + sa.ID + " --name n x": {"delete", "unexpected"},
		"cancel":                          {"cancel", "one request id"},
		"cancel r1":                       {"cancel", "one request id"},
		"why r0123456789ab r0123456789ac": {"why", "one request id"},
		"status nope":                     {"status", "one request id"},
		"approvers":                       {"approvers", "needs one of"},
		"help frobnicate":                 {"help", "no command"},
		"create --name x":                 {"create", "needs one of"},
		"create --subaccount " + sa.ID + " --name x --reason y --expires-in 30y": {"create", "--expires-in"},
		"create --subaccount " + sa.ID + " --name x --reason y --expires-in 0d":  {"create", "--expires-in"},
		"create --subaccount " + sa.ID + " --name x --reason ''":                 {"create", "must not be empty"},
	}
	for text, want := range bad {
		_, err := ParseCommand(text)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Verb != want.verb || !strings.Contains(ue.Msg, want.msg) {
			t.Errorf("ParseCommand(%q) = %v, want a usage error of %s mentioning %q", text, err, want.verb, want.msg)
		}
	}
}

func TestHelpExplainsEveryVerb(t *testing.T) {
	all := Help("")
	for _, v := range verbs {
		if !strings.Contains(all, v.name) {
			t.Errorf("help lacks %s", v.name)
		}
		one := Help(v.name)
		for _, u := range v.usage {
			if v.name != "help" && !strings.Contains(one, u) {
				t.Errorf("help %s lacks its usage %q", v.name, u)
			}
		}
	}
	if !strings.Contains(Help("create"), "--expires-in") || !strings.Contains(Help("delete"), "confirm") {
		t.Error("help create/delete lack their details")
	}
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "72h": 72 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, " 7D ": 7 * 24 * time.Hour} {
		if got, err := ParseLifetime(in); err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "0h", "forever", "3651d", "1e9h", "30 d"} {
		if _, err := ParseLifetime(in); err == nil {
			t.Errorf("ParseLifetime(%q) accepted", in)
		}
	}
}

func TestParseAdoptTakesTheOwnerAsAMention(t *testing.T) {
	sa := "11111111-2222-4333-8444-555555555555"
	for text, owner := range map[string]string{
		"adopt --subaccount " + sa + " --name by-hand --owner <@U0LOCALREQ|ada> --expires-in 30d": "U0LOCALREQ",
		"adopt --subaccount " + sa + " --name by-hand --owner <@U0LOCALREQ>":                      "U0LOCALREQ",
		"adopt --subaccount " + sa + " --name by-hand --owner=W0ENTERPRISE":                       "W0ENTERPRISE",
	} {
		c, err := ParseCommand(text)
		if err != nil || c.Verb != "adopt" || c.Owner != owner || c.Name != "by-hand" || !c.HasScope {
			t.Errorf("ParseCommand(%q) = %+v, %v", text, c, err)
		}
	}
	for text, want := range map[string]string{
		"adopt --subaccount " + sa + " --name by-hand --owner @ada":         "pick the person",
		"adopt --subaccount " + sa + " --name by-hand --owner ada":          "not a person",
		"adopt --subaccount " + sa + " --name by-hand":                      "needs --owner",
		"adopt --subaccount " + sa + " --owner <@U0LOCALREQ>":               "needs --name",
		"adopt --name by-hand --owner <@U0LOCALREQ>":                        "needs one of",
		"adopt --subaccount " + sa + " --name x --owner U0A --reason why":   "does not take --reason",
		"adopt --subaccount " + sa + " --name x --owner U0A --expires-in 0": "--expires-in",
	} {
		if _, err := ParseCommand(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCommand(%q) = %v, want %q", text, err, want)
		}
	}
}

func TestParseExtendBy(t *testing.T) {
	c, err := ParseCommand("extend r0123456789ab --by 2w")
	if err != nil || c.By != 14*24*time.Hour {
		t.Fatalf("extend --by 2w: %+v %v", c, err)
	}
}
