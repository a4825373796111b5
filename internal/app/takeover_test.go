package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
)

// TestBotChild is not a test: it is a whole bot in another process, which
// the takeover tests SIGKILL right after it acked something.
func TestBotChild(t *testing.T) {
	if os.Getenv("CREDBOT_TEST_BOT_CHILD") == "" {
		t.Skip("runs only as the child of the takeover tests")
	}
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenAddr = "127.0.0.1:0"
	a, err := New(context.Background(), cfg, Deps{}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Println("LISTENING " + a.Addr())
	select {}
}

// botProcess is a bot replica in a child process.
type botProcess struct {
	cmd    *exec.Cmd
	people *slackfake.Workspace
	stderr *syncBuffer
}

// startBot starts a replica in a child process, sharing the harness's Redis,
// fake Slack and BTP emulator, and returns once it listens.
func (h *harness) startBot(t *testing.T, ctx context.Context, key string) *botProcess {
	t.Helper()
	cmd, addr, stderr := startChild(t, ctx, "TestBotChild", h.childEnv(key,
		"CREDBOT_TEST_BOT_CHILD=1", "CREDBOT_RESPONSE_HOSTS="+h.Slack.Host(),
		"CREDBOT_MINT_WORKERS=1", "CREDBOT_WORKERS=4", "CREDBOT_SWEEP_INTERVAL=200ms"), "LISTENING ")
	b := &botProcess{cmd: cmd, stderr: stderr}
	b.people = &slackfake.Workspace{Slack: h.Slack, BotURL: "http://" + addr, SigningSecret: h.Config.SigningSecret,
		Team: "T0LOCAL", Command: "/credbot", Sign: handlers.Sign}
	return b
}

// kill SIGKILLs the process after its ack, at delay.
func (b *botProcess) kill(t *testing.T, delay time.Duration) {
	t.Helper()
	if delay > 0 {
		// The fault under test is a crash this long after the 200: a timer
		// is the scenario itself, not a wait for an event.
		time.Sleep(delay)
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
}

// waitRestart waits for what the restarted successor must bring about within
// 20 s of its start.
func waitRestart(t *testing.T, ctx context.Context, what string, f func(ctx context.Context) error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := f(wctx); err != nil {
		t.Fatalf("%s within 20 s of the restart: %v", what, err)
	}
}

// A 200 is a promise: whatever a replica acked — a command, a modal
// submission, an approve click — survives a SIGKILL 0, 50 or 200 ms after
// the ack, and its restarted successor finishes it within 20 s, with exactly
// one live credential at the end.
func TestAckedWorkSurvivesSIGKILLAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills many processes")
	}
	for _, what := range []string{"command", "modal", "approve"} {
		for _, delay := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s killed %s after the ack", what, delay), func(t *testing.T) {
				t.Parallel()
				key := approval.NewRandomKey()
				// The harness's own replica records nothing of this test and
				// takes no job: only the child processes work.
				h := start(t, map[string]string{"CREDBOT_WORKERS": "0", "CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key})
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				t.Cleanup(cancel)
				first := h.startBot(t, ctx, key)

				approvalPost := func(ctx context.Context) (slackfake.Message, error) {
					c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
						return c.Method == "chat.postMessage" && c.Channel == localApprovals
					})
					if err != nil {
						return slackfake.Message{}, err
					}
					m, _ := h.Slack.Message(c.Channel, c.TS)
					return m, nil
				}
				submit := func(b *botProcess) {
					var ack slackfake.Ack
					var err error
					if what == "modal" {
						if ack, err = b.people.Slash(ctx, Requester, "create"); err != nil || ack.Status != http.StatusOK {
							t.Fatalf("open the form: %d %v", ack.Status, err)
						}
						open, werr := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "views.open" })
						if werr != nil {
							t.Fatal(werr)
						}
						ack, err = b.people.SubmitView(ctx, Requester, open.TS, map[string]string{
							"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount, "name": "ci-payments",
							"access": "full", "reason": "CI pipeline",
						})
					} else {
						ack, err = b.people.Slash(ctx, Requester, createText)
					}
					if err != nil || ack.Status != http.StatusOK {
						t.Fatalf("submit: %d %v", ack.Status, err)
					}
				}

				var second *botProcess
				if what == "approve" {
					submit(first)
					msg, err := approvalPost(ctx)
					if err != nil {
						t.Fatal(err)
					}
					ack, err := first.people.Click(ctx, Approver, msg, blockkit.ActionApprove)
					if err != nil || ack.Status != http.StatusOK {
						t.Fatalf("approve: %d %v", ack.Status, err)
					}
					first.kill(t, delay)
					second = h.startBot(t, ctx, key)
				} else {
					submit(first)
					first.kill(t, delay)
					second = h.startBot(t, ctx, key)
					var msg slackfake.Message
					waitRestart(t, ctx, "the request reaches its approvers", func(ctx context.Context) (err error) {
						msg, err = approvalPost(ctx)
						return err
					})
					if ack, err := second.people.Click(ctx, Approver, msg, blockkit.ActionApprove); err != nil || ack.Status != http.StatusOK {
						t.Fatalf("approve: %d %v", ack.Status, err)
					}
				}
				var dm slackfake.Message
				waitRestart(t, ctx, "the requester gets the Reveal DM", func(ctx context.Context) error {
					c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
						return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
					})
					if err == nil {
						dm, _ = h.Slack.Message(c.Channel, c.TS)
					}
					return err
				})
				ack, err := second.people.Click(ctx, Requester, dm, blockkit.ActionReveal)
				if err != nil || ack.Status != http.StatusOK {
					t.Fatalf("reveal: %d %v", ack.Status, err)
				}
				rev, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
				if err != nil {
					t.Fatal(err)
				}
				m := secretRE.FindStringSubmatch(rev.Body)
				if m == nil {
					t.Fatalf("no secret in the reveal: %s\n%s", rev.Body, second.stderr.String())
				}
				id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
				h.assertWorks(t, ctx, id, m[1])
				if live := h.BTP.Live(defaultScope); len(live) != 1 {
					t.Fatalf("live credentials %v: want exactly one", live)
				}
				// One request, whatever the crash. Its approval message may be
				// posted twice: a worker killed after posting it and before
				// recording where it is leaves the job to its successor, which
				// cannot know the post happened (at least once; both messages
				// act on the same request).
				if mine, err := h.App.Store.ListByRequester(ctx, Requester.ID, 10); err != nil || len(mine) != 1 {
					t.Fatalf("%d requests stored (%v): the submission was made more than once", len(mine), err)
				}
				if n := approvalPosts(h); n < 1 || n > 2 {
					t.Fatalf("%d approval messages for one request", n)
				}
			})
		}
	}
}

// When Redis cannot record a delivery, no 200 promises its work: a command
// is told so in its ack, a click gets a 503 (Slack shows the clicker an
// error), and nothing happens later.
func TestUnrecordableWorkIsNeverAcknowledgedAsTaken(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), true)
	if err != nil {
		t.Skipf("no redis-server binary: %v", err)
	}
	t.Cleanup(srv.Stop)
	h := startWith(t, map[string]string{"REDIS_URL": srv.URL()}, Deps{})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	srv.Stop()

	ack, err := h.Workspace.Slash(ctx, Requester, strings.Replace(createText, "ci-payments", "ci-other", 1))
	if err != nil || ack.Status != http.StatusOK || !strings.Contains(ack.Body, "nothing was recorded") {
		t.Fatalf("command ack while Redis is down: %d %q %v", ack.Status, ack.Body, err)
	}
	click, err := h.Workspace.Click(ctx, Approver, msg, blockkit.ActionApprove)
	if err != nil || click.Status != http.StatusServiceUnavailable {
		t.Fatalf("click ack while Redis is down: %d %q %v", click.Status, click.Body, err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Redis is back (with its AOF): what was refused was never recorded.
	for h.App.Store.Ping(ctx) != nil { // the client redials in the background
		select {
		case <-ctx.Done():
			t.Fatal("the bot never reconnected to Redis")
		case <-time.After(50 * time.Millisecond):
		}
	}
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	if r, err := h.App.Store.Get(ctx, id); err != nil || r.State != approval.StatePending || len(r.Approvals) != 0 {
		t.Fatalf("request after the refused click: %+v %v", r, err)
	}
	if mine, _ := h.App.Store.ListByRequester(ctx, Requester.ID, 10); len(mine) != 1 {
		t.Fatalf("%d requests stored: the refused command must not be", len(mine))
	}
}

// A replica that took a revocation lease and died hands it over as soon as
// its liveness lease lapses, not when the 2-minute revocation lease runs out;
// while it lives, nobody else touches it.
func TestRevocationLeaseOfADeadReplicaIsTakenOverAtOnce(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	stuck := make(chan struct{})
	var once sync.Once
	holding := make(chan struct{})
	hooks := approval.Hooks{AfterLease: func(string) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(holding)
			<-stuck // the holder hangs here, as if it died mid-delete
		}
	}}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_CLAIM_WINDOW": "15m"}, Deps{Clock: clock, Hooks: hooks})
	ctx := ctxT(t)
	other, err := h.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stuck) })
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)

	clock.Advance(16 * time.Minute) // the claim window is over
	go func() { _ = h.App.Service.SweepDeadlines(context.WithoutCancel(ctx)) }()
	select {
	case <-holding:
	case <-ctx.Done():
		t.Fatal("the first replica never took the revocation lease")
	}
	clock.Advance(6 * time.Second)
	if err := other.Service.SweepDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.App.Store.Get(ctx, id); r.State != approval.StateIssued || !r.Revoking || h.BTP.Count("delete") != 0 {
		t.Fatalf("%s revoking=%v deletes=%d: a live holder's lease was taken", r.State, r.Revoking, h.BTP.Count("delete"))
	}

	// The holder dies: its heartbeat stops and its liveness lease is gone.
	h.App.cancel()
	if err := h.App.Store.Resign(ctx, h.App.replica); err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second) // far less than the 2-minute revocation lease
	if err := other.Service.SweepDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := h.App.Store.Get(ctx, id)
	if r.State != approval.StateRevoked || len(h.BTP.Live(defaultScope)) != 0 {
		t.Fatalf("state %s live %v: want REVOKED and deleted by the surviving replica", r.State, h.BTP.Live(defaultScope))
	}
}
