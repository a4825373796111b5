package app

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
)

// TestAssignChild is not a test: it is a bot process that the SIGKILL tests
// of just-in-time role collections kill at a chosen step of an assignment.
func TestAssignChild(t *testing.T) {
	step := os.Getenv("CREDBOT_TEST_ASSIGN_KILL_AT")
	if step == "" {
		t.Skip("runs only as the child of the assignment SIGKILL tests")
	}
	runChildBot(t, step, func(halt func(string) func(string)) approval.Hooks {
		return approval.Hooks{AfterClaim: halt("claim"), AfterIntent: halt("intent"), AfterAssign: halt("assign"), AfterLease: halt("lease")}
	}, "")
}

func (h *harness) killAssignAt(t *testing.T, ctx context.Context, key, step string, env ...string) {
	t.Helper()
	killChildAtStep(t, ctx, "TestAssignChild", h.childEnv(key, append([]string{"CREDBOT_TEST_ASSIGN_KILL_AT=" + step}, env...)...))
}

// A worker SIGKILLed after claiming the job, after recording its intent, or
// after BTP assigned (before anything was written) leaves a job that a
// surviving worker finishes: the collection is assigned, tracked as
// credbot's own (never mistaken for pre-existing) and confirmed, and ends on
// time with an unassign BTP confirms.
func TestAssignSurvivesSIGKILLMidAssign(t *testing.T) {
	for _, step := range []string{"claim", "intent", "assign"} {
		t.Run("after "+step, func(t *testing.T) {
			key := approval.NewRandomKey()
			h := start(t, map[string]string{"CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key})
			ctx := ctxT(t)
			h.slash(t, ctx, Requester, assignText(viewerRC, "6s", "crash test"))
			h.click(t, ctx, Approver, h.assignmentApproval(t, ctx, viewerRC), blockkit.ActionApprove)
			h.killAssignAt(t, ctx, key, step, "CREDBOT_MINT_WORKERS=1")

			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { h.App.Service.RunMinter(rctx, "rescuer", 0); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			h.dmText(t, ctx, "You now hold role collection")
			if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); !slices.Equal(got, []string{viewerRC}) {
				t.Fatalf("BTP holds %q", got)
			}
			r := h.assignmentOf(t, ctx)
			if r.State != approval.StateAssigned || r.Assignment.PreExisting || r.Assignment.AbsentAt.IsZero() {
				t.Fatalf("after a crash at %s: %s %+v", step, r.State, r.Assignment)
			}
			wantAssigns := 1
			if n := h.BTP.CountCommand("security/role-collection", "assign"); n != wantAssigns {
				t.Errorf("%d assigns, want %d: a rescued job reads before it assigns", n, wantAssigns)
			}
			h.dmText(t, ctx, "credbot unassigned it")
			if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); len(got) != 0 {
				t.Fatalf("BTP still holds %q after the end", got)
			}
		})
	}
}

// A sweeper SIGKILLed after it took the revocation lease, before BTP was
// asked to unassign, is replaced once its replica's liveness lapses: the
// unassign happens and BTP confirms it.
func TestAssignSurvivesSIGKILLMidUnassign(t *testing.T) {
	key := approval.NewRandomKey()
	h := start(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_SECRET_KEY": key})
	ctx := ctxT(t)
	h.slash(t, ctx, Requester, assignText(viewerRC, "2s", "crash test"))
	h.click(t, ctx, Approver, h.assignmentApproval(t, ctx, viewerRC), blockkit.ActionApprove)
	h.dmText(t, ctx, "You now hold role collection")
	r := h.assignmentOf(t, ctx)

	// The child's sweeper reaches the end, takes the lease and dies.
	h.killAssignAt(t, ctx, key, "lease", "CREDBOT_MINT_WORKERS=0", "CREDBOT_SWEEP_INTERVAL=100ms")
	cur, err := h.App.Service.Status(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Revoking || cur.State != approval.StateAssigned {
		t.Fatalf("after the kill: %s revoking=%v", cur.State, cur.Revoking)
	}
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); !slices.Equal(got, []string{viewerRC}) {
		t.Fatalf("BTP holds %q before the rescue", got)
	}
	// This replica's sweeper takes over once the dead one's liveness lapses.
	for {
		_ = h.App.Service.SweepDeadlines(ctx)
		cur, err = h.App.Service.Status(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State == approval.StateEnded {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not ended in time: %s revoking=%v holder=%s", cur.State, cur.Revoking, cur.LeaseHolder)
		case <-time.After(100 * time.Millisecond): // polling the sweeper, as its ticker would
		}
	}
	h.dmText(t, ctx, "credbot unassigned it")
	if got := h.BTP.RoleCollections(defaultScope, adaAtBTP); len(got) != 0 {
		t.Fatalf("BTP still holds %q", got)
	}
}
