package btp_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

var jenny = approval.BTPUser{Origin: approval.DefaultUserOrigin, Name: "jenny.doe@acme.example"}

const viewer = "Subaccount Viewer"

func TestAssignThenUnassignInEveryScope(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	for _, scope := range allScopes {
		rc := btptest.DefaultRoleCollections[scope.Kind][1]
		if _, err := f.client.User(ctx, scope, jenny); !errors.Is(err, approval.ErrNotFound) {
			t.Fatalf("%s: User before any assignment = %v, want ErrNotFound", scope, err)
		}
		u, err := f.client.Assign(ctx, scope, rc, jenny)
		if err != nil || !u.Has(rc) || u.Version != 1 {
			t.Fatalf("%s: Assign = %+v, %v", scope, u, err)
		}
		if got := f.srv.RoleCollections(scope, jenny); !slices.Equal(got, []string{rc}) {
			t.Errorf("%s: BTP holds %q", scope, got)
		}
		u, err = f.client.User(ctx, scope, jenny)
		if err != nil || !u.Has(rc) {
			t.Fatalf("%s: User = %+v, %v", scope, u, err)
		}
		u, err = f.client.Unassign(ctx, scope, rc, jenny)
		if err != nil || u.Has(rc) || u.Version != 2 {
			t.Fatalf("%s: Unassign = %+v, %v", scope, u, err)
		}
		if got := f.srv.RoleCollections(scope, jenny); len(got) != 0 {
			t.Errorf("%s: BTP still holds %q", scope, got)
		}
	}
}

func TestAssignLeavesOtherCollectionsAlone(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.AssignRoleCollection(subaccount, "Destination Viewer", jenny)
	u, err := f.client.Assign(context.Background(), subaccount, viewer, jenny)
	if err != nil || !slices.Equal(u.RoleCollections, []string{"Destination Viewer", viewer}) {
		t.Fatalf("Assign = %+v, %v", u, err)
	}
	u, err = f.client.Unassign(context.Background(), subaccount, viewer, jenny)
	if err != nil || !slices.Equal(u.RoleCollections, []string{"Destination Viewer"}) {
		t.Fatalf("Unassign = %+v, %v", u, err)
	}
}

// An assign whose answer is lost is settled by reading the user, never by
// assigning blindly again.
func TestAssignAfterDroppedConnectionReadsTheUserInsteadOfRepeating(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "assign", DropAfterCommit: true})
	u, err := f.client.Assign(context.Background(), subaccount, viewer, jenny)
	if err != nil || !u.Has(viewer) {
		t.Fatalf("Assign = %+v, %v", u, err)
	}
	if n := f.srv.CountCommand("security/role-collection", "assign"); n != 1 {
		t.Errorf("%d assigns sent, want 1", n)
	}
	if n := f.srv.CountCommand("security/user", "get"); n != 1 {
		t.Errorf("%d user gets, want 1", n)
	}
}

// A 502 before the backend acted: the read shows nothing happened, so the
// assign is sent again.
func TestAssignAfterServerErrorThatDidNotCommitAssignsAgain(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "assign", Status: http.StatusBadGateway})
	u, err := f.client.Assign(context.Background(), subaccount, viewer, jenny)
	if err != nil || !u.Has(viewer) {
		t.Fatalf("Assign = %+v, %v", u, err)
	}
	if n := f.srv.CountCommand("security/role-collection", "assign"); n != 2 {
		t.Errorf("%d assigns sent, want 2", n)
	}
}

func TestUnassignAfterServerErrorThatCommittedIsConfirmedByARead(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.AssignRoleCollection(subaccount, viewer, jenny)
	f.srv.Inject(btptest.Fault{Action: "unassign", Status: http.StatusInternalServerError, Commit: true})
	u, err := f.client.Unassign(context.Background(), subaccount, viewer, jenny)
	if err != nil || u.Has(viewer) {
		t.Fatalf("Unassign = %+v, %v", u, err)
	}
	if n := f.srv.CountCommand("security/role-collection", "unassign"); n != 1 {
		t.Errorf("%d unassigns sent, want 1", n)
	}
	if got := f.srv.RoleCollections(subaccount, jenny); len(got) != 0 {
		t.Errorf("BTP still holds %q", got)
	}
}

// Someone removed it in the cockpit already: the refusal is confirmed by a
// read and the unassign is done.
func TestUnassignOfWhatIsGoneIsDoneOnceAReadConfirmsIt(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.AssignRoleCollection(subaccount, "Destination Viewer", jenny)
	u, err := f.client.Unassign(context.Background(), subaccount, viewer, jenny)
	if err != nil || u.Has(viewer) || !u.Has("Destination Viewer") {
		t.Fatalf("Unassign = %+v, %v", u, err)
	}
	// And for a user BTP does not know at all.
	bob := approval.BTPUser{Origin: approval.DefaultUserOrigin, Name: "bob@acme.example"}
	if u, err := f.client.Unassign(context.Background(), subaccount, viewer, bob); err != nil || u.Has(viewer) {
		t.Fatalf("Unassign of an unknown user = %+v, %v", u, err)
	}
}

func TestUnassignRefusedWhileStillAssignedIsAnError(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.AssignRoleCollection(subaccount, viewer, jenny)
	f.srv.Inject(btptest.Fault{Action: "unassign", BackendStatus: http.StatusBadRequest, Body: `{"error":"nope"}`, Times: -1})
	_, err := f.client.Unassign(context.Background(), subaccount, viewer, jenny)
	if !errors.Is(err, approval.ErrInvalid) {
		t.Fatalf("Unassign = %v, want the refusal", err)
	}
	if got := f.srv.RoleCollections(subaccount, jenny); !slices.Equal(got, []string{viewer}) {
		t.Errorf("BTP holds %q", got)
	}
}

func TestUnresolvableAssignIsAmbiguousAndTemporary(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	f.srv.Inject(btptest.Fault{Action: "assign", DropAfterCommit: true})
	f.srv.Inject(btptest.Fault{Action: "get", Object: "security/user", Status: http.StatusServiceUnavailable, Times: -1})
	_, err := f.client.Assign(context.Background(), subaccount, viewer, jenny)
	var e *btp.Error
	if !errors.Is(err, btp.ErrAmbiguous) || !errors.As(err, &e) || !e.Temporary() {
		t.Fatalf("Assign = %v, want an ambiguous, temporary error", err)
	}
}

func TestRoleCollectionAssignInputIsValidatedLocally(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ctx := context.Background()
	for _, rc := range []string{"", "a,b", `Viewer"`, "x\ny", "Viewer ", "Sub  Viewer", "p, role:x, *, allow"} {
		if _, err := f.client.Assign(ctx, subaccount, rc, jenny); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("Assign(%q) = %v, want ErrInvalid", rc, err)
		}
	}
	for _, u := range []approval.BTPUser{{Origin: "", Name: "a@b.c"}, {Origin: "sap.default", Name: "not an email"}, {Origin: "sap default", Name: "a@b.c"}, {Origin: "sap.default", Name: "Jenny <a@b.c>"}} {
		if _, err := f.client.Assign(ctx, subaccount, viewer, u); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("Assign to %+v = %v, want ErrInvalid", u, err)
		}
	}
	if n := f.srv.CountCommand("security/role-collection", "assign"); n != 0 {
		t.Errorf("%d invalid assigns reached the server", n)
	}
}

func TestUnknownRoleCollectionIsNotFound(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	if _, err := f.client.Assign(context.Background(), subaccount, "Global Account Viewer", jenny); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Assign of a collection the subaccount lacks = %v, want ErrNotFound", err)
	}
	rc, err := f.client.RoleCollection(context.Background(), subaccount, viewer)
	if err != nil || rc.Name != viewer || rc.Roles == 0 {
		t.Fatalf("RoleCollection = %+v, %v", rc, err)
	}
}

func TestOriginAliasesAreOneUser(t *testing.T) {
	f := newFixture(t, btptest.Options{})
	ldap := approval.BTPUser{Origin: "ldap", Name: jenny.Name}
	u, err := f.client.Assign(context.Background(), subaccount, viewer, ldap)
	if err != nil || u.Origin != approval.DefaultUserOrigin {
		t.Fatalf("Assign with origin ldap = %+v, %v", u, err)
	}
	if got := f.srv.RoleCollections(subaccount, jenny); !slices.Equal(got, []string{viewer}) {
		t.Errorf("sap.default user holds %q", got)
	}
}
