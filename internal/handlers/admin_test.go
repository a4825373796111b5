package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// A credential whose name a request holds that has not issued yet is shown
// as that request's, in get and in list: never as "not issued by credbot",
// which would invite an admin to delete what credbot is creating.
func TestCredentialHeldByAnUnissuedRequestIsShownAsThatRequests(t *testing.T) {
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	v := approval.CredentialView{
		Credential: approval.Credential{Name: "being-made", Scope: scope, Type: "secret"},
		Held:       &approval.Request{ID: "rMINT", Scope: scope, Name: "being-made", State: approval.StateMinting},
	}
	for what, blocks := range map[string][]slack.Block{
		"get":  credentialBlocks(v),
		"list": listBlocks(scope, []approval.CredentialView{v}, 0),
	} {
		b, err := json.Marshal(blocks)
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		for _, want := range []string{"rMINT", "minting", "not issued yet"} {
			if !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
				t.Errorf("%s lacks %q: %s", what, want, got)
			}
		}
		if strings.Contains(strings.ToLower(got), "not issued by credbot") {
			t.Errorf("%s calls it unmanaged: %s", what, got)
		}
	}
}
