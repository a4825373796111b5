package approval_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/certtest"
)

func TestCheckCertificateTakesOneClientCertificateAndSaysWhatItIs(t *testing.T) {
	now := time.Now()
	for _, key := range []string{certtest.P256, certtest.P384, certtest.RSA2048} {
		cert, _ := certtest.New(t, certtest.Options{Key: key, CN: "ci-" + key})
		// What chat clients do to pasted text: CRLF, indentation, blank lines.
		pasted := "\n  " + strings.ReplaceAll(cert, "\n", "\r\n") + "\n\n"
		got, info, err := approval.CheckCertificate(pasted, now)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got != cert {
			t.Errorf("%s: canonical PEM differs from the file's:\n%q\n%q", key, got, cert)
		}
		if !strings.Contains(info.Subject, "CN=ci-"+key) || info.Issuer != info.Subject || !info.SelfSigned() {
			t.Errorf("%s: subject %q issuer %q", key, info.Subject, info.Issuer)
		}
		if len(info.SHA256) != 32*3-1 || strings.Count(info.SHA256, ":") != 31 {
			t.Errorf("%s: fingerprint %q", key, info.SHA256)
		}
		if want := map[string]string{certtest.P256: "ECDSA P-256", certtest.P384: "ECDSA P-384", certtest.RSA2048: "RSA 2048"}[key]; info.Key != want {
			t.Errorf("%s: key %q, want %q", key, info.Key, want)
		}
		if info.NotAfter.Before(now) || info.NotBefore.After(now) {
			t.Errorf("%s: validity %v – %v", key, info.NotBefore, info.NotAfter)
		}
	}
}

func TestCheckCertificateRefusesWhatBTPCannotUseAndNeverQuotesIt(t *testing.T) {
	now := time.Now()
	good, key := certtest.New(t, certtest.Options{})
	other, _ := certtest.New(t, certtest.Options{CN: "intermediate"})
	gen := func(o certtest.Options) string { c, _ := certtest.New(t, o); return c }
	cases := map[string]struct {
		text string
		want string
	}{
		"private key alone":        {key, "private key"},
		"certificate and key":      {good + key, "private key"},
		"RSA PRIVATE KEY":          {strings.ReplaceAll(key, "PRIVATE KEY", "RSA PRIVATE KEY"), "private key"},
		"key, lower case":          {strings.ToLower(key), "private key"},
		"empty":                    {"   \n", "Paste the certificate"},
		"garbage":                  {"hello, world", "not a PEM certificate"},
		"garbage before":           {"subject=CN=x\n" + good, "not a PEM certificate"},
		"garbage after":            {good + "trailing words", "text after"},
		"damaged base64":           {strings.Replace(good, "\n", "\n!!!!", 2), "not a PEM certificate"},
		"not a certificate":        {strings.ReplaceAll(good, "CERTIFICATE", "PUBLIC KEY"), "something other than a certificate"},
		"chain":                    {good + other, "more than one certificate"},
		"not X.509":                {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "does not parse as X.509"},
		"too long":                 {good + strings.Repeat(" ", approval.MaxCertificateText), "longer than"},
		"expired":                  {gen(certtest.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}), "expired on"},
		"not yet valid":            {gen(certtest.Options{NotBefore: now.Add(time.Hour)}), "not valid before"},
		"CA":                       {gen(certtest.Options{CA: true}), "CA certificate"},
		"RSA 1024":                 {gen(certtest.Options{Key: certtest.RSA1024}), "1024 bits"},
		"P-224":                    {gen(certtest.Options{Key: certtest.P224}), "curve"},
		"Ed25519":                  {gen(certtest.Options{Key: certtest.Ed25519}), "Ed25519"},
		"key hidden in a chain":    {good + "\n" + key + other, "private key"},
		"ENCRYPTED PRIVATE KEY":    {strings.ReplaceAll(key, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), "private key"},
		"OPENSSH PRIVATE KEY":      {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "private key"},
		"certificate inside words": {"my cert: " + good, "not a PEM certificate"},
	}
	body := strings.Split(strings.TrimSpace(key), "\n")[1] // a line of the key's base64
	for name, tc := range cases {
		got, info, err := approval.CheckCertificate(tc.text, now)
		if err == nil {
			t.Errorf("%s: accepted (%q)", name, info.Subject)
			continue
		}
		if got != "" {
			t.Errorf("%s: returned text with the error", name)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q does not say %q", name, err, tc.want)
		}
		if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), "MII") {
			t.Errorf("%s: the message quotes the pasted text: %q", name, err)
		}
		var ue *approval.UserError
		if !errors.As(err, &ue) {
			t.Errorf("%s: %T is not a UserError", name, err)
		}
		if strings.Contains(tc.want, "private key") != errors.Is(err, approval.ErrPrivateKey) {
			t.Errorf("%s: errors.Is(ErrPrivateKey) = %v", name, errors.Is(err, approval.ErrPrivateKey))
		}
	}
}

func FuzzCheckCertificate(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		pemText, _, err := approval.CheckCertificate(s, time.Now())
		if err == nil && (!strings.HasPrefix(pemText, "-----BEGIN CERTIFICATE-----\n") || strings.Contains(strings.ToUpper(s), "PRIVATE KEY")) {
			t.Fatalf("accepted %q as %q", s, pemText)
		}
	})
}
