package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/policy"
	"github.com/credbot/credbot/internal/slackfake"
)

// The people of the local demo; the shipped example policy knows them.
var (
	Requester = slackfake.Person{ID: "U0LOCALREQ", Name: "ada"}
	Approver  = slackfake.Person{ID: "U0LOCALAPR", Name: "grace"}
	Outsider  = slackfake.Person{ID: "U0LOCALOUT", Name: "mallory"}
	// Reviewer reviews break-glass (the example policy's admin).
	Reviewer = slackfake.Person{ID: "U0LOCALADM", Name: "root"}
)

const (
	localApprovals = "C0APPROVALS"
	localAudit     = "C0AUDIT"
	localToken     = "xoxb-local-fake"
)

// Local is a whole bot on embedded defaults: a fake Slack, the BTP emulator
// (unless BTP_CLI_SERVER_URL is set) and an in-process Redis (unless REDIS_URL
// is set). Tests build it with a real Redis URL.
type Local struct {
	App       *App
	Config    Config // as the first replica was built
	deps      Deps
	log       *slog.Logger
	Slack     *slackfake.Server
	BTP       *btptest.Server // nil when BTP_CLI_SERVER_URL points elsewhere
	Workspace *slackfake.Workspace
	closers   []func()
}

// StartLocal starts the local bot. getenv supplies overrides (REDIS_URL,
// BTP_*, CREDBOT_POLICY_DIR, CREDBOT_CLAIM_WINDOW …).
func StartLocal(ctx context.Context, getenv func(string) string, log *slog.Logger, deps Deps) (l *Local, err error) {
	started := &Local{deps: deps, log: log}
	l = started
	defer func() {
		if err != nil {
			// What was started so far stops; the error says why (l itself
			// is nil by then).
			started.Close()
		}
	}()
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	cfg.ListenAddr = "127.0.0.1:0"
	// One simulated requester drives every loop here (the load command runs
	// hundreds at once), so the per-user limits apply only when asked for.
	if getenv("CREDBOT_MAX_PENDING_PER_USER") == "" {
		cfg.MaxPendingPerUser = 0
	}
	if getenv("CREDBOT_COMMANDS_PER_MINUTE") == "" {
		cfg.CommandsPerMinute = deps.CommandLimit
	}
	if cfg.RedisURL == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, err
		}
		l.closers = append(l.closers, mr.Close)
		cfg.RedisURL = "redis://" + mr.Addr()
	}
	if getenv("BTP_CLI_SERVER_URL") == "" {
		l.BTP = btptest.NewServer(emulatedAccount(cfg.PolicyDir))
		l.closers = append(l.closers, l.BTP.Close)
		cfg.BTP = btp.Config{
			ServerURL: l.BTP.URL(), GlobalAccount: btptest.DefaultGlobalAccount,
			Username: btptest.DefaultUser, Password: btptest.DefaultPassword,
			VerifyCredentials: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		}
	}
	if l.Slack, err = slackfake.Start(localToken); err != nil {
		return nil, err
	}
	l.closers = append(l.closers, l.Slack.Close)
	cfg.SlackBotToken, cfg.SlackAPIURL = localToken, l.Slack.APIURL()
	cfg.SigningSecret = randomHex(16)
	cfg.ApprovalChannel = localApprovals
	if cfg.AuditChannel == "" {
		cfg.AuditChannel = localAudit
	}
	cfg.ResponseHosts = append(cfg.ResponseHosts, l.Slack.Host())
	if cfg.SecretKey == "" {
		log.Warn("local mode: CREDBOT_SECRET_KEY not set, sealing secrets with a throw-away key")
		cfg.SecretKey = approval.NewRandomKey()
	}
	if cfg.AuditKey == "" {
		log.Warn("local mode: CREDBOT_AUDIT_KEY not set, MACing the audit trail with a throw-away key")
		cfg.AuditKey = approval.NewRandomKey()
	}
	l.Config = cfg
	if l.App, err = l.StartReplica(ctx); err != nil {
		return nil, err
	}
	l.Workspace = l.WorkspaceOf(l.App)
	return l, nil
}

// StartReplica starts one more bot sharing the same Redis, BTP and Slack, as a
// second pod of a deployment would; Close stops it with the rest.
func (l *Local) StartReplica(ctx context.Context) (*App, error) {
	rdb, err := NewRedis(l.Config.RedisURL, l.Config.Workers+l.Config.MintWorkers)
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, func() { _ = rdb.Close() })
	deps := l.deps
	deps.Redis = rdb
	a, err := New(ctx, l.Config, deps, l.log)
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	l.closers = append(l.closers, a.Close)
	return a, nil
}

// WorkspaceOf returns simulated people who talk to replica a.
func (l *Local) WorkspaceOf(a *App) *slackfake.Workspace {
	return &slackfake.Workspace{
		Slack: l.Slack, BotURL: "http://" + a.Addr(), SigningSecret: l.Config.SigningSecret,
		Team: "T0LOCAL", Command: "/credbot", Sign: handlers.Sign,
		Socket: l.Config.SlackAppToken != "", // then the bot takes Slack over the fake's Socket Mode
	}
}

// Close stops everything StartLocal started, newest first.
func (l *Local) Close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
}

// Demo plays the whole loop — request, refused clicks, approval, DM, reveal, a
// second reveal — and writes what each person saw to w. Any step that does not
// happen as it should is an error.
func (l *Local) Demo(ctx context.Context, w io.Writer) error {
	step := func(format string, a ...any) { fmt.Fprintf(w, "\n== "+format+"\n", a...) }
	saw := func(who slackfake.Person, what string) {
		fmt.Fprintf(w, "   %s (%s) sees: %s\n", who.Name, who.ID, strings.ReplaceAll(strings.TrimSpace(what), "\n", "\n      "))
	}
	wait := func(what string, match func(slackfake.Call) bool) (slackfake.Call, error) {
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		c, err := l.Slack.WaitFor(wctx, match)
		if err != nil {
			return c, fmt.Errorf("%s: %w", what, err)
		}
		return c, nil
	}
	reply := func(ru string) func(slackfake.Call) bool {
		return func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ru }
	}

	text := `create --subaccount 11111111-2222-4333-8444-555555555555 --name demo-ci-pipeline --reason "CI pipeline of the payments team"`
	step("%s types: /credbot %s", Requester.Name, text)
	ack, err := l.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("slash command: status %d, %v", ack.Status, err)
	}
	saw(Requester, ackText(ack.Body))
	c, err := wait("confirmation to the requester", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))

	post, err := wait("approval message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals
	})
	if err != nil {
		return err
	}
	step("credbot posts to the approvers' channel %s", localApprovals)
	saw(Approver, RenderBlocks(post.Params.Get("blocks")))
	msg, _ := l.Slack.Message(post.Channel, post.TS)

	for _, p := range []slackfake.Person{Outsider, Requester} {
		step("%s clicks Approve", p.Name)
		ack, err := l.Workspace.Click(ctx, p, msg, blockkit.ActionApprove)
		if err != nil || ack.Status != 200 {
			return fmt.Errorf("click: status %d, %v", ack.Status, err)
		}
		c, err := wait("refusal", reply(ack.ResponseURL))
		if err != nil {
			return err
		}
		saw(p, RenderReply(c.Body))
		if !strings.Contains(c.Body, ":warning:") {
			return fmt.Errorf("%s's approval was not refused: %s", p.Name, c.Body)
		}
	}

	step("%s clicks Approve", Approver.Name)
	ack, err = l.Workspace.Click(ctx, Approver, msg, blockkit.ActionApprove)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("click: status %d, %v", ack.Status, err)
	}
	c, err = wait("approval confirmation", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Approver, RenderReply(c.Body))
	dm, err := wait("DM with a Reveal button", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
	})
	if err != nil {
		return err
	}
	upd, _ := l.Slack.Message(post.Channel, post.TS)
	step("credbot updates the approval message")
	saw(Approver, RenderBlocks(upd.Blocks))
	step("credbot DMs %s", Requester.Name)
	saw(Requester, RenderBlocks(dm.Params.Get("blocks")))

	dmMsg, _ := l.Slack.Message(dm.Channel, dm.TS)
	step("%s clicks Reveal", Requester.Name)
	ack, err = l.Workspace.Click(ctx, Requester, dmMsg, blockkit.ActionReveal)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("reveal click: status %d, %v", ack.Status, err)
	}
	c, err = wait("revealed secret", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, "(ephemeral, only in the DM) "+RenderReply(c.Body))
	if !strings.Contains(c.Body, "clientsecret") {
		return fmt.Errorf("reveal did not carry the secret: %s", RenderReply(c.Body))
	}

	step("%s clicks Reveal again", Requester.Name)
	ack, err = l.Workspace.Click(ctx, Requester, dmMsg, blockkit.ActionReveal)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("second reveal click: status %d, %v", ack.Status, err)
	}
	c, err = wait("second reveal answer", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))
	if strings.Contains(c.Body, "clientsecret") {
		return errors.New("the secret was revealed twice")
	}
	if l.BTP != nil {
		step("the BTP emulator saw %d create call(s); live credentials in the subaccount: %v",
			l.BTP.Count("create"), l.BTP.Live(approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}))
		if n := l.BTP.Count("create"); n != 1 {
			return fmt.Errorf("BTP saw %d creates, want 1", n)
		}
	}
	if err := l.demoCertificate(ctx, w, step, saw, wait); err != nil {
		return err
	}
	if err := l.demoBreakglass(ctx, w, step, saw, wait, reply); err != nil {
		return err
	}
	if err := l.demoRotate(ctx, w, step, saw, wait, reply); err != nil {
		return err
	}
	if err := l.demoAssign(ctx, w, step, saw, wait, reply); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nThe whole loop worked.")
	return nil
}

// demoCertificate plays a certificate credential: the command opens the form
// filled in, the requester pastes a certificate (and, first, by mistake, its
// private key, which is refused), the approvers see its facts, and the reveal
// shows what BTP returned.
func (l *Local) demoCertificate(ctx context.Context, w io.Writer, step func(string, ...any), saw func(slackfake.Person, string),
	wait func(string, func(slackfake.Call) bool) (slackfake.Call, error)) error {
	certPEM, keyPEM, err := demoClientCertificate()
	if err != nil {
		return err
	}
	const name = "demo-mtls-client"
	text := `create --subaccount 11111111-2222-4333-8444-555555555555 --name ` + name + ` --certificate --reason "mTLS client of the payments team"`
	step("%s types: /credbot %s", Requester.Name, text)
	ack, err := l.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != 200 || ack.Body != "" {
		return fmt.Errorf("create --certificate: status %d %q, %v", ack.Status, ack.Body, err)
	}
	open, err := wait("the certificate form", func(c slackfake.Call) bool {
		return c.Method == "views.open" && strings.Contains(c.Body, ack.Trigger)
	})
	if err != nil {
		return err
	}
	saw(Requester, "a form, filled in from the command, with a field for the X.509 client certificate (PEM)")
	form := map[string]string{"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount, "name": name,
		"access": "full", "reason": "mTLS client of the payments team"}
	submit := func(certText string) (slackfake.Ack, error) {
		v := map[string]string{"certificate": certText}
		for k, x := range form {
			v[k] = x
		}
		return l.Workspace.SubmitView(ctx, Requester, open.TS, v)
	}
	step("%s pastes the certificate and its private key, and submits", Requester.Name)
	sub, err := submit(certPEM + keyPEM)
	if err != nil || !strings.Contains(sub.Body, "private key") {
		return fmt.Errorf("a pasted private key was not refused: %q %v", sub.Body, err)
	}
	var refusal struct{ Errors map[string]string }
	_ = json.Unmarshal([]byte(sub.Body), &refusal)
	saw(Requester, "under the certificate field: "+refusal.Errors["certificate"])
	step("%s pastes only the certificate, and submits", Requester.Name)
	if sub, err = submit(certPEM); err != nil || sub.Body != "" {
		return fmt.Errorf("the certificate form: %q %v", sub.Body, err)
	}
	post, err := wait("approval message of the certificate credential", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "Name: "+name)
	})
	if err != nil {
		return err
	}
	step("credbot posts to the approvers' channel %s", localApprovals)
	saw(Approver, RenderBlocks(post.Params.Get("blocks")))
	if !strings.Contains(post.Params.Get("blocks"), "SHA-256: ") {
		return errors.New("the approval message does not show the certificate's fingerprint")
	}
	msg, _ := l.Slack.Message(post.Channel, post.TS)
	step("%s clicks Approve", Approver.Name)
	if ack, err = l.Workspace.Click(ctx, Approver, msg, blockkit.ActionApprove); err != nil || ack.Status != 200 {
		return fmt.Errorf("click: status %d, %v", ack.Status, err)
	}
	dm, err := wait("DM with a Reveal button for the certificate credential", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) &&
			strings.Contains(c.Params.Get("blocks"), name)
	})
	if err != nil {
		return err
	}
	dmMsg, _ := l.Slack.Message(dm.Channel, dm.TS)
	step("%s clicks Reveal", Requester.Name)
	if ack, err = l.Workspace.Click(ctx, Requester, dmMsg, blockkit.ActionReveal); err != nil || ack.Status != 200 {
		return fmt.Errorf("reveal click: status %d, %v", ack.Status, err)
	}
	c, err := wait("revealed certificate credential", func(c slackfake.Call) bool { return c.Method == "response_url" && c.URL == ack.ResponseURL })
	if err != nil {
		return err
	}
	saw(Requester, "(ephemeral, only in the DM) "+demoShorten(RenderReply(c.Body)))
	if !strings.Contains(c.Body, "certurl") || !strings.Contains(c.Body, "Certificate credential") {
		return fmt.Errorf("the reveal does not show the certificate credential: %s", RenderReply(c.Body))
	}
	if l.BTP != nil {
		var sent bool
		for _, r := range l.BTP.Requests() {
			sent = sent || (r.Action == "create" && r.Params["name"] == name && r.Params["certificate"] == certPEM)
		}
		if !sent {
			return errors.New("BTP did not receive the certificate as the btp CLI sends it")
		}
		step("the BTP emulator received the certificate PEM in the create's \"certificate\" parameter, as the btp CLI sends it")
	}
	return nil
}

// demoClientCertificate makes the requester's key pair and self-signed client
// certificate, as `openssl req -x509` would; the key goes no further than the
// demo's one mistaken paste.
func demoClientCertificate() (certPEM, keyPEM string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "payments-mtls-client", Organization: []string{"ACME"}},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})), nil
}

// demoShorten keeps PEM blocks in the transcript to their first line.
func demoShorten(s string) string {
	var out []string
	inPEM := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.Contains(line, "-----BEGIN "):
			inPEM = true
			out = append(out, line, "      …")
		case strings.Contains(line, "-----END "):
			inPEM = false
			out = append(out, line)
		case !inPEM:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// demoBreakglass plays a break-glass: issued at once without approval, alerted
// with review buttons, refused to its own user's review, revoked by a reviewer.
func (l *Local) demoBreakglass(ctx context.Context, w io.Writer, step func(string, ...any), saw func(slackfake.Person, string),
	wait func(string, func(slackfake.Call) bool) (slackfake.Call, error), reply func(string) func(slackfake.Call) bool) error {
	fmt.Fprintln(w, "\n--- Break-glass: an emergency credential at once, reviewed afterwards ---")
	mark := l.Slack.Mark()
	text := `breakglass --subaccount 11111111-2222-4333-8444-555555555555 --name demo-hotfix --reason "INC-4711: payments API down"`
	step("%s (on call) types: /credbot %s", Requester.Name, text)
	ack, err := l.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("breakglass: status %d, %v", ack.Status, err)
	}
	saw(Requester, ackText(ack.Body))
	c, err := wait("break-glass confirmation", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))
	after := func(what string, match func(slackfake.Call) bool) (slackfake.Call, error) {
		return l.waitFrom(ctx, mark, 15*time.Second, what, match)
	}
	alert, err := after("break-glass alert", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Params.Get("blocks"), blockkit.ActionAcknowledge)
	})
	if err != nil {
		return err
	}
	step("credbot alerts %s at once (no approval was asked for)", alert.Channel)
	saw(Reviewer, RenderBlocks(alert.Params.Get("blocks")))
	dm, err := after("break-glass DM with a Reveal button", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal)
	})
	if err != nil {
		return err
	}
	step("credbot DMs %s the usual one-time Reveal button", Requester.Name)
	saw(Requester, RenderBlocks(dm.Params.Get("blocks")))

	msg, _ := l.Slack.Message(alert.Channel, alert.TS)
	for _, click := range []struct {
		who    slackfake.Person
		action string
		label  string
		want   string
	}{
		{Requester, blockkit.ActionAcknowledge, "Acknowledge on their own break-glass", ":warning:"},
		{Reviewer, blockkit.ActionRevokeNow, "Revoke now", "Revoked"},
	} {
		step("%s clicks %s", click.who.Name, click.label)
		ack, err := l.Workspace.Click(ctx, click.who, msg, click.action)
		if err != nil || ack.Status != 200 {
			return fmt.Errorf("click: status %d, %v", ack.Status, err)
		}
		c, err := wait(click.label, reply(ack.ResponseURL))
		if err != nil {
			return err
		}
		saw(click.who, RenderReply(c.Body))
		if !strings.Contains(c.Body, click.want) {
			return fmt.Errorf("%s: %s", click.label, RenderReply(c.Body))
		}
	}
	told, err := after("revocation notice", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("text"), "was revoked by")
	})
	if err != nil {
		return err
	}
	saw(Requester, told.Params.Get("text"))
	upd, _ := l.Slack.Message(alert.Channel, alert.TS)
	step("credbot updates the alert")
	saw(Reviewer, RenderBlocks(upd.Blocks))
	if l.BTP != nil {
		step("the BTP emulator saw %d delete call(s); live credentials in the subaccount: %v",
			l.BTP.Count("delete"), l.BTP.Live(approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}))
	}
	return nil
}

// demoAssign plays a just-in-time role collection: asked for a few seconds,
// approved, assigned to the requester's own BTP user and confirmed from BTP's
// answer, warned about, and unassigned at the end with BTP's confirmation.
func (l *Local) demoAssign(ctx context.Context, w io.Writer, step func(string, ...any), saw func(slackfake.Person, string),
	wait func(string, func(slackfake.Call) bool) (slackfake.Call, error), reply func(string) func(slackfake.Call) bool) error {
	fmt.Fprintln(w, "\n--- Just-in-time role collection: BTP access for a while, then taken away ---")
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}
	mark := l.Slack.Mark()
	after := func(what string, match func(slackfake.Call) bool) (slackfake.Call, error) {
		return l.waitFrom(ctx, mark, 20*time.Second, what, match)
	}
	dmSaying := func(what, want string) (slackfake.Call, error) {
		return after(what, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("text"), want)
		})
	}
	text := `assign --role-collection "Subaccount Viewer" --subaccount 11111111-2222-4333-8444-555555555555 --for 4s --reason "look at the payments subaccount's entitlements"`
	step("%s types: /credbot %s", Requester.Name, text)
	ack, err := l.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("assign: status %d, %v", ack.Status, err)
	}
	saw(Requester, ackText(ack.Body))
	c, err := wait("assign confirmation", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))
	post, err := after("role collection approval message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == localApprovals && strings.Contains(c.Params.Get("blocks"), "Role collection: ")
	})
	if err != nil {
		return err
	}
	step("credbot posts to the approvers' channel %s", localApprovals)
	saw(Approver, RenderBlocks(post.Params.Get("blocks")))
	msg, _ := l.Slack.Message(post.Channel, post.TS)
	step("%s clicks Approve", Approver.Name)
	ack, err = l.Workspace.Click(ctx, Approver, msg, blockkit.ActionApprove)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("click: status %d, %v", ack.Status, err)
	}
	if c, err = wait("approval confirmation", reply(ack.ResponseURL)); err != nil {
		return err
	}
	saw(Approver, RenderReply(c.Body))
	c, err = dmSaying("assignment confirmation", "You now hold role collection")
	if err != nil {
		return err
	}
	step("credbot assigns it at BTP and DMs %s", Requester.Name)
	saw(Requester, c.Params.Get("text"))
	end, err := dmSaying("end notice", "credbot unassigned it")
	if err != nil {
		return err
	}
	// The warning comes a tenth of --for before the end, if a sweep (every
	// CREDBOT_SWEEP_INTERVAL) falls between the two; 4s is shorter than that.
	for _, warn := range l.Slack.Calls() {
		if warn.Method == "chat.postMessage" && strings.HasPrefix(warn.Channel, "D") && strings.Contains(warn.Params.Get("text"), "Subaccount Viewer\" in") &&
			strings.Contains(warn.Params.Get("text"), " ends at ") {
			step("credbot warns %s before the end", Requester.Name)
			saw(Requester, warn.Params.Get("text"))
		}
	}
	step("at the end credbot unassigns it and tells %s", Requester.Name)
	saw(Requester, end.Params.Get("text"))
	if l.BTP != nil {
		user := approval.BTPUser{Origin: approval.DefaultUserOrigin, Name: strings.ToLower(Requester.ID) + "@example.com"}
		step("the BTP emulator saw %d assign and %d unassign call(s); %s now holds %v in the subaccount",
			l.BTP.CountCommand("security/role-collection", "assign"), l.BTP.CountCommand("security/role-collection", "unassign"),
			user.Name, l.BTP.RoleCollections(scope, user))
		if got := l.BTP.RoleCollections(scope, user); len(got) != 0 {
			return fmt.Errorf("the role collection outlived its end: %v", got)
		}
	}
	return nil
}

// demoRotate rotates the first demo's credential: the owner needs no approval
// under the example policy, reveals the new one, and retires the old one.
func (l *Local) demoRotate(ctx context.Context, w io.Writer, step func(string, ...any), saw func(slackfake.Person, string),
	wait func(string, func(slackfake.Call) bool) (slackfake.Call, error), reply func(string) func(slackfake.Call) bool) error {
	fmt.Fprintln(w, "\n--- Rotate: a new credential under a new name; the old one goes once the new one is in hand ---")
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}
	mark := l.Slack.Mark()
	text := `rotate --subaccount 11111111-2222-4333-8444-555555555555 --name demo-ci-pipeline`
	step("%s types: /credbot %s", Requester.Name, text)
	ack, err := l.Workspace.Slash(ctx, Requester, text)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("rotate: status %d, %v", ack.Status, err)
	}
	saw(Requester, ackText(ack.Body))
	c, err := wait("rotation confirmation", reply(ack.ResponseURL))
	if err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	dm, err := l.Slack.WaitFrom(wctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Channel, "D") && strings.Contains(c.Params.Get("blocks"), blockkit.ActionReveal) &&
			strings.Contains(c.Params.Get("blocks"), "demo-ci-pipeline-r2")
	})
	if err != nil {
		return fmt.Errorf("rotation's Reveal DM: %w", err)
	}
	step("credbot creates demo-ci-pipeline-r2 (the policy lets owners rotate without approval) and DMs %s", Requester.Name)
	saw(Requester, RenderBlocks(dm.Params.Get("blocks")))
	dmMsg, _ := l.Slack.Message(dm.Channel, dm.TS)
	step("%s clicks Reveal", Requester.Name)
	ack, err = l.Workspace.Click(ctx, Requester, dmMsg, blockkit.ActionReveal)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("reveal click: status %d, %v", ack.Status, err)
	}
	if c, err = wait("revealed secret", reply(ack.ResponseURL)); err != nil {
		return err
	}
	saw(Requester, "(ephemeral, only in the DM) "+RenderReply(c.Body))
	if l.BTP != nil {
		step("both live during the grace period (CREDBOT_ROTATION_GRACE): %v", l.BTP.Live(scope))
	}
	if _, err := l.Slack.WaitFrom(wctx, mark, func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.Channel == dm.Channel && strings.Contains(c.Params.Get("blocks"), blockkit.ActionRetireOld)
	}); err != nil {
		return fmt.Errorf("the DM notice offering to retire the old one: %w", err)
	}
	dmMsg, _ = l.Slack.Message(dm.Channel, dm.TS)
	step("credbot rewrites the DM notice")
	saw(Requester, RenderBlocks(dmMsg.Blocks))
	step("%s switches over and clicks Retire the old one", Requester.Name)
	ack, err = l.Workspace.Click(ctx, Requester, dmMsg, blockkit.ActionRetireOld)
	if err != nil || ack.Status != 200 {
		return fmt.Errorf("retire click: status %d, %v", ack.Status, err)
	}
	if c, err = wait("retire answer", reply(ack.ResponseURL)); err != nil {
		return err
	}
	saw(Requester, RenderReply(c.Body))
	if !strings.Contains(c.Body, "deleted at BTP") {
		return fmt.Errorf("retire: %s", RenderReply(c.Body))
	}
	if l.BTP != nil {
		live := l.BTP.Live(scope)
		step("live credentials in the subaccount: %v", live)
		if slices.Contains(live, "demo-ci-pipeline") || !slices.Contains(live, "demo-ci-pipeline-r2") {
			return fmt.Errorf("after the rotation BTP holds %v", live)
		}
	}
	return nil
}

// waitFrom waits, at most timeout, for the first Slack call since mark that
// matches; its error names what the demo was waiting for.
func (l *Local) waitFrom(ctx context.Context, mark int, timeout time.Duration, what string, match func(slackfake.Call) bool) (slackfake.Call, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := l.Slack.WaitFrom(wctx, mark, match)
	if err != nil {
		return c, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func ackText(body string) string {
	var m struct{ Text string }
	if json.Unmarshal([]byte(body), &m) == nil && m.Text != "" {
		return m.Text
	}
	return body
}

// RenderReply turns a response_url body into readable text.
func RenderReply(body string) string {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return body
	}
	if len(m.Blocks) > 0 && string(m.Blocks) != "null" {
		return RenderBlocks(string(m.Blocks))
	}
	return m.Text
}

// RenderBlocks turns Block Kit JSON into plain lines, buttons as [Label].
func RenderBlocks(blocks string) string {
	var bs []struct {
		Text     *struct{ Text string }  `json:"text"`
		Fields   []struct{ Text string } `json:"fields"`
		Elements []map[string]any        `json:"elements"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		return blocks
	}
	var out []string
	for _, b := range bs {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, f := range b.Fields {
			out = append(out, "  "+f.Text)
		}
		var line []string
		for _, e := range b.Elements {
			switch t := e["text"].(type) {
			case string: // a context element
				line = append(line, t)
			case map[string]any: // a button
				line = append(line, fmt.Sprintf("[%v]", t["text"]))
			}
		}
		if len(line) > 0 {
			out = append(out, strings.Join(line, " "))
		}
	}
	return strings.Join(out, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// emulatedAccount is the emulator's global account: the defaults the demo
// uses plus every subaccount and directory hierarchy.yaml names, so that
// the inventory lists each of them. (A hierarchy that does not load is
// reported when the policy loads; the defaults do here.)
func emulatedAccount(policyDir string) btptest.Options {
	o := btptest.Options{Subaccounts: []string{btptest.DefaultSubaccount}, Directories: []string{btptest.DefaultDirectory}}
	scopes, _ := policy.HierarchyScopes(policyDir)
	for _, sc := range scopes {
		switch {
		case sc.Kind == approval.ScopeSubaccount && !slices.Contains(o.Subaccounts, sc.ID):
			o.Subaccounts = append(o.Subaccounts, sc.ID)
		case sc.Kind == approval.ScopeDirectory && !slices.Contains(o.Directories, sc.ID):
			o.Directories = append(o.Directories, sc.ID)
		}
	}
	return o
}
