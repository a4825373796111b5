package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackfake"
)

// A pod that restarts while the mounted policy is broken used to exit 1. It
// now serves the last good policy kept in Redis, says so (degraded, not
// unready), and takes the files as soon as they are fixed.
func TestAReplicaStartingWithABrokenPolicyServesTheLastGoodOne(t *testing.T) {
	dir := shippedPolicyCopy(t, nil)
	h := start(t, map[string]string{"CREDBOT_POLICY_DIR": dir})
	ctx := ctxT(t)
	good := h.App.Policy.Hash()

	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), []byte("p, U1, subaccount:*, create\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replica, err := h.StartReplica(ctx) // same Redis, same (now broken) directory
	if err != nil {
		t.Fatalf("a replica starting with broken policy files: %v", err)
	}
	if replica.Policy.Hash() != good {
		t.Fatalf("the replica serves policy %s, want the last good %s", replica.Policy.Hash(), good)
	}
	replica.health.refresh(ctx)
	ready, report := replica.health.report()
	if pol := report["dependencies"].(map[string]depState)["policy"]; !ready || pol.OK || !strings.Contains(pol.Error, "last good policy") {
		t.Fatalf("ready=%v policy=%+v: want ready, with the policy degraded and saying it serves the last good one", ready, pol)
	}
	// The last good policy decides: the loop works through the new replica.
	people := h.WorkspaceOf(replica)
	if ack, err := people.Slash(ctx, Requester, createText); err != nil || ack.Status != 200 {
		t.Fatalf("slash through the replica: %d %v", ack.Status, err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && c.Params.Get("thread_ts") == ""
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	if _, err := people.Click(ctx, Approver, msg, blockkit.ActionApprove); err != nil {
		t.Fatal(err)
	}
	h.waitDM(t, ctx)

	// Fixed files are taken at the next reload.
	src, _ := os.ReadFile("../../policies/policy.csv")
	if err := os.WriteFile(filepath.Join(dir, "policy.csv"), append(src, []byte("\n# fixed\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := replica.Policy.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, detail := replica.Policy.Health(); !ok || strings.Contains(detail, "last good") {
		t.Fatalf("after the fix: %v %s", ok, detail)
	}
}
