package handlers

import (
	"errors"
	"strings"
	"testing"

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
		"frobnicate":                 "unknown command",
		"create --name x --reason y": "needs one of",
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
