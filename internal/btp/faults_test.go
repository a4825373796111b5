package btp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

// tokenWorks asks the emulator's token endpoint for a client_credentials token.
func tokenWorks(t *testing.T, c approval.Credential, secret string) bool {
	t.Helper()
	cc := clientcredentials.Config{ClientID: c.ClientID, ClientSecret: secret, TokenURL: c.TokenURL}
	_, err := cc.Token(context.Background())
	return err == nil
}

func counts(s *btptest.Server) map[string]int {
	return map[string]int{"create": s.Count("create"), "get": s.Count("get"), "delete": s.Count("delete")}
}

func wantCounts(t *testing.T, s *btptest.Server, create, get, del int) {
	t.Helper()
	got := counts(s)
	if got["create"] != create || got["get"] != get || got["delete"] != del {
		t.Errorf("requests create/get/delete = %d/%d/%d, want %d/%d/%d", got["create"], got["get"], got["delete"], create, get, del)
	}
}

func TestCreateAfterDroppedConnectionLeavesOneLiveCredential(t *testing.T) {
	for _, verify := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "verified"}[verify], func(t *testing.T) {
			f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.VerifyCredentials = verify })
			f.srv.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
			spec := approval.CredentialSpec{Scope: subaccount, Name: "req-42-alice", OwnsName: true}
			is, err := f.client.Create(context.Background(), spec)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if live := f.srv.Live(subaccount); !slices.Equal(live, []string{spec.Name}) {
				t.Fatalf("live credentials %v, want exactly [%s]", live, spec.Name)
			}
			// The first create committed and its answer was lost: the client
			// found it by name, deleted it and created it again.
			wantCounts(t, f.srv, 2, 1, 1)
			issued := f.srv.Secrets()
			if len(issued) != 2 {
				t.Fatalf("server issued %d secrets, want 2", len(issued))
			}
			held := secretField(is.Secret, "clientsecret")
			if held != issued[1] {
				t.Fatalf("the held secret is not the live credential's")
			}
			if !tokenWorks(t, is.Credential, held) {
				t.Errorf("the token endpoint refuses the held secret")
			}
			if tokenWorks(t, is.Credential, issued[0]) {
				t.Errorf("the lost secret of the orphan still works")
			}
		})
	}
}

func TestCreateAfterServerErrorThatCommittedLeavesOneLiveCredential(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFixture(t, btptest.Options{})
			f.srv.Inject(btptest.Fault{Action: "create", Status: status, Commit: true})
			is, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: directory, Name: "after-5xx", OwnsName: true})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if live := f.srv.Live(directory); len(live) != 1 {
				t.Fatalf("live %v", live)
			}
			wantCounts(t, f.srv, 2, 1, 1)
			if !tokenWorks(t, is.Credential, secretField(is.Secret, "clientsecret")) {
				t.Errorf("held secret refused")
			}
		})
	}
}

func TestCreateAfterServerErrorThatDidNotCommitCreatesAgainWithoutDeleting(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", Status: http.StatusBadGateway})
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: globalAcct, Name: "after-502", ReadOnly: true}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wantCounts(t, f.srv, 2, 1, 0)
	if live := f.srv.Live(globalAcct); len(live) != 1 {
		t.Errorf("live %v", live)
	}
}

func TestCreateRetriesCleanGatewayTimeoutAsIs(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", Status: http.StatusGatewayTimeout,
		Header: http.Header{"X-Cpcli-Server-Message": {btptest.MessageNotSentToBackend}}})
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "clean-504"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// "not sent to the backend" needs no lookup by name.
	wantCounts(t, f.srv, 2, 0, 0)
}

func TestCreateRetriesRateLimitHonouringRetryAfter(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "limited"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wantCounts(t, f.srv, 2, 0, 0)
	waits := f.sleeps.all()
	if len(waits) != 1 || waits[0] < 3*time.Second {
		t.Errorf("waits %v, want one of at least the 3s Retry-After", waits)
	}
}

func TestGetHonoursRetryAfterThenSucceeds(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "list", Times: 2, Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	if _, err := f.client.List(context.Background(), directory); err != nil {
		t.Fatalf("List: %v", err)
	}
	if n := f.srv.Count("list"); n != 3 {
		t.Errorf("list requests %d, want 3", n)
	}
	for _, w := range f.sleeps.all() {
		if w < 2*time.Second {
			t.Errorf("waited %v, less than Retry-After", w)
		}
	}
}

func TestRetryAfterBeyondTheCapIsReturnedAtOnce(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "get", Status: http.StatusTooManyRequests, RetryAfter: time.Hour})
	_, err := f.client.Get(context.Background(), subaccount, "x")
	var e *btp.Error
	if !errors.As(err, &e) || !errors.Is(err, btp.ErrRateLimited) || !e.Temporary() || e.RetryAfter != time.Hour {
		t.Fatalf("Get = %v (%+v), want a temporary rate limit carrying Retry-After", err, e)
	}
	if n := f.srv.Count("get"); n != 1 || len(f.sleeps.all()) != 0 {
		t.Errorf("requests %d, waits %v: the client should hand the hour back to its caller", n, f.sleeps.all())
	}
}

func TestRetriesAreBoundedAndTheErrorIsTemporary(t *testing.T) {
	for _, tc := range []struct {
		status int
		is     error
	}{
		{http.StatusServiceUnavailable, nil},
		{http.StatusGatewayTimeout, btp.ErrServerTimeout},
		{http.StatusTooManyRequests, btp.ErrRateLimited},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := newFixture(t, btptest.Options{})
			f.srv.Inject(btptest.Fault{Action: "delete", Times: -1, Status: tc.status})
			err := f.client.Delete(context.Background(), subaccount, "x")
			var e *btp.Error
			if !errors.As(err, &e) || !e.Temporary() || e.StatusCode != tc.status {
				t.Fatalf("Delete = %v, want temporary %d", err, tc.status)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			if errors.Is(err, approval.ErrNotFound) || errors.Is(err, approval.ErrForbidden) {
				t.Errorf("an overloaded server is not a refusal")
			}
			if n := f.srv.Count("delete"); n != 4 {
				t.Errorf("delete requests %d, want 1 + MaxRetries(3)", n)
			}
			if len(f.sleeps.all()) != 3 {
				t.Errorf("waits %v", f.sleeps.all())
			}
		})
	}
}

func TestBackendErrorsAreAnswersNotRetried(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "get", BackendStatus: http.StatusServiceUnavailable, Body: `{"error":"XSUAA is down"}`})
	_, err := f.client.Get(context.Background(), subaccount, "x")
	var e *btp.Error
	if !errors.As(err, &e) || e.StatusCode != 200 || e.BackendStatus != 503 || e.Message != "XSUAA is down" {
		t.Fatalf("Get = %v", err)
	}
	if !e.Temporary() {
		t.Errorf("backend 503 should be temporary")
	}
	if n := f.srv.Count("get"); n != 1 {
		t.Errorf("get requests %d, want 1", n)
	}
}

func TestUnresolvableAmbiguityIsReportedAsSuch(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
	f.srv.Inject(btptest.Fault{Action: "get", Times: -1, Status: http.StatusServiceUnavailable})
	_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "limbo"})
	var e *btp.Error
	if !errors.Is(err, btp.ErrAmbiguous) || !errors.As(err, &e) || !e.Temporary() {
		t.Fatalf("Create = %v, want a temporary ErrAmbiguous", err)
	}
	if f.srv.Count("create") != 1 {
		t.Errorf("created again without knowing whether the first one exists")
	}
}

func TestCanceledContextStopsRetrying(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	btp.SetSleep(f.client, func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	})
	f.srv.Inject(btptest.Fault{Action: "list", Times: -1, Status: http.StatusBadGateway})
	_, err := f.client.List(ctx, subaccount)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List = %v, want context.Canceled", err)
	}
	if n := f.srv.Count("list"); n != 1 {
		t.Errorf("list requests %d after cancel", n)
	}
}

func TestDeadlineCutsALatentRequestShort(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	if _, err := f.client.List(context.Background(), subaccount); err != nil { // log in first
		t.Fatal(err)
	}
	f.srv.Inject(btptest.Fault{Action: "list", Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.client.List(ctx, subaccount)
	var e *btp.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &e) || !e.Temporary() {
		t.Fatalf("List = %v, want a temporary deadline error", err)
	}
}

func TestNetworkErrorIsTemporary(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Close()
	_, err := f.client.List(context.Background(), subaccount)
	var e *btp.Error
	if !errors.As(err, &e) || !e.Temporary() || e.StatusCode != 0 {
		t.Fatalf("List against a closed server = %v, want a temporary network error", err)
	}
}

func TestCertificateCreateValidatesPEMLocally(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	cert, key := testCertificate(t)
	for name, text := range map[string]string{
		"not PEM":         "not-a-pem",
		"private key":     cert + key,
		"key only":        key,
		"trailing junk":   cert + "junk",
		"corrupt content": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "c", Certificate: text})
		if !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("%s: Create = %v, want ErrInvalid", name, err)
		}
		var e *btp.Error
		if errors.As(err, &e) && e.Temporary() {
			t.Errorf("%s: a local refusal is not temporary", name)
		}
	}
	if n := f.srv.Count("create"); n != 0 {
		t.Errorf("%d invalid certificates reached the server", n)
	}
}

func TestGlobalAccountScopeMustBeTheLoggedInOne(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	_, err := f.client.List(context.Background(), approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "other-ga"})
	if !errors.Is(err, approval.ErrInvalid) || f.srv.Count("list") != 0 {
		t.Fatalf("List in another global account = %v", err)
	}
}

func TestAmbiguousCreateIsResolvedEvenWithRetriesDisabled(t *testing.T) {
	f := newFixture(t, btptest.Options{}, func(c *btp.Config) { c.MaxRetries = -1 })
	f.srv.Inject(btptest.Fault{Action: "create", DropAfterCommit: true})
	if _, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "no-retries", OwnsName: true}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wantCounts(t, f.srv, 2, 1, 1)
}

// A name the caller does not own may hold someone else's credential: after an
// ambiguous create the client must not delete what it finds there.
func TestAmbiguousCreateNeverDeletesANameTheCallerDoesNotOwn(t *testing.T) {
	for _, fault := range []btptest.Fault{
		{Action: "create", Status: http.StatusBadGateway},
		{Action: "create", Status: http.StatusBadGateway, Commit: true},
		{Action: "create", DropAfterCommit: true},
	} {
		t.Run(fmt.Sprintf("status %d commit %v drop %v", fault.Status, fault.Commit, fault.DropAfterCommit), func(t *testing.T) {
			f := newFixture(t, btptest.Options{}, func(*btp.Config) {})
			victim, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "prod-payments"})
			if err != nil {
				t.Fatal(err)
			}
			f.srv.Inject(fault)
			_, err = f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "prod-payments"})
			if err == nil {
				t.Fatal("Create succeeded over an existing credential")
			}
			if n := counts(f.srv)["delete"]; n != 0 {
				t.Fatalf("%d deletes: the client deleted a credential it cannot know is its own", n)
			}
			if live := f.srv.Live(subaccount); len(live) != 1 || secretField(victim.Secret, "clientsecret") == "" {
				t.Fatalf("live %v: want exactly the existing credential", live)
			}
		})
	}
}
