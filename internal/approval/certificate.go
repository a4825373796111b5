package approval

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A certificate credential is an API credential that authenticates with an
// X.509 client certificate instead of a client secret. The requester makes the
// key pair and keeps the private key; credbot takes only the certificate,
// which is public, checks it here before anything is stored, shows its facts
// to the approvers, and hands it to BTP as the btp CLI does (one PEM string in
// the create's "certificate" parameter).

// MaxCertificateText bounds the pasted PEM: Slack's plain-text input takes at
// most 3000 characters, and one client certificate of any sane key needs well
// under that (a 4096-bit RSA certificate is about 1.9 kB).
const MaxCertificateText = 3000

// ErrPrivateKey is pasted text that holds a private key. It is refused before
// anything is stored, and its text is never repeated.
var ErrPrivateKey = errors.New("a private key was given where a certificate belongs")

// CertificateInfo is what approvers and the requester are shown of a
// certificate: all of it public.
type CertificateInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"` // fingerprint of the DER, AB:CD:… as openssl prints it
	Key       string    `json:"key"`    // e.g. "RSA 2048", "ECDSA P-256"
}

// SelfSigned reports whether the certificate names itself as its issuer.
func (c CertificateInfo) SelfSigned() bool { return c.Subject == c.Issuer }

// CheckCertificate validates pasted text as one X.509 client certificate that
// BTP can use now, and returns it as canonical PEM (one CERTIFICATE block,
// 64-column base64, a final newline: what a .pem file holds and the btp CLI
// sends) with its facts. Error messages are for the person who pasted it and
// never quote the text.
//
// It refuses: a private key anywhere in the text (ErrPrivateKey); more than
// MaxCertificateText; anything but exactly one CERTIFICATE block (no chains,
// no text around it); a certificate that does not parse, is not yet valid or
// has expired at now; a CA certificate; and keys other than RSA of at least
// 2048 bits and ECDSA on P-256, P-384 or P-521. Ed25519 is refused because
// BTP's documentation and recorded traffic give no sign that XSUAA accepts it
// for client authentication; a credential that cannot log in is worse than a
// refusal now.
func CheckCertificate(text string, now time.Time) (string, CertificateInfo, error) {
	bad := func(format string, a ...any) (string, CertificateInfo, error) {
		return "", CertificateInfo{}, &UserError{Msg: fmt.Sprintf(format, a...), Err: ErrInvalid}
	}
	// First, before any other message: a private key must be called what it is.
	if strings.Contains(strings.ToUpper(text), "PRIVATE KEY") {
		return "", CertificateInfo{}, &UserError{Err: ErrPrivateKey, Msg: "That text holds a private key. credbot never takes a private key, " +
			"and nothing was stored: paste only the certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----). " +
			"The key has passed through Slack, so treat it as exposed: make a new key pair and certificate."}
	}
	if len(text) > MaxCertificateText {
		return bad("The certificate text is longer than %d characters. Paste one client certificate, without its chain.", MaxCertificateText)
	}
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return bad("Paste the certificate, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----.")
	}
	if !strings.HasPrefix(text, "-----BEGIN ") {
		return bad("That is not a PEM certificate: paste the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, with nothing before it.")
	}
	var der []byte
	rest := []byte(text)
	for n := 0; ; n++ {
		block, r := pem.Decode(rest)
		if block == nil {
			if n == 0 {
				return bad("That is not a PEM certificate: its BEGIN and END lines or its base64 are damaged.")
			}
			if len(strings.TrimSpace(string(rest))) != 0 {
				return bad("There is text after the certificate's END line. Paste one certificate and nothing else.")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return bad("That PEM holds something other than a certificate. Paste the block that begins -----BEGIN CERTIFICATE-----.")
		}
		if n == 1 {
			return bad("That is more than one certificate. Paste only your client certificate, not its chain: BTP takes one certificate.")
		}
		der, rest = block.Bytes, r
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return bad("The certificate does not parse as X.509 (%v).", err)
	}
	info := CertificateInfo{
		Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		SHA256: fingerprint(der),
	}
	switch {
	case now.Before(cert.NotBefore):
		return bad("The certificate is not valid before %s. Use one that is valid now.", info.NotBefore.Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return bad("The certificate expired on %s. Make a new one.", info.NotAfter.Format(time.RFC3339))
	case cert.BasicConstraintsValid && cert.IsCA:
		return bad("That is a CA certificate (BasicConstraints CA:TRUE). BTP needs your client certificate, which is not a CA.")
	}
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 {
			return bad("The certificate's RSA key has %d bits; it needs at least 2048.", bits)
		}
		info.Key = fmt.Sprintf("RSA %d", bits)
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			info.Key = "ECDSA " + k.Curve.Params().Name
		default:
			return bad("The certificate's ECDSA key is on a curve credbot does not accept; use P-256, P-384 or P-521.")
		}
	case ed25519.PublicKey:
		return bad("The certificate has an Ed25519 key, which BTP is not known to accept for API credentials. Use RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521).")
	default:
		return bad("The certificate's key type is not accepted. Use RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521).")
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), info, nil
}

// fingerprint is the SHA-256 of der as `openssl x509 -fingerprint -sha256`
// prints it, so a requester can compare it with their own file.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}
