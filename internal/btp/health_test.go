package btp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// A login that keeps failing outlasts the health check's patience (the login
// goes on for the other callers, retrying); the check still says why it
// fails, the last attempt's error, not only that it stopped waiting.
func TestHealthNamesTheRealCauseOfALoginStillRetrying(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "login", Status: http.StatusBadGateway, Times: -1})
	sleeping, release := make(chan struct{}, 16), make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the emulator closes
	btp.SetSleep(f.client, func(ctx context.Context, _ time.Duration) error {
		sleeping <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.client.Health(ctx) }()
	<-sleeping // the first attempt failed; the login waits to try again
	cancel()   // the health check gives up waiting
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("Health = %v, want the login's real cause (502 from the server)", err)
	}
}

// Each refused setting names the variable an operator sets, so that the
// startup's list of configuration problems says what to change.
func TestNewNamesTheVariableOfEachBadSetting(t *testing.T) {
	login := func(c btp.Config) btp.Config { c.Username, c.Password = "u", "p"; return c }
	for want, cfg := range map[string]btp.Config{
		"BTP_CLI_SERVER_URL":   login(btp.Config{ServerURL: "cli.btp.cloud.sap", GlobalAccount: "acme-ga"}),
		"BTP_PROTOCOL_VERSION": login(btp.Config{ProtocolVersion: "2.106.1", GlobalAccount: "acme-ga"}),
		"BTP_GLOBALACCOUNT":    login(btp.Config{GlobalAccount: "03760ecf-9d89-4189-a92a-1c7efed09298"}),
		"BTP_IDP":              {GlobalAccount: "acme-ga", Assertion: "jwt"},
		"BTP_TLS_IDP_URL":      {GlobalAccount: "acme-ga", Username: "u", TLSClientCertificate: "c", TLSClientKey: "k", TLSIdPURL: "http://ias.example"},
		"BTP_PASSWORD":         {GlobalAccount: "acme-ga"},
	} {
		_, err := btp.New(cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want an error naming %s", err, want)
		}
	}
}
