package btp_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

func TestEveryOperationInEveryScopeAndType(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	cert, _ := testCertificate(t)
	kinds := []struct {
		name     string
		readOnly bool
		cert     string
		wantType string
	}{
		{"secret", false, "", btp.TypeSecret},
		{"read-only", true, "", btp.TypeSecret},
		{"certificate", false, cert, btp.TypeClientCertificate},
	}
	for _, scope := range allScopes {
		var created []string
		for _, k := range kinds {
			name := "bot-" + string(scope.Kind) + "-" + k.name
			is, err := f.client.Create(ctx, approval.CredentialSpec{Scope: scope, Name: name, ReadOnly: k.readOnly, Certificate: k.cert})
			if err != nil {
				t.Fatalf("Create %s in %s: %v", k.name, scope, err)
			}
			c := is.Credential
			if c.Name != name || c.Type != k.wantType || c.ReadOnly != k.readOnly || c.Scope != scope {
				t.Errorf("Create %s in %s: credential %+v", k.name, scope, c)
			}
			wantClient := "sb-full-access!a"
			if k.readOnly {
				wantClient = "sb-read-only!a"
			}
			if !strings.HasPrefix(c.ClientID, wantClient) || c.TokenURL == "" || c.APIURL == "" || c.URL == "" {
				t.Errorf("Create %s in %s: metadata %+v", k.name, scope, c)
			}
			if is.Secret.IsZero() {
				t.Errorf("Create %s in %s: no secret", k.name, scope)
			}
			if k.cert != "" {
				if secretField(is.Secret, "certificate") == "" || secretField(is.Secret, "key") == "" {
					t.Errorf("certificate credential secret lacks certificate or key: %v", is.Secret.Fields())
				}
			} else if !slices.Contains(f.srv.Secrets(), secretField(is.Secret, "clientsecret")) {
				t.Errorf("client secret is not the one the server issued")
			}

			got, err := f.client.Get(ctx, scope, name)
			if err != nil {
				t.Fatalf("Get %s: %v", name, err)
			}
			if got.Name != name || got.ClientID != c.ClientID || got.Type != c.Type || got.ReadOnly != k.readOnly || got.TokenURL != c.TokenURL {
				t.Errorf("Get %s = %+v, create said %+v", name, got, c)
			}
			created = append(created, name)
		}
		list, err := f.client.List(ctx, scope)
		if err != nil {
			t.Fatalf("List %s: %v", scope, err)
		}
		var names []string
		for _, c := range list {
			names = append(names, c.Name)
			if c.ClientID == "" || c.Scope != scope {
				t.Errorf("List item %+v", c)
			}
		}
		slices.Sort(names)
		slices.Sort(created)
		if !slices.Equal(names, created) {
			t.Errorf("List %s = %v, want %v", scope, names, created)
		}
		for _, name := range created {
			if err := f.client.Delete(ctx, scope, name); err != nil {
				t.Fatalf("Delete %s: %v", name, err)
			}
		}
		if live := f.srv.Live(scope); len(live) != 0 {
			t.Errorf("after deleting, live in %s: %v", scope, live)
		}
	}
	if n := f.srv.Count("login"); n != 1 {
		t.Errorf("logins = %d, want 1 (session reused)", n)
	}
}

func TestGetUnknownNameIsNotFound(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	_, err := f.client.Get(context.Background(), subaccount, "nobody")
	if !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Get unknown = %v, want ErrNotFound", err)
	}
	var e *btp.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusOK || e.BackendStatus != http.StatusNotFound || e.CorrelationID == "" {
		t.Fatalf("error fields: %+v", e)
	}
	if !strings.Contains(err.Error(), e.CorrelationID) {
		t.Errorf("error %q lacks correlation id", err)
	}
	if e.Temporary() {
		t.Errorf("not-found must not be temporary")
	}
	if err := f.client.Delete(context.Background(), subaccount, "nobody"); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Delete unknown = %v, want ErrNotFound", err)
	}
}

func TestUnknownScopeIsForbidden(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	unknown := approval.Scope{Kind: approval.ScopeSubaccount, ID: "00000000-0000-4000-8000-000000000000"}
	_, err := f.client.List(context.Background(), unknown)
	var e *btp.Error
	if !errors.Is(err, approval.ErrForbidden) || !errors.As(err, &e) {
		t.Fatalf("List in unknown subaccount = %v, want ErrForbidden", err)
	}
	if e.StatusCode != http.StatusForbidden || e.BackendStatus != 0 || !strings.Contains(e.Message, "does not exist") {
		t.Errorf("error fields: %+v", e)
	}
	if errors.Is(err, approval.ErrNotFound) {
		t.Errorf("an unknown scope must not look like a missing credential")
	}
}

func TestDuplicateNameIsConflict(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	spec := approval.CredentialSpec{Scope: subaccount, Name: "twice"}
	if _, err := f.client.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_, err := f.client.Create(ctx, spec)
	if !errors.Is(err, approval.ErrConflict) {
		t.Fatalf("second Create = %v, want ErrConflict", err)
	}
	if live := f.srv.Live(subaccount); !slices.Equal(live, []string{"twice"}) {
		t.Errorf("live = %v: a conflicting name must never be deleted", live)
	}
}

func TestGetRetriesServiceUnavailable(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: directory, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f.srv.Inject(btptest.Fault{Action: "get", Times: 2, Status: http.StatusServiceUnavailable})
	if _, err := f.client.Get(ctx, directory, "x"); err != nil {
		t.Fatalf("Get after two 503s: %v", err)
	}
	if n := f.srv.Count("get"); n != 3 {
		t.Errorf("get requests = %d, want 3", n)
	}
}
