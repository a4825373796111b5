package btp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

var (
	subaccount = approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}
	directory  = approval.Scope{Kind: approval.ScopeDirectory, ID: btptest.DefaultDirectory}
	globalAcct = approval.Scope{Kind: approval.ScopeGlobalAccount, ID: btptest.DefaultGlobalAccount}
	allScopes  = []approval.Scope{subaccount, directory, globalAcct}
)

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sleeps records the waits a client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type fixture struct {
	srv    *btptest.Server
	client *btp.Client
	logs   *syncBuffer
	sleeps *sleeps
}

// newFixture starts an emulator with defaults and a client logged in as its
// default user, with instant retries and JSON logs captured.
func newFixture(t *testing.T, opts btptest.Options, edit ...func(*btp.Config)) *fixture {
	t.Helper()
	srv := btptest.NewServer(opts)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	cfg := btp.Config{
		ServerURL:     srv.URL(),
		GlobalAccount: srv.GlobalAccount(),
		Username:      btptest.DefaultUser,
		Password:      btptest.DefaultPassword,
		IdP:           opts.IdP,
		UserAgent:     "credbot-test",
		HTTPClient:    srv.Client(),
		Logger:        slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxRetries:    3,
		MinBackoff:    time.Millisecond,
		MaxBackoff:    4 * time.Millisecond,
	}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := btp.New(cfg)
	if err != nil {
		t.Fatalf("btp.New: %v", err)
	}
	sl := &sleeps{}
	btp.SetSleep(c, sl.sleep)
	return &fixture{srv: srv, client: c, logs: logs, sleeps: sl}
}

// testCertificate returns a fresh self-signed certificate and its key, PEM.
func testCertificate(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "credbot-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

func secretField(s approval.Secret, name string) string {
	for _, f := range s.Fields() {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
