package btp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/credbot/credbot/internal/approval"
)

// Role-collection assignment over the same protocol (reference:
// shared/reference/btp-role-collections.md). The requests are exactly the
// btp CLI's and SAP's Terraform provider's, as recorded in
// fixtures/btp-cli-server/role-collection:
//
//	security/role-collection?assign   {createUserIfMissing:"true", <scope>, origin, roleCollectionName, userName}
//	security/role-collection?unassign {<scope>, origin, roleCollectionName, userName}
//	security/role-collection?get      {<scope>, roleCollectionName}
//	security/user?get                 {<scope>, origin, userName}
//
// Assign and unassign answer with the user after the change; its
// roleCollections is the authority on what happened.

const (
	roleCollectionPath = "/security/role-collection"
	userPath           = "/security/user"
)

// Operation names of the role-collection calls, in errors and metrics.
const (
	OpAssign            = "assign"
	OpUnassign          = "unassign"
	OpGetUser           = "get-user"
	OpGetRoleCollection = "get-role-collection"
)

var _ approval.RoleAssigner = (*Client)(nil)

func (c *Client) checkAssignment(op string, scope approval.Scope, collection string, user approval.BTPUser, corr string) error {
	if err := c.checkScope(scope); err != nil {
		return localError(op, scope, collection, corr, err)
	}
	if collection != "" || op != OpGetUser {
		if err := approval.ValidateRoleCollection(collection); err != nil {
			return localError(op, scope, collection, corr, err)
		}
	}
	if op != OpGetRoleCollection {
		if err := user.Validate(); err != nil {
			return localError(op, scope, collection, corr, err)
		}
	}
	return nil
}

func (c *Client) roleCommand(object, action, op string, scope approval.Scope, collection, corr string, params map[string]string) *call {
	cl := c.commandAt(object, action, scope, collection, corr, params)
	cl.op = op
	return cl
}

// User reads a user's direct role collections in scope (security/user get).
// A user BTP does not know is an error matching approval.ErrNotFound.
// Assumption: that answer is not recorded (reference §6); we expect a backend
// 404 like every other XSUAA lookup.
func (c *Client) User(ctx context.Context, scope approval.Scope, user approval.BTPUser) (approval.UserRoles, error) {
	return c.user(ctx, scope, user, newCorrelationID())
}

func (c *Client) user(ctx context.Context, scope approval.Scope, user approval.BTPUser, corr string) (approval.UserRoles, error) {
	if err := c.checkAssignment(OpGetUser, scope, "", user, corr); err != nil {
		return approval.UserRoles{}, err
	}
	cl := c.roleCommand(userPath, "get", OpGetUser, scope, "", corr, map[string]string{
		"origin": user.Origin, "userName": user.Name,
	})
	resp, err := c.do(ctx, cl)
	if err != nil {
		return approval.UserRoles{}, err
	}
	return c.decodeUser(cl, resp)
}

// Assign gives user the role collection in scope and returns the user as BTP
// reports it afterwards. createUserIfMissing is always "true", as the btp CLI
// and Terraform send it: a user's first assignment in a zone creates their
// shadow user there.
//
// An assign is not repeated blindly (what BTP does with a second one is not
// recorded). When its outcome is unknown, Assign reads the user: holding the
// collection, it is done; not holding it, it assigns again, a bounded number
// of times. The caller must have read the user before (and not found the
// collection), or it cannot tell its own grant from one that was there.
func (c *Client) Assign(ctx context.Context, scope approval.Scope, collection string, user approval.BTPUser) (approval.UserRoles, error) {
	return c.change(ctx, OpAssign, scope, collection, user)
}

// Unassign takes the role collection from user in scope and returns the user
// as BTP reports it afterwards. An unknown outcome, or a backend 400/404 (the
// collection may already be gone), is settled by reading the user: without
// the collection the unassign is done; with it, it is tried again.
func (c *Client) Unassign(ctx context.Context, scope approval.Scope, collection string, user approval.BTPUser) (approval.UserRoles, error) {
	return c.change(ctx, OpUnassign, scope, collection, user)
}

func (c *Client) change(ctx context.Context, op string, scope approval.Scope, collection string, user approval.BTPUser) (approval.UserRoles, error) {
	corr := newCorrelationID()
	if err := c.checkAssignment(op, scope, collection, user, corr); err != nil {
		return approval.UserRoles{}, err
	}
	log := c.log.With(slog.String("correlation_id", corr), slog.String("scope", scope.String()),
		slog.String("role_collection", collection), slog.String("btp_user", user.Name), slog.String("origin", user.Origin))
	want := op == OpAssign // whether the user should hold the collection afterwards
	params := map[string]string{"origin": user.Origin, "roleCollectionName": collection, "userName": user.Name}
	if want {
		params["createUserIfMissing"] = "true"
	}
	for attempt := 0; ; attempt++ {
		cl := c.roleCommand(roleCollectionPath, op, op, scope, collection, corr, params)
		cl.once = true
		resp, err := c.do(ctx, cl)
		if err == nil {
			u, derr := c.decodeUser(cl, resp)
			if derr != nil {
				// It happened, but the answer does not say how things stand.
				u, derr = c.settle(ctx, op, scope, collection, user, corr, derr)
				if derr != nil {
					return approval.UserRoles{}, derr
				}
			}
			if u.Has(collection) != want {
				// The answer contradicts the request: say so rather than
				// report a change BTP did not confirm.
				e := c.newError(cl)
				e.StatusCode, e.Err = resp.status, ErrProtocol
				e.Message = fmt.Sprintf("%s answered without the expected change: the user's role collections are %q", op, u.RoleCollections)
				return approval.UserRoles{}, e
			}
			log.LogAttrs(ctx, slog.LevelInfo, "btp role collection "+op+"ed",
				slog.Int("attempts", attempt+1), slog.Int("user_version", u.Version))
			return u, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return approval.UserRoles{}, err
		}
		switch {
		case e.ambiguous:
		case !want && (e.BackendStatus == http.StatusNotFound || e.BackendStatus == http.StatusBadRequest):
			// Perhaps already unassigned; only a read can tell.
		default:
			return approval.UserRoles{}, err
		}
		if attempt >= max(c.cfg.MaxRetries, 2) {
			return approval.UserRoles{}, err
		}
		log.LogAttrs(ctx, slog.LevelWarn, "btp role collection "+op+" outcome unknown, reading the user",
			slog.Int("attempt", attempt+1), slog.String("error", err.Error()))
		u, gerr := c.user(ctx, scope, user, corr)
		switch {
		case gerr == nil && u.Has(collection) == want:
			log.LogAttrs(ctx, slog.LevelInfo, "btp role collection "+op+" had happened", slog.Int("user_version", u.Version))
			return u, nil
		case !want && errors.Is(gerr, approval.ErrNotFound):
			// No such user, so nothing is assigned to it.
			return approval.UserRoles{Name: user.Name, Origin: user.Origin, RoleCollections: []string{}}, nil
		case gerr == nil && !e.ambiguous:
			// A refusal, and the read shows that it stands.
			return approval.UserRoles{}, err
		case gerr == nil, want && errors.Is(gerr, approval.ErrNotFound):
			// It had not happened (for an assign to a new user: the user
			// was not created either): try again.
		default:
			return approval.UserRoles{}, ambiguousChange(op, scope, collection, corr, gerr)
		}
		if err := c.sleep(ctx, c.backoff(attempt, 0)); err != nil {
			return approval.UserRoles{}, ambiguousChange(op, scope, collection, corr, err)
		}
	}
}

// settle reads the user after a change whose answer could not be decoded.
func (c *Client) settle(ctx context.Context, op string, scope approval.Scope, collection string, user approval.BTPUser, corr string, cause error) (approval.UserRoles, error) {
	u, err := c.user(ctx, scope, user, corr)
	if err != nil {
		return approval.UserRoles{}, ambiguousChange(op, scope, collection, corr, errors.Join(cause, err))
	}
	return u, nil
}

func ambiguousChange(op string, scope approval.Scope, collection, corr string, cause error) *Error {
	what := "the user may or may not hold the role collection now"
	return &Error{Op: op, Scope: scope, Name: collection, CorrelationID: corr, ambiguous: true, Message: "outcome unknown, " + what, Err: cause}
}

// RoleCollection reads a role collection's metadata (no user list). A name
// the scope does not have is an error matching approval.ErrNotFound (recorded:
// backend 404 "No entity found with values = ...").
func (c *Client) RoleCollection(ctx context.Context, scope approval.Scope, name string) (approval.RoleCollection, error) {
	corr := newCorrelationID()
	if err := c.checkAssignment(OpGetRoleCollection, scope, name, approval.BTPUser{}, corr); err != nil {
		return approval.RoleCollection{}, err
	}
	cl := c.roleCommand(roleCollectionPath, "get", OpGetRoleCollection, scope, name, corr, map[string]string{"roleCollectionName": name})
	resp, err := c.do(ctx, cl)
	if err != nil {
		return approval.RoleCollection{}, err
	}
	var rc struct {
		Name           string            `json:"name"`
		Description    string            `json:"description"`
		RoleReferences []json.RawMessage `json:"roleReferences"`
		IsReadOnly     bool              `json:"isReadOnly"`
	}
	if err := json.Unmarshal(resp.body, &rc); err != nil || rc.Name == "" {
		e := c.newError(cl)
		e.StatusCode, e.Err, e.Message = resp.status, ErrProtocol, "role-collection get response is not a role collection"
		return approval.RoleCollection{}, e
	}
	return approval.RoleCollection{Name: rc.Name, Description: clean(rc.Description), ReadOnly: rc.IsReadOnly, Roles: len(rc.RoleReferences)}, nil
}

// decodeUser reads the user object of security/user get and of a user assign
// or unassign (reference §1.3). Unknown fields are ignored; username is what
// the recorder blanks, so e-mail stands in for it.
func (c *Client) decodeUser(cl *call, resp *response) (approval.UserRoles, error) {
	var u struct {
		ID              string    `json:"id"`
		Username        string    `json:"username"`
		Email           string    `json:"email"`
		Origin          string    `json:"origin"`
		ZoneID          string    `json:"zoneId"`
		Version         int       `json:"version"`
		RoleCollections *[]string `json:"roleCollections"`
	}
	if err := json.Unmarshal(resp.body, &u); err != nil || u.RoleCollections == nil {
		e := c.newError(cl)
		e.StatusCode, e.Err = resp.status, ErrProtocol
		e.Message = cl.op + " response is not a user with roleCollections"
		return approval.UserRoles{}, e
	}
	name := u.Username
	if name == "" || name == "redacted" {
		name = u.Email
	}
	rcs := make([]string, 0, len(*u.RoleCollections))
	for _, r := range *u.RoleCollections {
		rcs = append(rcs, clean(r))
	}
	return approval.UserRoles{
		ID: u.ID, Name: clean(name), Email: clean(u.Email), Origin: approval.NormalizeOrigin(u.Origin),
		ZoneID: strings.ToLower(u.ZoneID), Version: u.Version, RoleCollections: rcs,
	}, nil
}
