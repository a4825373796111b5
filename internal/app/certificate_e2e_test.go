package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/certtest"
	"github.com/credbot/credbot/internal/slackfake"
)

// openedView returns the id and body of the form views.open showed for the
// command acked with ack.
func openedView(t *testing.T, h *harness, ack slackfake.Ack) (string, string) {
	t.Helper()
	for _, c := range h.Slack.Calls() {
		if c.Method == "views.open" && strings.Contains(c.Body, ack.Trigger) {
			return c.TS, c.Body
		}
	}
	t.Fatal("views.open was not called with the command's trigger before the ack")
	return "", ""
}

// A certificate credential from Slack (issue 12 §1): the command opens the
// form filled in, the requester pastes a certificate, the approvers see its
// facts, BTP gets it as the btp CLI sends it, and the reveal shows what BTP
// returned. The requester's private key never reaches credbot.
func TestCertificateCredentialFromTheCommandThroughTheFormToTheReveal(t *testing.T) {
	transports(t, func(t *testing.T, h *harness) {
		ctx := ctxT(t)
		cert, key := certtest.New(t, certtest.Options{Key: certtest.RSA2048, CN: "payments-ci"})
		_, info, err := approval.CheckCertificate(cert, time.Now())
		if err != nil {
			t.Fatal(err)
		}

		ack, err := h.Workspace.Slash(ctx, Requester, "create "+subacct+" --name ci-cert --certificate --reason \"mTLS for CI\" --expires-in 30d")
		if err != nil || ack.Status != http.StatusOK || ack.Body != "" {
			t.Fatalf("create --certificate: %d %q %v (want an empty ack: the form is the answer)", ack.Status, ack.Body, err)
		}
		viewID, view := openedView(t, h, ack)
		for _, want := range []string{`initial_value":"` + btptest.DefaultSubaccount, `initial_value":"ci-cert`, `initial_value":"mTLS for CI`, `initial_value":"30d`, `block_id":"certificate`} {
			if !strings.Contains(view, want) {
				t.Errorf("the form is not filled in with %s: %.3000s", want, view)
			}
		}
		form := map[string]string{"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount, "name": "ci-cert",
			"access": "full", "reason": "mTLS for CI", "expires_in": "30d"}
		submit := func(certText string) map[string]string {
			t.Helper()
			v := map[string]string{"certificate": certText}
			for k, x := range form {
				v[k] = x
			}
			ack, err := h.Workspace.SubmitView(ctx, Requester, viewID, v)
			if err != nil {
				t.Fatal(err)
			}
			if ack.Body == "" {
				return nil
			}
			var resp struct {
				Action string            `json:"response_action"`
				Errors map[string]string `json:"errors"`
			}
			if err := json.Unmarshal([]byte(ack.Body), &resp); err != nil || resp.Action != "errors" {
				t.Fatalf("form ack %q", ack.Body)
			}
			return resp.Errors
		}
		// Opened with --certificate, the form wants one.
		if errs := submit(""); !strings.Contains(errs["certificate"], "Paste your X.509 client certificate") {
			t.Fatalf("no certificate: %v", errs)
		}
		if errs := submit(cert + cert); !strings.Contains(errs["certificate"], "more than one certificate") {
			t.Fatalf("a chain: %v", errs)
		}
		// Chat clients send CRLF line ends; the certificate is still one PEM.
		if errs := submit(strings.ReplaceAll(cert, "\n", "\r\n")); errs != nil {
			t.Fatalf("a good certificate was refused: %v", errs)
		}

		msg := h.approvalMessage(t, ctx, "ci-cert")
		for _, want := range []string{"Subject: CN=payments-ci,O=ACME", "(self-signed)", "Key: RSA 2048", "SHA-256: " + info.SHA256,
			"Valid: " + info.NotBefore.Format("2006-01-02 15:04 UTC") + " to " + info.NotAfter.Format("2006-01-02 15:04 UTC")} {
			if !strings.Contains(msg.Blocks, want) {
				t.Errorf("the approval message lacks %q: %s", want, msg.Blocks)
			}
		}
		h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
		dm := h.waitDM(t, ctx)

		creates := requestsOf(h.BTP, "create")
		if len(creates) != 1 {
			t.Fatalf("%d creates at BTP, want 1", len(creates))
		}
		// As the btp CLI sends a .pem file: the PEM with its newlines as one
		// string, LF line ends, a final newline (reference §5.5 and E5).
		if got := creates[0].Params["certificate"]; got != cert {
			t.Errorf("BTP got certificate %q, want the file's PEM %q", got, cert)
		}
		var body struct {
			ParamValues map[string]string `json:"paramValues"`
		}
		if err := json.Unmarshal(creates[0].Body, &body); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"certificate": cert, "name": "ci-cert", "readOnly": "false", "subaccount": btptest.DefaultSubaccount}
		if len(body.ParamValues) != len(want) {
			t.Errorf("create paramValues %v, want exactly %v (the recorded with_certificate shape)", body.ParamValues, want)
		}
		for k, v := range want {
			if body.ParamValues[k] != v {
				t.Errorf("create paramValues[%s] = %q, want %q", k, body.ParamValues[k], v)
			}
		}

		rev := h.click(t, ctx, Requester, dm, blockkit.ActionReveal)
		reply := slackfake.Reply(rev).Blocks
		for _, want := range []string{"clientid: ", "tokenurl: ", "/cert/oauth/token", "certurl: ", "url: ", "apiurl: ", "Certificate credential", info.SHA256} {
			if !strings.Contains(reply, want) {
				t.Errorf("the reveal lacks %q: %s", want, reply)
			}
		}
		if !strings.Contains(rev.Body, `"response_type":"ephemeral"`) {
			t.Fatalf("reveal not ephemeral: %s", rev.Body)
		}
		mine, _, err := h.App.Service.Requests(ctx, Requester.ID)
		if err != nil || len(mine) != 1 || mine[0].State != approval.StateDelivered || mine[0].Credential.Type != "client certificate" ||
			mine[0].Certificate != cert || mine[0].CertificateInfo == nil || mine[0].CertificateInfo.SHA256 != info.SHA256 {
			t.Fatalf("stored: %+v %v", mine, err)
		}
		// Verification is on, but the emulator's tokenurl is plain http here,
		// so there is no TLS to present the certificate over: skipped, and the
		// log says why (with BTP returning no key, it says the requester holds it).
		if !strings.Contains(h.logs.String(), `"msg":"btp skipping verification of a certificate credential"`) ||
			!strings.Contains(h.logs.String(), `"reason":"the tokenurl is not https`) {
			t.Error("the skipped verification of the certificate credential is not logged with its reason")
		}
		if _, st := h.slash(t, ctx, Requester, "status "+mine[0].ID); !strings.Contains(st.Body, "SHA-256: "+info.SHA256) {
			t.Errorf("status does not show the certificate: %s", st.Body)
		}
		// The requester's key was never anywhere: not in Redis, a log line,
		// a Slack call or at BTP.
		h.assertKeyNowhere(t, key)
	})
}

// A private key pasted into the form (or the command) is refused whole:
// nothing is recorded, nothing reaches BTP, and its text is not echoed.
func TestAPastedPrivateKeyIsRefusedAndStoredNowhere(t *testing.T) {
	h := start(t, nil)
	ctx := ctxT(t)
	cert, key := certtest.New(t, certtest.Options{})

	ack, err := h.Workspace.Slash(ctx, Requester, "create --certificate")
	if err != nil || ack.Status != http.StatusOK {
		t.Fatal(ack.Status, err)
	}
	viewID, _ := openedView(t, h, ack)
	for _, text := range []string{key, cert + key, "here:\n" + key} {
		sub, err := h.Workspace.SubmitView(ctx, Requester, viewID, map[string]string{
			"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount, "name": "leaky", "access": "full", "reason": "oops", "certificate": text,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sub.Body, `"response_action":"errors"`) || !strings.Contains(sub.Body, "private key") || !strings.Contains(sub.Body, "nothing was stored") {
			t.Fatalf("a private key in the form: ack %s", sub.Body)
		}
	}
	// And in a slash command, where it would be recorded before the ack.
	a, err := h.Workspace.Slash(ctx, Requester, "create "+subacct+" --name leaky --reason \""+key+"\"")
	if err != nil || a.Status != http.StatusOK || !strings.Contains(a.Body, "private key") {
		t.Fatalf("a private key in the command: %d %s %v", a.Status, a.Body, err)
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates at BTP", n)
	}
	if mine, _, err := h.App.Service.Requests(ctx, Requester.ID); err != nil || len(mine) != 0 {
		t.Fatalf("requests stored: %+v %v", mine, err)
	}
	h.assertKeyNowhere(t, key)
}

// assertKeyNowhere fails if any line of a private key's base64 is in Redis,
// the logs, a call the bot made to Slack (answers included) or at BTP.
func (h *harness) assertKeyNowhere(t *testing.T, key string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(key), "\n")
	lines = lines[1 : len(lines)-1]
	h.assertSecretNowhere(t, lines...)
	for _, c := range h.Slack.Calls() {
		if c.Method == "views.open" || c.Method == "response_url" || strings.HasPrefix(c.Method, "chat.") {
			for _, l := range lines {
				if strings.Contains(c.Body, l) || strings.Contains(c.Params.Encode(), l) {
					t.Errorf("the private key is in the bot's %s call", c.Method)
				}
			}
		}
	}
	for _, r := range h.BTP.Requests() {
		for _, l := range lines {
			if strings.Contains(string(r.Body), l) {
				t.Errorf("the private key reached BTP in a %s", r.Action)
			}
		}
	}
}

// A certificate that expires while its request waits for approval is not sent
// to BTP: the request fails, saying why, and nothing is created.
func TestACertificateThatExpiredWhileWaitingIsNotMinted(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	h := startWith(t, map[string]string{"CREDBOT_SWEEP_INTERVAL": "1h"}, Deps{Clock: clock})
	ctx := ctxT(t)
	cert, _ := certtest.New(t, certtest.Options{NotBefore: clock.Now().Add(-time.Hour), NotAfter: clock.Now().Add(2 * time.Hour)})
	ack, err := h.Workspace.Slash(ctx, Requester, "create "+subacct+" --name short-lived --certificate --reason \"mTLS\"")
	if err != nil || ack.Status != http.StatusOK {
		t.Fatal(ack.Status, err)
	}
	viewID, _ := openedView(t, h, ack)
	if a, err := h.Workspace.SubmitView(ctx, Requester, viewID, map[string]string{"scope_kind": "subaccount", "scope_id": btptest.DefaultSubaccount,
		"name": "short-lived", "access": "full", "reason": "mTLS", "certificate": cert}); err != nil || a.Body != "" {
		t.Fatalf("submit: %q %v", a.Body, err)
	}
	msg := h.approvalMessage(t, ctx, "short-lived")
	clock.Advance(3 * time.Hour) // approval came late
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	told, err := h.Slack.WaitFor(ctx, func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Channel == "D0LOCALREQ" && strings.Contains(c.Text(), "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(told.Text(), "certificate expired") || !strings.Contains(told.Text(), "nothing was created") {
		t.Fatalf("the requester was told %q", told.Text())
	}
	if n := h.BTP.Count("create"); n != 0 {
		t.Fatalf("%d creates at BTP with an expired certificate", n)
	}
}
