package policy

import (
	"context"
	"os"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// TestShippedPolicyLocalDemo pins what the bot's local demo mode relies on.
func TestShippedPolicyLocalDemo(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	demo := []approval.Scope{sub(localSub), dir(localDir), ga("acme-ga")}
	ctx := context.Background()
	for _, scope := range demo {
		for _, c := range []struct {
			user  string
			act   approval.Action
			allow bool
		}{
			{"U0LOCALREQ", "create", true},
			{"U0LOCALREQ", "list", true},
			{"U0LOCALREQ", "get", true},
			{"U0LOCALREQ", "delete", false},
			{"U0LOCALAPR", "approve", true},
			{"U0LOCALAP2", "approve", true},
			{"U0LOCALAPR", "create", false},
			{"U0LOCALADM", "list", true},
			{"U0LOCALADM", "get", true},
			{"U0LOCALADM", "delete", true},
			{"U0LOCALADM", "approve", true},
			{"U0LOCALOUT", "create", false},
			{"U0LOCALOUT", "approve", false},
			{"U0LOCALOUT", "list", false},
			{"U0LOCALOUT", "get", false},
			{"U0LOCALOUT", "delete", false},
		} {
			got, err := e.Authorize(ctx, c.user, c.act, scope, "U0LOCALREQ")
			if err != nil {
				t.Fatal(err)
			}
			if got.Allowed != c.allow {
				t.Errorf("%s %s in %s: allowed=%v (%s), want %v", c.user, c.act, scope, got.Allowed, got.Reason, c.allow)
			}
		}
		q, err := e.Quorum(ctx, scope, []string{"U0LOCALAPR"})
		if err != nil || !q.Met || q.Need != 1 {
			t.Errorf("quorum in %s: %+v %v, want met by one approval", scope, q, err)
		}
		if got, _ := e.Authorize(ctx, "U0LOCALREQ", "approve", scope, "U0LOCALREQ"); got.Allowed {
			t.Errorf("requester approves own request in %s", scope)
		}
	}
}

// TestShippedModelIsTheModel keeps policies/model.conf and Model in step.
func TestShippedModelIsTheModel(t *testing.T) {
	b, err := os.ReadFile("../../policies/model.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkModel(string(b)); err != nil {
		t.Error(err)
	}
}

// TestShippedPolicyHasNoWarnings: the example should be an example of care.
func TestShippedPolicyHasNoWarnings(t *testing.T) {
	e := loadGolden(t, "../../policies", shippedDirectory())
	for _, w := range e.snap.Load().warnings {
		t.Error(w)
	}
}
