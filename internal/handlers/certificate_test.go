package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/certtest"
	"github.com/slack-go/slack"
)

// "/credbot create ... --certificate" opens the form with the flags given
// filled in; a PEM never travels in a slash command.
func TestCreateWithCertificateOpensTheFormFilledIn(t *testing.T) {
	sa := "11111111-2222-4333-8444-555555555555"
	for text, want := range map[string]Command{
		"create --certificate": {Verb: "create", Modal: true, Certificate: true},
		`create --subaccount ` + sa + ` --name ci-cert --read-only --certificate --reason "mTLS for CI" --expires-in 30d`: {
			Verb: "create", Modal: true, Certificate: true, HasScope: true, Scope: approval.Scope{Kind: approval.ScopeSubaccount, ID: sa},
			Name: "ci-cert", ReadOnly: true, Reason: "mTLS for CI", ExpiresIn: 30 * 24 * time.Hour},
	} {
		got, err := ParseCommand(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if got.Verb != want.Verb || got.Modal != want.Modal || got.Certificate != want.Certificate || got.Scope != want.Scope ||
			got.Name != want.Name || got.ReadOnly != want.ReadOnly || got.Reason != want.Reason || got.ExpiresIn != want.ExpiresIn {
			t.Errorf("%s: %+v, want %+v", text, got, want)
		}
		m := createModal(got)
		if m.PrivateMetadata != metaCertificate {
			t.Errorf("%s: private_metadata %q", text, m.PrivateMetadata)
		}
		if certInput(t, m).Optional {
			t.Errorf("%s: with --certificate the certificate is optional", text)
		}
	}
	m := createModal(Command{Verb: "create", Modal: true, Certificate: true, HasScope: true,
		Scope: approval.Scope{Kind: approval.ScopeDirectory, ID: "22222222-3333-4444-8555-666666666666"}, Name: "n", ReadOnly: true, Reason: "r", ExpiresIn: 72 * time.Hour})
	js, _ := m.Blocks.MarshalJSON()
	for _, want := range []string{`"initial_value":"22222222-3333-4444-8555-666666666666"`, `"initial_value":"n"`, `"initial_value":"r"`, `"initial_value":"3d"`, `"value":"directory"`, `"block_id":"certificate"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("the filled-in form lacks %s: %s", want, js)
		}
	}
	if bare := createModal(Command{Verb: "create", Modal: true}); bare.PrivateMetadata != "" || !certInput(t, bare).Optional {
		t.Errorf("a bare create's form requires a certificate: %q", bare.PrivateMetadata)
	}

	_, key := certtest.New(t, certtest.Options{})
	for text, want := range map[string]string{
		"create --certificate=yes":                       "takes no value",
		"create --certificate ./client.pem":              "takes no value",
		"create --certificate " + strings.Fields(key)[0]: "", // "-----BEGIN" alone: a PEM in a command
		"create --certificate \"" + key + "\"":           "private key",
		"create --subaccount " + sa + " --name x --reason \"" + strings.ReplaceAll(key, "\n", " ") + "\"": "private key",
		"create --certificate \"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\"":           "does not fit a slash command",
	} {
		_, err := ParseCommand(text)
		if err == nil || (want != "" && !strings.Contains(err.Error(), want)) {
			t.Errorf("%.50q: %v, want an error saying %q", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), strings.Split(key, "\n")[1]) {
			t.Errorf("%.50q: the error repeats the key", text)
		}
	}
}

func TestCreateFormTakesACertificateAndRefusesAPrivateKeyWhole(t *testing.T) {
	cert, key := certtest.New(t, certtest.Options{})
	base := map[string]string{blockScopeKind: "subaccount", blockScopeID: "11111111-2222-4333-8444-555555555555",
		blockName: "ci-cert", blockAccess: "full", blockReason: "mTLS"}
	with := func(v string) map[string]string {
		m := map[string]string{blockCert: v}
		for k, x := range base {
			m[k] = x
		}
		return m
	}
	sub, errs := parseCreateForm(form(with("\r\n"+strings.ReplaceAll(cert, "\n", "\r\n"))), true, time.Now())
	if len(errs) > 0 || sub.Certificate != cert || sub.Name != "ci-cert" {
		t.Fatalf("a good certificate: %v %+v", errs, sub)
	}
	if _, errs := parseCreateForm(form(base), true, time.Now()); errs[blockCert] == "" {
		t.Error("a form opened with --certificate took no certificate")
	}
	if sub, errs := parseCreateForm(form(base), false, time.Now()); len(errs) > 0 || sub.Certificate != "" {
		t.Errorf("a bare form without a certificate: %v %+v", errs, sub)
	}
	for _, v := range []string{key, cert + key} {
		sub, errs := parseCreateForm(form(with(v)), false, time.Now())
		if !strings.Contains(errs[blockCert], "private key") || len(errs) != 1 || sub != (approval.Submission{}) {
			t.Errorf("a private key: %v %+v", errs, sub)
		}
		if strings.Contains(errs[blockCert], strings.Split(key, "\n")[1]) {
			t.Error("the field error repeats the key")
		}
	}
	if _, errs := parseCreateForm(form(with("not a certificate")), false, time.Now()); !strings.Contains(errs[blockCert], "not a PEM") {
		t.Errorf("garbage: %v", errs)
	}
}

func certInput(t *testing.T, m slack.ModalViewRequest) *slack.InputBlock {
	t.Helper()
	for _, b := range m.Blocks.BlockSet {
		if ib, ok := b.(*slack.InputBlock); ok && ib.BlockID == blockCert {
			return ib
		}
	}
	t.Fatal("the form has no certificate input")
	return nil
}

// Approvers see what they approve: subject, issuer, validity, key and
// fingerprint, as plain text (the subject is the requester's text).
func TestApprovalMessageShowsTheCertificateFacts(t *testing.T) {
	cert, _ := certtest.New(t, certtest.Options{CN: "<!channel> ci"})
	_, info, err := approval.CheckCertificate(cert, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := hostile(0)
	r.CertificateInfo = &info
	js, _ := slack.Blocks{BlockSet: blockkit.ApprovalBlocks(r, approval.QuorumStatus{Need: 1}, "")}.MarshalJSON()
	for _, want := range []string{"Subject: CN=", "!channel\\\\\\u003e ci,O=ACME", "(self-signed)", "Key: ECDSA P-256", "SHA-256: " + info.SHA256,
		"Valid: " + blockkit.When(info.NotBefore) + " to " + blockkit.When(info.NotAfter)} {
		if !strings.Contains(string(js), want) {
			t.Errorf("approval message lacks %q: %s", want, js)
		}
	}
	if !strings.Contains(string(js), `{"type":"plain_text","text":"Certificate credential`) {
		t.Errorf("the certificate facts are not plain_text: %s", js)
	}
}
