package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// shippedPolicyCopy copies the shipped policy to a temporary directory, with
// files replaced by those in replace.
func shippedPolicyCopy(t *testing.T, replace map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("../../policies", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := replace[e.Name()]; ok {
			b = []byte(r)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSecondAccountCannotApproveFromSlack: with distinct_people_by_email, an
// approver account whose Slack profile email is the requester's (here with a
// +tag and other case) is refused at click time, through the real handlers,
// lifecycle and Slack directory; another person's click approves.
func TestSecondAccountCannotApproveFromSlack(t *testing.T) {
	dir := shippedPolicyCopy(t, map[string]string{"quorum.yaml": "distinct_people_by_email: true\n"})
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": dir})
	ctx := ctxT(t)
	// The fake Slack gives unknown users <id>@example.com: the requester is
	// u0localreq@example.com.
	h.Slack.SetUser(slackfake.User{ID: Approver.ID, Name: Approver.Name, Team: slackfake.DefaultTeam, Email: "U0LocalReq+second@Example.com"})
	msg := h.request(t, ctx)

	got := h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, ":warning:") || !strings.Contains(got.Body, "have the same email (u0localreq@example.com)") {
		t.Fatalf("second account's approval: %s", got.Body)
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates after a refused approval", n)
	}
	got = h.click(t, ctx, slackfake.Person{ID: "U0LOCALAP2", Name: "hedy"}, msg, blockkit.ActionApprove)
	if !strings.Contains(got.Body, "Approved") {
		t.Fatalf("another person's approval: %s", got.Body)
	}
	h.waitDM(t, ctx)
}
