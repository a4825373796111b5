package btp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/btp/internal/cassette"
)

// handEdited marks the interactions that were written by hand upstream
// (reference §6): they contradict the recorded unassign before them and are
// no server truth.
const handEdited = "fixture-drift-detection-fix"

func roleCollectionCassettes(t *testing.T) []*cassette.Cassette {
	t.Helper()
	dir := fixturesDir(t)
	paths, err := filepath.Glob(filepath.Join(dir, "role-collection", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	if len(paths) != 8 {
		t.Fatalf("found %d role-collection recordings, want 8", len(paths))
	}
	var out []*cassette.Cassette
	for _, p := range paths {
		c, err := cassette.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func isCommand(r cassette.Request, object string) bool { return strings.HasSuffix(r.Path(), object) }

// replayed says whether our client sends this recorded request: assign,
// unassign and the plain role-collection get, and security/user get. Paged
// user listings (showUserAssignments) are Terraform's read-back; credbot reads
// the user instead, which is what the reference recommends.
func replayed(it cassette.Interaction) bool {
	r := it.Request
	switch {
	case isCommand(r, "/security/role-collection"):
		p, _ := r.Params()
		return p["showUserAssignments"] == "" && r.Action() != "list"
	case isCommand(r, "/security/user"):
		return r.Action() == "get"
	}
	return false
}

func scopeOf(p map[string]string) approval.Scope {
	switch {
	case p["subaccount"] != "":
		return approval.Scope{Kind: approval.ScopeSubaccount, ID: p["subaccount"]}
	case p["directory"] != "":
		return approval.Scope{Kind: approval.ScopeDirectory, ID: p["directory"]}
	}
	return approval.Scope{Kind: approval.ScopeGlobalAccount, ID: p["globalAccount"]}
}

// TestReplayRecordedRoleCollectionTraffic plays every recorded
// role-collection assign and unassign, role-collection get and user get
// against our client: each request must carry exactly the recorded
// paramValues and headers, and each recorded answer must decode to the user's
// role collections as BTP reported them.
func TestReplayRecordedRoleCollectionTraffic(t *testing.T) {
	var assigns, unassigns, userGets, rcGets, edited int
	for _, cs := range roleCollectionCassettes(t) {
		t.Run(cs.Name, func(t *testing.T) {
			rp := &replayer{t: t}
			for _, it := range cs.Interactions {
				switch {
				case cassette.Header(it.Request.Headers, "X-Correlationid") == handEdited:
					edited++
					if replayed(it) {
						t.Errorf("hand-edited interaction %d would be replayed as server truth", it.ID)
					}
				case it.Request.IsLogin():
					rp.logins = append(rp.logins, it)
				case replayed(it):
					rp.commands = append(rp.commands, it)
				}
			}
			if len(rp.commands) == 0 {
				// An error shape only: TestRecordedRoleCollectionErrorShapes
				// serves it to our calls.
				if !slices.ContainsFunc(cs.Interactions, func(it cassette.Interaction) bool {
					return !it.Request.IsLogin() && (it.Response.Code >= 400 || cassette.Header(it.Response.Headers, "X-Cpcli-Backend-Status") >= "400")
				}) {
					t.Error("recording has neither a request of ours nor an error answer")
				}
				return
			}
			srv := httptest.NewServer(rp)
			defer srv.Close()
			var login struct{ CustomIdp, Subdomain, UserName, Password string }
			if err := json.Unmarshal([]byte(rp.logins[0].Request.Body), &login); err != nil {
				t.Fatal(err)
			}
			c, err := btp.New(btp.Config{
				ServerURL: srv.URL, GlobalAccount: login.Subdomain, IdP: login.CustomIdp,
				Username: login.UserName, Password: login.Password,
				MaxRetries: 5, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			btp.SetSleep(c, (&sleeps{}).sleep)
			ctx := context.Background()
			for _, it := range rp.commands {
				p, err := it.Request.Params()
				if err != nil {
					t.Fatal(err)
				}
				scope := scopeOf(p)
				user := approval.BTPUser{Origin: p["origin"], Name: p["userName"]}
				var rec struct {
					Email           string   `json:"email"`
					Origin          string   `json:"origin"`
					ZoneID          string   `json:"zoneId"`
					Version         int      `json:"version"`
					ID              string   `json:"id"`
					RoleCollections []string `json:"roleCollections"`
				}
				_ = json.Unmarshal([]byte(it.Response.Body), &rec)
				var got approval.UserRoles
				switch {
				case isCommand(it.Request, "/security/user"):
					userGets++
					got, err = c.User(ctx, scope, user)
				case it.Request.Action() == "assign":
					assigns++
					got, err = c.Assign(ctx, scope, p["roleCollectionName"], user)
				case it.Request.Action() == "unassign":
					unassigns++
					got, err = c.Unassign(ctx, scope, p["roleCollectionName"], user)
				case it.Request.Action() == "get":
					rcGets++
					rc, err := c.RoleCollection(ctx, scope, p["roleCollectionName"])
					if err != nil {
						t.Fatalf("RoleCollection: %v", err)
					}
					var want struct {
						Name, Description string
						RoleReferences    []any
						IsReadOnly        bool
					}
					_ = json.Unmarshal([]byte(it.Response.Body), &want)
					if rc.Name != want.Name || rc.Description != want.Description || rc.Roles != len(want.RoleReferences) || rc.ReadOnly != want.IsReadOnly || rc.Roles == 0 {
						t.Errorf("RoleCollection decoded %+v from %s", rc, it.Response.Body)
					}
					continue
				default:
					t.Fatalf("unexpected recorded command %s?%s", it.Request.Path(), it.Request.Action())
				}
				if err != nil {
					t.Fatalf("%s: %v", it.Request.Action(), err)
				}
				if !slices.Equal(got.RoleCollections, rec.RoleCollections) || got.Email != rec.Email || got.Name != rec.Email ||
					got.Origin != rec.Origin || got.ZoneID != rec.ZoneID || got.Version != rec.Version || got.ID != rec.ID {
					t.Errorf("%s decoded %+v from %s", it.Request.Action(), got, it.Response.Body)
				}
				if got.Origin != approval.NormalizeOrigin(user.Origin) {
					t.Errorf("origin %q sent, %q answered: NormalizeOrigin must map one onto the other", user.Origin, got.Origin)
				}
			}
			rp.mu.Lock()
			defer rp.mu.Unlock()
			if rp.next != len(rp.commands) {
				t.Errorf("replayed %d of %d recorded commands", rp.next, len(rp.commands))
			}
		})
	}
	// Every scope's assign and unassign, and the other reads, were played.
	if assigns != 4 || unassigns != 4 || userGets != 3 || rcGets != 3 || edited != 4 {
		t.Errorf("replayed %d assigns, %d unassigns, %d user gets, %d role-collection gets, skipped %d hand-edited; want 4, 4, 3, 3, 4",
			assigns, unassigns, userGets, rcGets, edited)
	}
}

// TestRecordedRoleCollectionErrorShapes serves the recorded refusals to our
// role-collection calls: an unknown origin (backend 404), an empty scope value
// (outer 400, empty body) and an unknown role collection (backend 404).
func TestRecordedRoleCollectionErrorShapes(t *testing.T) {
	dir := fixturesDir(t)
	cases := []struct {
		file          string
		call          func(*btp.Client) error
		target        error
		outer, inner  int
		wantInMessage string
	}{
		{"role-collection/datasource_directory_users.non_existing_idp", func(c *btp.Client) error {
			_, err := c.User(context.Background(), directory, approval.BTPUser{Origin: "this-doesnt-exist", Name: "jenny.doe@test.com"})
			return err
		}, approval.ErrNotFound, 200, 404, "didn't find idp"},
		{"role-collection/list_resource_subaccount_role_collection_base_bad_request", func(c *btp.Client) error {
			_, err := c.RoleCollection(context.Background(), subaccount, "Subaccount Viewer")
			return err
		}, nil, 400, 0, ""},
		{"datasource_globalaccount_role_collection.role_collection_not_available", func(c *btp.Client) error {
			_, err := c.RoleCollection(context.Background(), globalAcct, "Not There")
			return err
		}, approval.ErrNotFound, 200, 404, "No entity found with values"},
		{"datasource_globalaccount_role_collection.role_collection_not_available", func(c *btp.Client) error {
			// The same refusal to an assign is an answer, not an ambiguity.
			_, err := c.Assign(context.Background(), globalAcct, "Not There", approval.BTPUser{Origin: "sap.default", Name: "jenny.doe@test.com"})
			return err
		}, approval.ErrNotFound, 200, 404, "No entity found with values"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			cs, err := cassette.Load(filepath.Join(dir, tc.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var login, answer *cassette.Interaction
			for i := range cs.Interactions {
				it := &cs.Interactions[i]
				if it.Request.IsLogin() && it.Response.Code == 200 && login == nil {
					login = it
				}
				if !it.Request.IsLogin() && (it.Response.Code != 200 || cassette.Header(it.Response.Headers, "X-Cpcli-Backend-Status") >= "400") {
					answer = it
				}
			}
			if login == nil || answer == nil {
				t.Fatal("recording lacks a login or an error answer")
			}
			var commands int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				it := answer
				if strings.HasPrefix(r.URL.Path, "/login/") {
					it = login
				} else {
					commands++
				}
				for k, vs := range it.Response.Headers {
					if k != "Content-Length" {
						w.Header()[k] = vs
					}
				}
				w.WriteHeader(it.Response.Code)
				io.WriteString(w, it.Response.Body)
			}))
			defer srv.Close()
			c, err := btp.New(btp.Config{ServerURL: srv.URL, GlobalAccount: btpGA(globalAcct), IdP: "identityProvider",
				Username: "john.doe@int.test", Password: "testUserPassword", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			var e *btp.Error
			if !errors.As(err, &e) || (tc.target != nil && !errors.Is(err, tc.target)) {
				t.Fatalf("error %v, want %v", err, tc.target)
			}
			if e.StatusCode != tc.outer || e.BackendStatus != tc.inner || !strings.Contains(e.Message, tc.wantInMessage) {
				t.Errorf("decoded %+v", e)
			}
			if e.Temporary() || errors.Is(err, btp.ErrAmbiguous) {
				t.Errorf("a refusal must be neither temporary nor ambiguous")
			}
			if commands != 1 {
				t.Errorf("%d commands sent, want 1: a refusal is not retried", commands)
			}
		})
	}
}

func btpGA(s approval.Scope) string { return s.ID }

// TestEmptyScopeNeverReachesTheServer: the recorded outer 400 for an empty
// scope value is refused locally.
func TestEmptyScopeNeverReachesTheServer(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	_, err := f.client.RoleCollection(context.Background(), approval.Scope{Kind: approval.ScopeSubaccount}, "Subaccount Viewer")
	if !errors.Is(err, approval.ErrInvalid) {
		t.Fatalf("RoleCollection with empty subaccount = %v, want ErrInvalid", err)
	}
	if n := f.srv.Count("get"); n != 0 {
		t.Errorf("%d gets reached the server", n)
	}
}
