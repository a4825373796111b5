package approval

import (
	"context"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
)

// DefaultUserOrigin is the origin key of SAP's default identity provider
// (SAP ID service), the one a Slack profile e-mail is a user name of unless
// the operator sets CREDBOT_BTP_USER_ORIGIN.
const DefaultUserOrigin = "sap.default"

// BTPUser is one user at BTP. A user is the pair (origin, user name): the same
// e-mail under two identity providers is two users with different ids, so
// grants are always keyed by both.
type BTPUser struct {
	Origin string `json:"origin"`
	Name   string `json:"name"` // the login name; an e-mail for the default IdP
}

func (u BTPUser) String() string { return u.Name + " (origin " + u.Origin + ")" }

var (
	// roleCollectionRE admits role collection display names ("Subaccount
	// Viewer", "Destination Administrator", "Cloud_Connector-Admin (EU)")
	// and nothing that could break a policy row, a Slack mrkdwn line or a
	// Redis key: no commas, quotes, colons, asterisks, control characters.
	roleCollectionRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} _.()/&+-]{0,127}$`)
	// originRE is an origin key: sap.default, sap.custom, tenant-platform.
	originRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

// ValidateRoleCollection checks a role collection name before it reaches the
// policy, Redis or BTP.
func ValidateRoleCollection(name string) error {
	if !roleCollectionRE.MatchString(name) || strings.Contains(name, "  ") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("%w: role collection must be 1-128 letters, digits, single spaces or _ . ( ) / & + -, as BTP shows it, e.g. \"Subaccount Viewer\"", ErrInvalid)
	}
	return nil
}

// Validate checks the origin key and the user name (an e-mail address, since
// credbot only ever names the requester by their Slack profile e-mail).
func (u BTPUser) Validate() error {
	if !originRE.MatchString(u.Origin) {
		return fmt.Errorf("%w: BTP user origin %q must be an origin key such as sap.default", ErrInvalid, u.Origin)
	}
	if len(u.Name) == 0 || len(u.Name) > 256 {
		return fmt.Errorf("%w: BTP user name must be 1-256 characters", ErrInvalid)
	}
	a, err := mail.ParseAddress(u.Name)
	if err != nil || a.Address != u.Name || a.Name != "" {
		return fmt.Errorf("%w: BTP user name must be a plain e-mail address", ErrInvalid)
	}
	return nil
}

// NormalizeOrigin maps the aliases BTP accepts for one identity provider onto
// one key: "ldap" is answered as "sap.default" (reference §3.2).
func NormalizeOrigin(o string) string {
	if strings.EqualFold(o, "ldap") {
		return DefaultUserOrigin
	}
	return o
}

// UserRoles is BTP's account of one user in one scope: the answer of
// security/user get, and of every assign and unassign, which return the user
// after the change. RoleCollections lists the collections assigned directly
// to the user in that scope (not those reached through IdP groups).
type UserRoles struct {
	ID              string   `json:"id,omitempty"` // the shadow user's GUID in this zone
	Name            string   `json:"name,omitempty"`
	Email           string   `json:"email,omitempty"`
	Origin          string   `json:"origin,omitempty"` // normalised: ldap comes back as sap.default
	ZoneID          string   `json:"zone_id,omitempty"`
	Version         int      `json:"version,omitempty"` // grows by one per change
	RoleCollections []string `json:"role_collections"`
}

// Has reports whether the user holds the role collection directly.
func (u UserRoles) Has(collection string) bool { return slices.Contains(u.RoleCollections, collection) }

// RoleCollection is the metadata of a role collection in one scope.
type RoleCollection struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	ReadOnly    bool   `json:"read_only,omitempty"` // predefined by SAP: not editable (still assignable)
	Roles       int    `json:"roles"`               // how many role references it bundles
}

// RoleAssigner assigns role collections to users at BTP and reads them back.
// Implemented by internal/btp.
//
// Assign and Unassign return the user as BTP reports it after the change; its
// RoleCollections is the authority on whether the change happened. After an
// ambiguous failure (the request may have reached BTP) they read the user and
// decide from what is there, never by repeating blindly. A user that does not
// exist is an error matching ErrNotFound from User.
type RoleAssigner interface {
	User(ctx context.Context, scope Scope, user BTPUser) (UserRoles, error)
	Assign(ctx context.Context, scope Scope, collection string, user BTPUser) (UserRoles, error)
	Unassign(ctx context.Context, scope Scope, collection string, user BTPUser) (UserRoles, error)
	RoleCollection(ctx context.Context, scope Scope, name string) (RoleCollection, error)
}
