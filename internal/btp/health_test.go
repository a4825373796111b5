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
