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

func TestRequestsHaveTheProtocolShape(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	cert, _ := testCertificate(t)
	for _, scope := range allScopes {
		if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: scope, Name: "w", ReadOnly: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.Create(ctx, approval.CredentialSpec{Scope: scope, Name: "w-cert", Certificate: cert}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.Get(ctx, scope, "w"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.List(ctx, scope); err != nil {
			t.Fatal(err)
		}
		if err := f.client.Delete(ctx, scope, "w"); err != nil {
			t.Fatal(err)
		}
	}
	scopeKey := map[approval.ScopeKind]string{approval.ScopeSubaccount: "subaccount", approval.ScopeDirectory: "directory", approval.ScopeGlobalAccount: "globalAccount"}
	corrIDs := map[string]bool{}
	for _, r := range f.srv.Requests() {
		if r.Method != http.MethodPost {
			t.Errorf("%s: method %s", r.Action, r.Method)
		}
		h := r.Headers
		if h.Get("Content-Type") != "application/json" || h.Get("X-Cpcli-Format") != "json" || h.Get("User-Agent") != "credbot-test" ||
			!uuidRE.MatchString(h.Get("X-Correlationid")) || h.Get("Authorization") != "" {
			t.Errorf("%s: headers %v", r.Action, h)
		}
		corrIDs[h.Get("X-Correlationid")] = true
		if r.Action == "login" {
			if r.Path != "/login/v2.106.1" || h.Get("X-Cpcli-Sessionid") != "" {
				t.Errorf("login %s %v", r.Path, h)
			}
			continue
		}
		if r.Path != "/command/v2.106.1/security/api-credential" {
			t.Errorf("%s: path %s", r.Action, r.Path)
		}
		if h.Get("X-Cpcli-Sessionid") == "" || h.Get("X-Cpcli-Subdomain") != btptest.DefaultGlobalAccount {
			t.Errorf("%s: session headers %v", r.Action, h)
		}
		if _, ok := h["X-Cpcli-Customidp"]; !ok {
			t.Errorf("%s: X-Cpcli-Customidp missing (empty means the default IdP)", r.Action)
		}
		if !strings.HasSuffix(string(r.Body), "}\n") {
			t.Errorf("%s: body %q does not end like json.Encoder's", r.Action, r.Body)
		}
		n := 0
		for _, k := range scopeKey {
			if _, ok := r.Params[k]; ok {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d scope keys in %v", r.Action, n, r.Params)
		}
		if ga, ok := r.Params["globalAccount"]; ok && ga != btptest.DefaultGlobalAccount {
			t.Errorf("%s: globalAccount %q, want the subdomain", r.Action, ga)
		}
		var keys []string
		for k, v := range r.Params {
			if v == "" {
				t.Errorf("%s: empty param %s sent", r.Action, k)
			}
			if _, isScope := map[string]bool{"subaccount": true, "directory": true, "globalAccount": true}[k]; !isScope {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		want := map[string][]string{
			"create": {"name", "readOnly"},
			"get":    {"name", "readOnly"},
			"delete": {"name", "readOnly"},
			"list":   nil,
		}[r.Action]
		if r.Action == "create" && r.Params["name"] == "w-cert" {
			want = []string{"certificate", "name", "readOnly"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("%s: params %v, want %v plus the scope", r.Action, keys, want)
		}
		switch {
		case r.Action == "create" && r.Params["name"] == "w" && r.Params["readOnly"] != "true",
			r.Action == "create" && r.Params["name"] == "w-cert" && r.Params["readOnly"] != "false",
			(r.Action == "get" || r.Action == "delete") && r.Params["readOnly"] != "false":
			t.Errorf("%s: readOnly %q", r.Action, r.Params["readOnly"])
		}
	}
	if len(corrIDs) != len(f.srv.Requests()) {
		t.Errorf("%d correlation ids for %d separate calls", len(corrIDs), len(f.srv.Requests()))
	}
}

func TestListAcceptsBareArrayOrValueWrapperAndBothClientIDSpellings(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	items := `[{"name":"a","credential-type":"secret","clientId":"sb-full-access!a1","read-only":false,"tokenurl":"https://t/oauth/token","apiurl":"https://api"},` +
		`{"name":"b","credential-type":"binding-secret","clientid":"sb-read-only!a2","read-only":true},` +
		`{"name":"c","credential-type":"client certificate","clientId":"sb-full-access!a1","certificate":"-----BEGIN CERTIFICATE-----\n","read-only":"false"}]`
	for name, body := range map[string]string{"bare": items, "wrapped": `{"value":` + items + `}`} {
		t.Run(name, func(t *testing.T) {
			f.srv.Inject(btptest.Fault{Action: "list", BackendStatus: 200, Body: body})
			got, err := f.client.List(ctx, directory)
			if err != nil {
				t.Fatal(err)
			}
			want := []approval.Credential{
				{Name: "a", Scope: directory, Type: "secret", ClientID: "sb-full-access!a1", TokenURL: "https://t/oauth/token", APIURL: "https://api"},
				{Name: "b", Scope: directory, Type: "binding-secret", ClientID: "sb-read-only!a2", ReadOnly: true},
				{Name: "c", Scope: directory, Type: "client certificate", ClientID: "sb-full-access!a1"},
			}
			if !slices.Equal(got, want) {
				t.Errorf("List = %+v\nwant %+v", got, want)
			}
		})
	}
	f.srv.Inject(btptest.Fault{Action: "list", BackendStatus: 200, Body: ""})
	if got, err := f.client.List(ctx, directory); err != nil || len(got) != 0 {
		t.Errorf("empty body: %v %v", got, err)
	}
}

func TestCreateAcceptsBindingSecretType(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", BackendStatus: 200,
		Body: `{"name":"old","credential-type":"binding-secret","clientid":"sb-full-access!a9","clientsecret":"s3cr3t","tokenurl":"https://t","read-only":false}`})
	is, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if is.Credential.Type != "binding-secret" || secretField(is.Secret, "clientsecret") != "s3cr3t" {
		t.Errorf("decoded %+v", is.Credential)
	}
}

func TestCreateWithoutSecretIsAProtocolErrorAndLeavesNothing(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "create", BackendStatus: 200, Commit: true,
		Body: `{"name":"nosecret","credential-type":"secret","clientid":"sb-full-access!a9"}`})
	_, err := f.client.Create(context.Background(), approval.CredentialSpec{Scope: subaccount, Name: "nosecret"})
	if !errors.Is(err, btp.ErrProtocol) || !strings.Contains(err.Error(), "without a secret") {
		t.Fatalf("Create = %v", err)
	}
	if live := f.srv.Live(subaccount); len(live) != 0 {
		t.Errorf("live %v: a credential nobody holds the secret of was left", live)
	}
}
