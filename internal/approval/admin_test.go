package approval

import (
	"strings"
	"testing"
)

// An admin whose delete is refused because a request has not issued learns
// which request, in which state, and what to do instead, for each state.
func TestUnissuedRefusalNamesTheRequestAndWhatToDo(t *testing.T) {
	scope := Scope{Kind: ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	for state, want := range map[State][]string{
		StatePending:  {"pending", "deny request rPEND", "cancel"},
		StateApproved: {"approved", "creating this credential", "/credbot status rPEND"},
		StateMinting:  {"minting", "creating this credential", "/credbot status rPEND", "delete it again"},
	} {
		r := &Request{ID: "rPEND", Scope: scope, Name: "ci-payments", State: state, Requester: "U0REQ"}
		got := UnissuedRefusal(r)
		for _, w := range append(want, "rPEND", `"ci-payments"`, "Nothing was deleted", "goes through the request") {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", state, got, w)
			}
		}
		if strings.Contains(got, "not issued by credbot") {
			t.Errorf("%s: %q calls credbot's request's name unmanaged", state, got)
		}
	}
}
