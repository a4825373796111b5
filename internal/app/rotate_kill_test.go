package app

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/slackfake"
)

// TestRotateChild is not a test: it is a whole bot in another process that
// stops at one step of a rotation (CREDBOT_TEST_KILL_AT) and waits there for
// the SIGKILL of TestRotationSurvivesSIGKILLAtEveryStep; with "none" it runs
// on, as the restarted bot.
func TestRotateChild(t *testing.T) {
	step := os.Getenv("CREDBOT_TEST_KILL_AT")
	if step == "" || os.Getenv("CREDBOT_TEST_ROTATE_CHILD") == "" {
		t.Skip("runs only as the child of TestRotationSurvivesSIGKILLAtEveryStep")
	}
	runChildBot(t, step, func(halt func(string) func(string)) approval.Hooks {
		return approval.Hooks{AfterClaim: halt("claim"), AfterCreate: halt("create"), AfterLease: halt("lease"), AfterRetireOld: halt("retired")}
	}, "STARTED")
}

// A bot SIGKILLed at any step of a rotation — the new credential's mint
// claimed, created at BTP but not recorded, the old one's deletion under way,
// the old one deleted but the rotation not marked done — leaves BTP with the
// old credential only, both, or the new one only; and the restarted bot
// finishes the rotation: the new one alone lives, it was revealed once, and
// the old request is DELETED with a note naming its replacement.
func TestRotationSurvivesSIGKILLAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills bot processes")
	}
	const oldName, newName = "ci-kill", "ci-kill-r2"
	allowed := [][]string{{oldName}, {oldName, newName}, {newName}}
	for _, c := range []struct {
		step string
		// what BTP holds right after the kill
		atKill []string
	}{
		{"claim", []string{oldName}},
		{"create", []string{oldName, newName}},
		{"lease", []string{oldName, newName}},
		{"retired", []string{newName}},
	} {
		t.Run("killed at "+c.step, func(t *testing.T) {
			key := approval.NewRandomKey()
			// The harness's replica takes Slack's requests and reveals; it
			// mints only the old credential (below) and sweeps no deadline:
			// the rotation's steps are the child processes'.
			h := start(t, map[string]string{"CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key,
				"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_ROTATION_GRACE": "1s"})
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			t.Cleanup(cancel)
			check := func(when string) []string {
				t.Helper()
				got := h.live()
				if !slices.ContainsFunc(allowed, func(a []string) bool { return slices.Equal(a, got) }) {
					t.Fatalf("%s BTP holds %v: not old only, both, or new only", when, got)
				}
				return got
			}

			mctx, stop := context.WithCancel(ctx)
			minted := make(chan struct{})
			go func() { h.App.Service.RunMinter(mctx, "setup", 0); close(minted) }()
			oldID, oldSecret := h.deliver(t, ctx, oldName)
			stop()
			<-minted

			// child starts a bot that stops at step ("none": never) and
			// returns a function that waits until it is there and kills it.
			child := func(step string) (killAtStep func()) {
				t.Helper()
				env := h.childEnv(key, "CREDBOT_TEST_ROTATE_CHILD=1", "CREDBOT_TEST_KILL_AT="+step,
					"CREDBOT_RESPONSE_HOSTS="+h.Slack.Host(), "CREDBOT_MINT_WORKERS=1", "CREDBOT_WORKERS=0",
					"CREDBOT_SWEEP_INTERVAL=200ms", "CREDBOT_ROTATION_GRACE=1s")
				cmd, lines := startLines(t, env)
				var seen []string
				waitLine(t, ctx, lines, "STARTED", &seen)
				return func() {
					t.Helper()
					waitLine(t, ctx, lines, "AT-STEP "+step, &seen)
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					_ = cmd.Wait()
				}
			}
			got := h.slashAs(t, ctx, Requester, "rotate --subaccount "+btptest.DefaultSubaccount+" --name "+oldName)
			m := rotationIDRE.FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("rotate: %s", got)
			}
			newID := m[1]
			check("before any bot took the rotation,")

			var newSecret string
			switch c.step {
			case "claim", "create":
				child(c.step)() // stops at the step, killed there
				if got := check("right after the kill,"); !slices.Equal(got, c.atKill) {
					t.Fatalf("after a kill at %s BTP holds %v, want %v", c.step, got, c.atKill)
				}
				child("none") // the restarted bot takes the dead one's mint job over
				newSecret = h.revealSecret(t, ctx, h.waitReveal(t, ctx, newID))
			case "lease", "retired":
				kill := child(c.step) // mints, then stops in the old one's deletion
				newSecret = h.revealSecret(t, ctx, h.waitReveal(t, ctx, newID))
				check("during the grace period,")
				kill()
				if got := check("right after the kill,"); !slices.Equal(got, c.atKill) {
					t.Fatalf("after a kill at %s BTP holds %v, want %v", c.step, got, c.atKill)
				}
				child("none")
			}

			// The restarted bot finishes: the old request ends DELETED, the
			// rotation is marked done, and only the new credential lives.
			var nr *approval.Request
			for {
				old, err := h.App.Store.Get(ctx, oldID)
				if err != nil {
					t.Fatal(err)
				}
				if nr, err = h.App.Store.Get(ctx, newID); err != nil {
					t.Fatal(err)
				}
				check("while the restarted bot finishes,")
				if old.State == approval.StateDeleted && nr.RotationDone {
					break
				}
				// Waiting on the restarted bot's sweeps, which no event announces.
				select {
				case <-ctx.Done():
					t.Fatalf("the restarted bot did not finish the rotation: old %s (revoking %v), new done=%v", old.State, old.Revoking, nr.RotationDone)
				case <-time.After(50 * time.Millisecond):
				}
			}
			if got := h.live(); !slices.Equal(got, []string{newName}) {
				t.Fatalf("at the end BTP holds %v, want %s only", got, newName)
			}
			if h.secretWorks(ctx, t, oldID, oldSecret) || !h.secretWorks(ctx, t, newID, newSecret) {
				t.Fatal("at the end only the new secret may work")
			}
			notes := h.auditNotes(t, ctx, oldID)
			if countContaining(notes, "replaced by "+newName+" (request "+newID+")") == 0 {
				t.Fatalf("the old request's audit trail does not name its replacement:\n%s", strings.Join(notes, "\n"))
			}
			if n := countCalls(h.Slack, func(c slackfake.Call) bool {
				return c.Method == "response_url" && strings.Contains(c.Body, "clientsecret")
			}); n != 2 {
				t.Fatalf("%d secrets shown, want 2 (the old one's and the new one's, once each)", n)
			}
		})
	}
}

// startLines runs TestRotateChild in a child process with env and returns
// its stdout, line by line. The child is killed when the test ends.
func startLines(t *testing.T, env []string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRotateChild$", "-test.v")
	cmd.Env = env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child stderr (last 4000 bytes):\n%s", tail(stderr.String(), 4000))
		}
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// waitLine waits until the child prints a line starting with want (earlier
// lines it skipped on other waits count: seen keeps them).
func waitLine(t *testing.T, ctx context.Context, lines <-chan string, want string, seen *[]string) {
	t.Helper()
	for _, l := range *seen {
		if strings.HasPrefix(l, want) {
			return
		}
	}
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the child exited before it printed %q", want)
			}
			*seen = append(*seen, l)
			if strings.HasPrefix(l, want) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the child never printed %q", want)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
