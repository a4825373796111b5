package btp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// leaks returns the issued secrets, or any base64 line of a PEM key, found in text.
func leaks(secrets []string, text string) []string {
	var found []string
	for _, s := range secrets {
		needles := []string{s}
		if strings.HasPrefix(s, "-----BEGIN") {
			for _, line := range strings.Split(s, "\n") {
				if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
					needles = append(needles, line)
				}
			}
		} else if _, tail, ok := strings.Cut(s, "$"); ok {
			needles = append(needles, tail)
		}
		for _, n := range needles {
			if strings.Contains(text, n) {
				found = append(found, n[:8]+"…")
			}
		}
	}
	return found
}

func TestSecretNeverInErrorsLogsOrPrintedValues(t *testing.T) {
	// TLS lets the certificate credential be verified over mutual TLS too.
	f := newFixture(t, btptest.Options{TLS: true}, func(c *btp.Config) { c.VerifyCredentials = true })
	ctx := context.Background()
	cert, _ := testCertificate(t)
	var out strings.Builder
	printed := slog.New(slog.NewJSONHandler(&out, nil))

	show := func(is approval.Issued) {
		fmt.Fprintf(&out, "%v %+v %#v %s %q\n", is, is, is, is.Secret, is.Secret)
		b, _ := json.Marshal(is)
		out.Write(b)
		printed.Info("issued", "issued", is, "secret", is.Secret)
	}

	is, err := f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	show(is)
	is, err = f.client.Create(ctx, approval.CredentialSpec{Scope: directory, Name: "cert", Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	if secretField(is.Secret, "key") == "" {
		t.Fatal("certificate credential without key")
	}
	show(is)
	f.srv.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
	is, err = f.client.Create(ctx, approval.CredentialSpec{Scope: globalAcct, Name: "dropped", OwnsName: true})
	if err != nil {
		t.Fatal(err)
	}
	show(is)

	// Failures that happen while the secret is in hand.
	f.srv.Inject(btptest.Fault{Action: "token", Times: -1, Status: http.StatusUnauthorized,
		Header: http.Header{"X-Echo": {"nothing"}}})
	_, err = f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "unverifiable"})
	if !errors.Is(err, btp.ErrVerification) {
		t.Fatalf("Create with a refusing token endpoint = %v", err)
	}
	fmt.Fprintf(&out, "%v %+v\n", err, err)

	if got := f.srv.Count("token"); got < 3 {
		t.Errorf("token requests %d: every verified create should have asked for a token", got)
	}
	secrets := f.srv.Secrets()
	if len(secrets) < 5 {
		t.Fatalf("server issued %d secrets", len(secrets))
	}
	if l := leaks(secrets, out.String()); len(l) != 0 {
		t.Errorf("secrets printed: %v", l)
	}
	if l := leaks(secrets, f.logs.String()); len(l) != 0 {
		t.Errorf("secrets logged: %v", l)
	}
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Errorf("printing a secret should say [REDACTED]")
	}
}

func TestEveryLogLineAndErrorCarriesTheCorrelationID(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	f.srv.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
	f.srv.Inject(btptest.Fault{Action: "list", Times: 1, Status: http.StatusBadGateway})
	if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "x", OwnsName: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.List(ctx, subaccount); err != nil {
		t.Fatal(err)
	}
	var errs []error
	_, err := f.client.Get(ctx, subaccount, "missing")
	errs = append(errs, err)
	_, err = f.client.Create(ctx, approval.CredentialSpec{Scope: subaccount, Name: "bad name!"})
	errs = append(errs, err)
	errs = append(errs, f.client.Delete(ctx, approval.Scope{Kind: approval.ScopeDirectory, ID: "00000000-0000-4000-8000-000000000000"}, "x"))
	for _, err := range errs {
		var e *btp.Error
		if !errors.As(err, &e) || e.CorrelationID == "" || !strings.Contains(err.Error(), "correlation id "+e.CorrelationID) {
			t.Errorf("error %q lacks its correlation id", err)
		}
	}
	lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if id, _ := rec["correlation_id"].(string); !uuidRE.MatchString(id) {
			t.Errorf("log line without correlation id: %s", line)
		}
	}
	// The correlation id of a create is reused for its retries and its
	// resolution by name, so one id tells the whole story.
	ids := map[string]bool{}
	for _, r := range f.srv.Requests() {
		if r.Params["subaccount"] != "" && r.Params["name"] == "x" {
			ids[r.Headers.Get("X-Correlationid")] = true
		}
	}
	if len(ids) != 1 {
		t.Errorf("create, its lookup and its cleanup used %d correlation ids, want 1", len(ids))
	}
}

func TestVerifiedCertificateCredentialGetsATokenOverMutualTLS(t *testing.T) {
	f := newFixture(t, btptest.Options{TLS: true}, func(c *btp.Config) { c.VerifyCredentials = true })
	cert, _ := testCertificate(t)
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: globalAcct, Name: "mtls", Certificate: cert}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var token []int
	for _, r := range f.srv.Requests() {
		if r.Action == "token" {
			token = append(token, r.Status)
		}
	}
	if len(token) != 1 || token[0] != http.StatusOK {
		t.Errorf("token requests %v, want one granted", token)
	}
}

func TestFailedVerificationDeletesTheCredentialAndFails(t *testing.T) {
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = true })
	f.srv.Inject(btptest.Fault{Action: "token", Times: -1, Status: http.StatusUnauthorized})
	_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "broken"})
	var e *btp.Error
	if !errors.Is(err, btp.ErrVerification) || !errors.As(err, &e) || e.Temporary() {
		t.Fatalf("Create = %v, want a permanent ErrVerification", err)
	}
	if live := f.srv.Live(subaccount); len(live) != 0 {
		t.Errorf("an unusable credential was left behind: %v", live)
	}
	if n := f.srv.Count("delete"); n != 1 {
		t.Errorf("deletes %d, want 1", n)
	}
}

// A certificate credential whose mutual-TLS token request is refused is
// deleted like a secret one, and the error says so to the lifecycle.
func TestFailedMutualTLSVerificationDeletesTheCertificateCredential(t *testing.T) {
	f := newFixture(t, btptest.Options{TLS: true}, func(c *btp.Config) { c.VerifyCredentials = true })
	f.srv.Inject(btptest.Fault{Action: "token", Times: -1, Status: http.StatusUnauthorized})
	cert, _ := testCertificate(t)
	_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: globalAcct, Name: "mtls-refused", Certificate: cert, OwnsName: true})
	if !errors.Is(err, btp.ErrVerification) || !errors.Is(err, approval.ErrUnverified) {
		t.Fatalf("Create = %v, want ErrVerification matching approval.ErrUnverified", err)
	}
	if live := f.srv.Live(globalAcct); len(live) != 0 {
		t.Errorf("an unusable certificate credential was left behind: %v", live)
	}
	if n := f.srv.Count("token"); n == 0 {
		t.Error("no token request: the certificate credential was not verified")
	}
}

// A token endpoint that refuses a brand-new client for a moment (UAA
// instances learn of it one after another) or stumbles (503, a dropped
// connection) is asked again with backoff: one hiccup must not delete a good
// credential whose secret exists only now.
func TestVerificationRetriesAFreshClientsFirstRefusals(t *testing.T) {
	for _, fault := range []btptest.Fault{
		{Action: "token", Times: 2, Status: http.StatusUnauthorized},
		{Action: "token", Times: 1, Status: http.StatusServiceUnavailable},
	} {
		f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = true })
		f.srv.Inject(fault)
		is, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "fresh", OwnsName: true})
		if err != nil {
			t.Fatalf("token %d x%d: Create = %v, want the credential once the endpoint grants a token", fault.Status, fault.Times, err)
		}
		if is.Credential.Name != "fresh" || len(f.srv.Live(subaccount)) != 1 || f.srv.Count("delete") != 0 {
			t.Errorf("token %d x%d: live %v, deletes %d", fault.Status, fault.Times, f.srv.Live(subaccount), f.srv.Count("delete"))
		}
		if got := f.srv.Count("token"); got != fault.Times+1 {
			t.Errorf("token %d x%d: %d token requests, want %d", fault.Status, fault.Times, got, fault.Times+1)
		}
	}
}

// A grant the endpoint refuses for good (a 400: wrong grant, bad request) is
// not asked again: the credential is deleted at once.
func TestVerificationDoesNotRetryAPermanentRefusal(t *testing.T) {
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = true })
	f.srv.Inject(btptest.Fault{Action: "token", Times: -1, Status: http.StatusBadRequest})
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "bad-grant", OwnsName: true}); !errors.Is(err, btp.ErrVerification) {
		t.Fatalf("Create = %v, want ErrVerification", err)
	}
	// One Token call: oauth2's auto-detection tries the header, then the form.
	if got := f.srv.Count("token"); got > 2 {
		t.Errorf("%d token requests for a permanent refusal, want one grant attempt (2 requests at most)", got)
	}
	if live := f.srv.Live(subaccount); len(live) != 0 {
		t.Errorf("left behind: %v", live)
	}
}
