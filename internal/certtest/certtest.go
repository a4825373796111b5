// Package certtest makes X.509 client certificates for tests: the kind a
// requester pastes into the create form, and the kinds credbot must refuse.
package certtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Key types New can make.
const (
	RSA2048 = "rsa2048"
	RSA1024 = "rsa1024"
	P256    = "p256"
	P384    = "p384"
	P224    = "p224"
	Ed25519 = "ed25519"
)

// Options describe one certificate; zero values give a self-signed ECDSA
// P-256 client certificate valid from an hour ago for 30 days.
type Options struct {
	Key       string
	CN        string
	NotBefore time.Time
	NotAfter  time.Time
	CA        bool
}

// New returns a certificate and its private key, both as PEM.
func New(t testing.TB, o Options) (certPEM, keyPEM string) {
	t.Helper()
	if o.CN == "" {
		o.CN = "ci-payments.acme.example"
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = o.NotBefore.Add(30 * 24 * time.Hour)
	}
	var (
		priv crypto.Signer
		err  error
	)
	switch o.Key {
	case "", P256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case P224:
		priv, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case RSA2048:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("certtest: unknown key %q", o.Key)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: o.CN, Organization: []string{"ACME"}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  o.CA,
	}
	if o.CA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer := priv
	if o.Key == P224 {
		// x509 signs with P-256, P-384 and P-521 only: another key signs.
		if signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}
