package app

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/slackfake"
	"golang.org/x/oauth2/clientcredentials"
)

var defaultScope = approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var secretRE = regexp.MustCompile("clientsecret:\\\\n```([^`]+)```")

// revealSecret clicks Reveal in the DM and returns the secret shown.
func (h *harness) revealSecret(t *testing.T, ctx context.Context, dm slackfake.Message) string {
	t.Helper()
	rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	m := secretRE.FindStringSubmatch(rev.Body)
	if m == nil {
		t.Fatalf("no secret in the reveal reply: %s", rev.Body)
	}
	return m[1]
}

// assertWorks proves the revealed secret is the live credential's: the
// emulator's token endpoint grants a token for it.
func (h *harness) assertWorks(t *testing.T, ctx context.Context, id, secret string) {
	t.Helper()
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.Credential == nil {
		t.Fatalf("request %s: %+v %v", id, r, err)
	}
	cc := clientcredentials.Config{ClientID: r.Credential.ClientID, ClientSecret: secret, TokenURL: r.Credential.TokenURL}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("the revealed secret does not work at BTP: %v", err)
	}
}

func TestHundredApprovalsOverThreeReplicasMintOnceRevealOnce(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	var spaces []*slackfake.Workspace
	spaces = append(spaces, h.Workspace)
	for range 2 {
		a, err := h.StartReplica(ctx)
		if err != nil {
			t.Fatal(err)
		}
		spaces = append(spaces, h.WorkspaceOf(a))
	}
	msg := h.request(t, ctx)
	approvers := []slackfake.Person{Approver, {ID: "U0LOCALAP2", Name: "hedy"}, {ID: "U0LOCALADM", Name: "root"}}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack, err := spaces[i%3].Click(ctx, approvers[i%len(approvers)], msg, blockkit.ActionApprove)
			if err != nil || ack.Status != 200 {
				t.Errorf("click %d: %d %v", i, ack.Status, err)
			}
		}()
	}
	wg.Wait()
	dm := h.waitDM(t, ctx)
	// Reveal through every replica at once: one wins.
	var revealed []string
	var mu sync.Mutex
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack, err := spaces[i%3].Click(ctx, Requester, dm, blockkit.ActionReveal)
			if err != nil {
				t.Error(err)
				return
			}
			c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
			if err != nil {
				t.Error(err)
				return
			}
			if m := secretRE.FindStringSubmatch(c.Body); m != nil {
				mu.Lock()
				revealed = append(revealed, m[1])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates at BTP, want 1", n)
	}
	if len(revealed) != 1 {
		t.Fatalf("%d reveals, want 1", len(revealed))
	}
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	h.assertWorks(t, ctx, id, revealed[0])
}

// TestMintChild is not a test: it is the worker process that
// TestWorkerKilledMidMint starts and kills with SIGKILL at a chosen step.
func TestMintChild(t *testing.T) {
	step := os.Getenv("CREDBOT_TEST_KILL_AT")
	if step == "" {
		t.Skip("runs only as the child of TestWorkerKilledMidMint")
	}
	runChildBot(t, step, func(halt func(string) func(string)) approval.Hooks {
		return approval.Hooks{AfterClaim: halt("claim"), AfterCreate: halt("create"), AfterSeal: halt("seal")}
	}, "")
}

// runChildBot runs, in this child process, a whole bot from the environment
// whose hooks (built by hooks from halt) stop at step: there it prints
// "AT-STEP <step>" and waits for the parent's SIGKILL. It prints started, if
// any, once the bot runs, and never returns.
func runChildBot(t *testing.T, step string, hooks func(halt func(at string) func(string)) approval.Hooks, started string) {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ListenAddr = "127.0.0.1:0"
	halt := func(at string) func(string) {
		return func(string) {
			if at == step {
				fmt.Println("AT-STEP " + at)
				select {} // wait here for SIGKILL
			}
		}
	}
	a, err := New(context.Background(), cfg, Deps{Hooks: hooks(halt)}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if started != "" {
		fmt.Println(started)
	}
	select {}
}

// childEnv is the environment of a bot in a child process that shares the
// harness's Redis, fake Slack and BTP emulator, plus extra.
func (h *harness) childEnv(key string, extra ...string) []string {
	return append(append(os.Environ(),
		"REDIS_URL="+h.Config.RedisURL, "CREDBOT_KEY_PREFIX="+h.Config.KeyPrefix,
		"CREDBOT_SECRET_KEY="+key, "CREDBOT_AUDIT_KEY="+h.Config.AuditKey, "CREDBOT_POLICY_DIR="+h.Config.PolicyDir,
		"SLACK_BOT_TOKEN="+h.Config.SlackBotToken, "SLACK_API_URL="+h.Config.SlackAPIURL,
		"SLACK_SIGNING_SECRET="+h.Config.SigningSecret, "CREDBOT_APPROVAL_CHANNEL="+h.Config.ApprovalChannel,
		"BTP_CLI_SERVER_URL="+h.BTP.URL(), "BTP_GLOBALACCOUNT="+btptest.DefaultGlobalAccount,
		"BTP_USERNAME="+btptest.DefaultUser, "BTP_PASSWORD="+btptest.DefaultPassword,
	), extra...)
}

// startChild runs the test function test in a child process with env and
// waits until it prints a line starting with prefix; it returns the rest of
// that line. The child is killed when the test ends.
func startChild(t *testing.T, ctx context.Context, test string, env []string, prefix string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^"+test+"$", "-test.v")
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
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				line <- rest
				return
			}
		}
		close(line)
	}()
	select {
	case rest, ok := <-line:
		if !ok {
			t.Fatalf("the child %s exited before it printed %q:\n%s", test, prefix, stderr.String())
		}
		return cmd, rest, stderr
	case <-ctx.Done():
		t.Fatalf("the child %s never printed %q:\n%s", test, prefix, stderr.String())
	}
	return nil, "", nil
}

// killWorkerAt starts a mint worker in another process, lets it take the
// queued mint job, and SIGKILLs it when it reaches step (claim, create, seal).
func (h *harness) killWorkerAt(t *testing.T, ctx context.Context, key, step string) {
	t.Helper()
	killChildAtStep(t, ctx, "TestMintChild", h.childEnv(key, "CREDBOT_TEST_KILL_AT="+step, "CREDBOT_MINT_WORKERS=1"))
}

// killChildAtStep starts test (a child bot of runChildBot) with env, waits
// until it stops at its step and SIGKILLs it.
func killChildAtStep(t *testing.T, ctx context.Context, test string, env []string) {
	t.Helper()
	cmd, _, _ := startChild(t, ctx, test, env, "AT-STEP")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

func TestWorkerKilledMidMint(t *testing.T) {
	for _, step := range []string{"claim", "create", "seal"} {
		t.Run("after "+step, func(t *testing.T) {
			key := approval.NewRandomKey()
			h := start(t, map[string]string{"CREDBOT_MINT_WORKERS": "0", "CREDBOT_SECRET_KEY": key})
			ctx := ctxT(t)
			msg := h.request(t, ctx)
			h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
			h.killWorkerAt(t, ctx, key, step)

			// A surviving worker rescues the job.
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { h.App.Service.RunMinter(rctx, "rescuer", 0); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			dm := h.waitDM(t, ctx)
			id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
			secret := h.revealSecret(t, ctx, dm)
			h.assertWorks(t, ctx, id, secret)
			if live := h.BTP.Live(defaultScope); len(live) != 1 {
				t.Fatalf("live credentials %v: want exactly the delivered one, no orphans", live)
			}
		})
	}
}

func TestRedisRestartsBetweenStepsLoseNothing(t *testing.T) {
	srv, err := redistest.StartServer(t.TempDir(), true)
	if err != nil {
		t.Skipf("no redis-server binary to restart: %v", err)
	}
	t.Cleanup(srv.Stop)
	restart := func(string) {
		if err := srv.Restart(); err != nil {
			panic(err)
		}
	}
	h := startWith(t, map[string]string{"REDIS_URL": srv.URL()}, Deps{Hooks: approval.Hooks{AfterClaim: restart, AfterCreate: restart, AfterSeal: restart}})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	secret := h.revealSecret(t, ctx, dm)
	h.assertWorks(t, ctx, id, secret)
	if n := h.BTP.Count("create"); n != 1 {
		t.Fatalf("%d creates at BTP, want 1", n)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("live %v", live)
	}
}

// countCalls counts Slack calls that match.
func countCalls(s *slackfake.Server, match func(slackfake.Call) bool) int {
	n := 0
	for _, c := range s.Calls() {
		if match(c) {
			n++
		}
	}
	return n
}

func sweepAll(t *testing.T, ctx context.Context, apps []*App) {
	t.Helper()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Service.SweepDeadlines(ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
		}()
	}
	wg.Wait()
}

// replicas starts two more bots and returns all three.
func (h *harness) replicas(t *testing.T, ctx context.Context) []*App {
	t.Helper()
	apps := []*App{h.App}
	for range 2 {
		a, err := h.StartReplica(ctx)
		if err != nil {
			t.Fatal(err)
		}
		apps = append(apps, a)
	}
	return apps
}

func TestPendingRequestExpiresExactlyOnceAcrossReplicas(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_PENDING_TTL": "2h", "CREDBOT_REMIND_AFTER": "30m", "CREDBOT_ESCALATE_AFTER": "2"}, Deps{Clock: clock})
	ctx := ctxT(t)
	apps := h.replicas(t, ctx)
	msg := h.request(t, ctx)
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)

	reminders := func() int {
		return countCalls(h.Slack, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Params.Get("thread_ts") == msg.TS
		})
	}
	clock.Advance(31 * time.Minute)
	sweepAll(t, ctx, apps)
	if n := reminders(); n != 1 {
		t.Fatalf("%d reminders after 31m, want 1", n)
	}
	sweepAll(t, ctx, apps)
	if n := reminders(); n != 1 {
		t.Fatalf("%d reminders after a second sweep, want still 1 (backoff)", n)
	}
	clock.Advance(time.Hour) // 1h31m: the second reminder (backed off to 60m) escalates
	sweepAll(t, ctx, apps)
	if n := reminders(); n != 2 {
		t.Fatalf("%d reminders after 1h31m, want 2", n)
	}
	clock.Advance(30 * time.Minute) // past the 2h pending TTL
	sweepAll(t, ctx, apps)
	sweepAll(t, ctx, apps)
	r, err := h.App.Store.Get(ctx, id)
	if err != nil || r.State != approval.StateExpired {
		t.Fatalf("state %v %v, want EXPIRED", r.State, err)
	}
	told := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("text"), "expired without a decision")
	})
	if told != 1 {
		t.Fatalf("requester told %d times, want 1", told)
	}
	upd, _ := h.Slack.Message(msg.Channel, msg.TS)
	if strings.Contains(upd.Blocks, blockkit.ActionApprove) || !strings.Contains(upd.Blocks, "Expired") {
		t.Fatalf("approval message not updated on expiry: %s", upd.Blocks)
	}
	expired := 0
	var out strings.Builder
	if _, err := h.App.Store.ExportAudit(ctx, &out); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, id) && strings.Contains(line, `"to":"EXPIRED"`) {
			expired++
		}
	}
	if expired != 1 {
		t.Fatalf("%d EXPIRED audit entries, want 1", expired)
	}
	if late := h.click(t, ctx, Approver, msg, blockkit.ActionApprove); !strings.Contains(late.Body, "already expired") {
		t.Fatalf("approve after expiry: %s", late.Body)
	}
	if rep, err := h.App.Store.VerifyAudit(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}

func TestUnrevealedSecretIsRevokedAfterClaimWindow(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_CLAIM_WINDOW": "15m"}, Deps{Clock: clock})
	ctx := ctxT(t)
	apps := h.replicas(t, ctx)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("live %v", live)
	}
	clock.Advance(16 * time.Minute)
	sweepAll(t, ctx, apps)
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("credential still live at BTP after the claim window: %v", live)
	}
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	r, _ := h.App.Store.Get(ctx, id)
	if r.State != approval.StateRevoked {
		t.Fatalf("state %s, want REVOKED", r.State)
	}
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "was not revealed within 15m")
	}); n != 1 {
		t.Fatalf("requester told %d times, want 1", n)
	}
	if n := h.BTP.Count("delete"); n != 1 {
		t.Fatalf("%d deletes at BTP, want 1", n)
	}
	late := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
	if strings.Contains(late.Body, "clientsecret") {
		t.Fatal("revealed after revocation")
	}
}

func TestCredentialIsWarnedThenDeletedAtEndOfLifetime(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	ack, err := h.Workspace.Slash(ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name short-lived --reason "one-off migration"`)
	if err != nil || ack.Status != 200 {
		t.Fatal(err)
	}
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Channel == localApprovals })
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := slackfake.FindButton(post.Params.Get("blocks"), blockkit.ActionApprove)
	msg, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	h.revealSecret(t, ctx, dm)
	r, _ := h.App.Store.Get(ctx, id)
	if r.State != approval.StateDelivered || r.ExpiresAt.Sub(clock.Now()) < 89*24*time.Hour {
		t.Fatalf("after reveal: %s, expires %v", r.State, r.ExpiresAt)
	}
	clock.Advance(84 * 24 * time.Hour) // the warning is due 7 days before the 90-day end
	sweepAll(t, ctx, []*App{h.App})
	if n := countCalls(h.Slack, func(c slackfake.Call) bool {
		return c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("text"), "will be deleted at BTP")
	}); n != 1 {
		t.Fatalf("owner warned %d times, want 1", n)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("deleted before its time: %v", live)
	}
	clock.Advance(7 * 24 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("still live after its lifetime: %v", live)
	}
	r, _ = h.App.Store.Get(ctx, id)
	if r.State != approval.StateDeleted {
		t.Fatalf("state %s, want DELETED", r.State)
	}
}

func TestRevokeLeaseIsTakenOverWhenBTPDeleteFails(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h", "CREDBOT_CLAIM_WINDOW": "15m"}, Deps{Clock: clock})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	h.BTP.Inject(btptest.Fault{Action: "delete", Status: 403, Times: 1})
	clock.Advance(16 * time.Minute)
	_ = h.App.Service.SweepDeadlines(ctx) // fails at BTP, leaves the lease
	r, _ := h.App.Store.Get(ctx, id)
	if r.State != approval.StateIssued || !r.Revoking {
		t.Fatalf("after a failed delete: %s revoking=%v, want ISSUED under lease", r.State, r.Revoking)
	}
	if late := h.click(t, ctx, Requester, dm, blockkit.ActionReveal); strings.Contains(late.Body, "clientsecret") {
		t.Fatal("revealed while being revoked")
	}
	clock.Advance(3 * time.Minute) // the 2-minute lease ran out
	if err := h.App.Service.SweepDeadlines(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ = h.App.Store.Get(ctx, id)
	if r.State != approval.StateRevoked || len(h.BTP.Live(defaultScope)) != 0 {
		t.Fatalf("state %s live %v, want REVOKED and gone", r.State, h.BTP.Live(defaultScope))
	}
}

func TestCancelAndAdminDelete(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	id, _, _ := slackfake.FindButton(msg.Blocks, blockkit.ActionApprove)
	if _, err := h.App.Service.Cancel(ctx, id, Approver.ID); err == nil {
		t.Fatal("someone else cancelled the request")
	}
	r, err := h.App.Service.Cancel(ctx, id, Requester.ID)
	if err != nil || r.State != approval.StateCancelled {
		t.Fatalf("cancel: %+v %v", r, err)
	}
	if late := h.click(t, ctx, Approver, msg, blockkit.ActionApprove); !strings.Contains(late.Body, "already cancelled") {
		t.Fatalf("approve after cancel: %s", late.Body)
	}

	// A second request is issued and delivered; an admin lists and deletes it.
	ack, _ := h.Workspace.Slash(ctx, Requester, `create --subaccount `+btptest.DefaultSubaccount+` --name second --reason "again"`)
	post, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "second")
	})
	if err != nil || ack.Status != 200 {
		t.Fatal(err)
	}
	m2, _ := h.Slack.Message(post.Channel, post.TS)
	h.click(t, ctx, Approver, m2, blockkit.ActionApprove)
	h.revealSecret(t, ctx, h.waitDM(t, ctx))

	views, err := h.App.Service.ListCredentials(ctx, "U0LOCALADM", defaultScope)
	if err != nil || len(views) != 1 || !views[0].Managed || views[0].Owner != Requester.ID || views[0].ExpiresAt.IsZero() {
		t.Fatalf("admin list: %+v %v", views, err)
	}
	if _, err := h.App.Service.ListCredentials(ctx, Outsider.ID, defaultScope); err == nil {
		t.Fatal("an outsider listed credentials")
	}
	if err := h.App.Service.DeleteCredential(ctx, Approver.ID, defaultScope, "second"); err == nil {
		t.Fatal("a mere approver deleted a credential")
	}
	if err := h.App.Service.DeleteCredential(ctx, "U0LOCALADM", defaultScope, "second"); err != nil {
		t.Fatal(err)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("still live: %v", live)
	}
	id2, _, _ := slackfake.FindButton(m2.Blocks, blockkit.ActionApprove)
	if r, _ := h.App.Store.Get(ctx, id2); r.State != approval.StateDeleted {
		t.Fatalf("state %s, want DELETED", r.State)
	}
}

func TestLoopRunsThroughSentinel(t *testing.T) {
	dir := t.TempDir()
	primary, err := redistest.StartServer(dir, false)
	if err != nil {
		t.Skipf("no redis-server: %v", err)
	}
	t.Cleanup(primary.Stop)
	sdir := t.TempDir()
	sentinel, err := redistest.StartSentinel(sdir, primary.Addr(), "credbot-primary")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinel.Stop)
	url := "redis-sentinel://" + sentinel.Addr() + "/0?master_name=credbot-primary"
	h := startOn(t, redistest.Attach(t, primary.URL()), map[string]string{"REDIS_URL": url}, Deps{})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	id, _, _ := slackfake.FindButton(dm.Blocks, blockkit.ActionReveal)
	h.assertWorks(t, ctx, id, h.revealSecret(t, ctx, dm))
	if n, _ := h.redis.Client.Exists(ctx, h.Config.KeyPrefix+":req:{"+id+"}").Result(); n != 1 {
		t.Fatal("the request is not in the primary the Sentinel names")
	}
}

func TestAuditEntriesAreMirroredToTheAuditChannel(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	secret := h.revealSecret(t, ctx, h.waitDM(t, ctx))
	for _, step := range []string{"new → PENDING by <@U0LOCALREQ>", "PENDING → APPROVED by <@U0LOCALAPR>", "APPROVED → MINTING", "MINTING → ISSUED", "ISSUED → DELIVERED by <@U0LOCALREQ>"} {
		c, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == localAudit && strings.Contains(c.Params.Get("text"), step)
		})
		if err != nil {
			t.Fatalf("audit mirror lacks %q: %v", step, err)
		}
		if strings.Contains(c.Params.Encode(), secret) {
			t.Fatal("secret in the audit mirror")
		}
	}
}

func TestOwnerDeletesFromTheExpiryWarning(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	h.revealSecret(t, ctx, h.waitDM(t, ctx))
	clock.Advance(84 * 24 * time.Hour)
	sweepAll(t, ctx, []*App{h.App})
	warn, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionDeleteOwn)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := h.Slack.Message(warn.Channel, warn.TS)
	if got := h.click(t, ctx, Approver, m, blockkit.ActionDeleteOwn); !strings.Contains(got.Body, ":warning:") {
		t.Fatalf("someone else deleted the owner's credential: %s", got.Body)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 1 {
		t.Fatalf("live %v", live)
	}
	if got := h.click(t, ctx, Requester, m, blockkit.ActionDeleteOwn); !strings.Contains(got.Body, "deleted at BTP") {
		t.Fatalf("owner's delete: %s", got.Body)
	}
	if live := h.BTP.Live(defaultScope); len(live) != 0 {
		t.Fatalf("still live: %v", live)
	}
	if again := h.click(t, ctx, Requester, m, blockkit.ActionDeleteOwn); !strings.Contains(again.Body, "not a live credential") {
		t.Fatalf("second delete: %s", again.Body)
	}
}
