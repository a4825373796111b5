package btptest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

// Role collections and users (shared/reference/btp-role-collections.md), in
// the shapes of fixtures/btp-cli-server/role-collection:
//
//	security/role-collection?assign|unassign  → the shadow user after the change
//	security/role-collection?get              → {name, description, roleReferences, isReadOnly},
//	                                            or {count, totalPages, items} with showUserAssignments
//	security/role-collection?list             → an array of role collections
//	security/user?get                         → the shadow user
//	security/user?list                        → an array of user names
//
// The emulator keeps each scope's shadow users with their directly assigned
// role collections, so that tests can assert what BTP holds (RoleCollections).

// DefaultRoleCollections are the predefined role collections each kind of
// scope offers, by their display names at SAP.
var DefaultRoleCollections = map[approval.ScopeKind][]string{
	approval.ScopeSubaccount:    {"Subaccount Administrator", "Subaccount Viewer", "Destination Administrator", "Destination Viewer"},
	approval.ScopeDirectory:     {"Directory Administrator", "Directory Viewer"},
	approval.ScopeGlobalAccount: {"Global Account Administrator", "Global Account Viewer"},
}

// userKey is a user within one zone: the pair (origin, name). Assumption: user
// names compare case-insensitively (not recorded, reference §6).
type userKey struct{ origin, name string }

func keyOf(origin, name string) userKey {
	return userKey{approval.NormalizeOrigin(origin), strings.ToLower(name)}
}

type shadowUser struct {
	id, name, origin  string
	created, modified time.Time
	version           int
	collections       []string
}

// RoleCollections returns the role collections user holds directly in scope,
// in the order they were assigned; nil when BTP has no such user there.
func (s *Server) RoleCollections(scope approval.Scope, user approval.BTPUser) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[key(scope)][keyOf(user.Origin, user.Name)]
	if u == nil {
		return nil
	}
	return append([]string{}, u.collections...)
}

// AssignRoleCollection assigns a role collection out of band, as an
// administrator in the cockpit would: for tests of access that credbot did
// not grant.
func (s *Server) AssignRoleCollection(scope approval.Scope, collection string, user approval.BTPUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.shadow(scope, user.Origin, user.Name, true)
	if !slices.Contains(u.collections, collection) {
		u.collections = append(u.collections, collection)
		u.version++
		u.modified = time.Now()
	}
}

// UnassignRoleCollection takes a role collection away out of band.
func (s *Server) UnassignRoleCollection(scope approval.Scope, collection string, user approval.BTPUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.shadow(scope, user.Origin, user.Name, false); u != nil {
		if i := slices.Index(u.collections, collection); i >= 0 {
			u.collections = slices.Delete(u.collections, i, i+1)
			u.version++
			u.modified = time.Now()
		}
	}
}

// shadow finds (or, with create, makes) a user. Callers hold s.mu.
func (s *Server) shadow(scope approval.Scope, origin, name string, create bool) *shadowUser {
	k := key(scope)
	uk := keyOf(origin, name)
	if u := s.users[k][uk]; u != nil || !create {
		return u
	}
	if s.users[k] == nil {
		s.users[k] = map[userKey]*shadowUser{}
	}
	now := time.Now()
	u := &shadowUser{id: randomUUID(), name: name, origin: uk.origin, created: now, modified: now, collections: []string{}}
	s.users[k][uk] = u
	return u
}

// collections returns the role collection names of scope. Callers hold s.mu.
func (s *Server) collections(scope approval.Scope) map[string]bool {
	k := key(scope)
	if m, ok := s.rcs[k]; ok {
		return m
	}
	names := DefaultRoleCollections[scope.Kind]
	if custom, ok := s.opts.RoleCollections[scope.Kind]; ok {
		names = custom
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	s.rcs[k] = m
	return m
}

const bxTime = "2006-01-02T15:04:05.000+00:00"

// userObject is the recorded shape of a shadow user (reference §1.3).
// The global account's default-IdP users carry givenName/familyName
// "unknown", as recorded; others have none.
func (s *Server) userObject(z zone, scope approval.Scope, u *shadowUser) obj {
	o := obj{{"id", u.id}, {"username", u.name}, {"email", u.name}}
	if scope.Kind == approval.ScopeGlobalAccount && u.origin == approval.DefaultUserOrigin {
		o = append(o, kv{"givenName", "unknown"}, kv{"familyName", "unknown"})
	}
	return append(o,
		kv{"created", u.created.UTC().Format(bxTime)}, kv{"modified", u.modified.UTC().Format(bxTime)},
		kv{"origin", u.origin}, kv{"zoneId", z.guid}, kv{"verified", false},
		kv{"legacyVerificationBehavior", false}, kv{"passwordChangeRequired", false},
		kv{"version", u.version}, kv{"active", true},
		kv{"roleCollections", append([]string{}, u.collections...)},
	)
}

// noEntity is the recorded backend 404 of an unknown role collection.
func noEntity(z zone, name string) *reply {
	return backendError(http.StatusNotFound, fmt.Sprintf("No entity found with values = [[%s, %s, %s]]", z.guid, name, z.guid))
}

func (s *Server) knownOrigin(o string) bool { return s.origins[approval.NormalizeOrigin(o)] }

func (s *Server) roleCollection(r *http.Request, action string, scope approval.Scope, p map[string]string) *reply {
	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	rcs := s.collections(scope)
	name := p["roleCollectionName"]
	switch action {
	case "list":
		items := []obj{}
		for _, n := range slices.Sorted(maps.Keys(rcs)) {
			items = append(items, rcObject(n))
		}
		return backendReply(http.StatusOK, items)
	case "get":
		if !rcs[name] {
			return noEntity(z, name)
		}
		if p["showUserAssignments"] != "true" {
			return backendReply(http.StatusOK, rcObject(name))
		}
		// Assumption: one page holds every user (page size unknown, §1.4).
		items := []obj{}
		for _, uk := range slices.SortedFunc(maps.Keys(s.users[key(scope)]), func(a, b userKey) int {
			return strings.Compare(a.origin+"\x00"+a.name, b.origin+"\x00"+b.name)
		}) {
			u := s.users[key(scope)][uk]
			if slices.Contains(u.collections, name) {
				items = append(items, obj{{"id", u.id}, {"username", u.name}, {"zoneId", z.guid}, {"email", u.name},
					{"givenName", nil}, {"familyName", nil}, {"origin", u.origin}})
			}
		}
		return backendReply(http.StatusOK, obj{{"count", len(items)}, {"totalPages", 1}, {"items", items}})
	case "assign", "unassign":
	default:
		return serverMessage(http.StatusNotFound, "Unknown command security/role-collection?"+action)
	}

	userName, origin := p["userName"], p["origin"]
	if userName == "" {
		// Assumption: group and attribute assignments are not emulated.
		return backendError(http.StatusBadRequest, "Specify a userName.")
	}
	if origin == "" {
		origin = "ldap" // Assumption: the CLI's default origin when none is given
	}
	if !s.knownOrigin(origin) {
		// Assumption: modelled on the recorded user list with an unknown origin.
		return backendError(http.StatusNotFound, "Could not find user: didn't find idp")
	}
	if !rcs[name] {
		return noEntity(z, name)
	}
	if action == "assign" {
		u := s.shadow(scope, origin, userName, false)
		if u == nil {
			if p["createUserIfMissing"] != "true" {
				// Assumption: not recorded (reference §6).
				return backendError(http.StatusNotFound, fmt.Sprintf("User %s with origin %s not found.", userName, approval.NormalizeOrigin(origin)))
			}
			// Recorded: a new shadow user answers version 1 with the one
			// collection assigned.
			u = s.shadow(scope, origin, userName, true)
			u.version = 0
		}
		// Assumption: assigning a collection the user holds answers 200 with
		// the user unchanged (not recorded, reference §2).
		if !slices.Contains(u.collections, name) {
			u.collections = append(u.collections, name)
			u.version++
			u.modified = time.Now()
		}
		return backendReply(http.StatusOK, s.userObject(z, scope, u))
	}
	u := s.shadow(scope, origin, userName, false)
	if u == nil {
		// Assumption: not recorded.
		return backendError(http.StatusNotFound, fmt.Sprintf("User %s with origin %s not found.", userName, approval.NormalizeOrigin(origin)))
	}
	i := slices.Index(u.collections, name)
	if i < 0 {
		// Assumption: unassigning what is not assigned is a backend 400 (not
		// recorded; a client must confirm with security/user get).
		return backendError(http.StatusBadRequest, fmt.Sprintf("Role collection %s is not assigned to user %s.", name, userName))
	}
	u.collections = slices.Delete(u.collections, i, i+1)
	u.version++
	u.modified = time.Now()
	return backendReply(http.StatusOK, s.userObject(z, scope, u))
}

// rcObject is the recorded shape of a role collection without its users. The
// emulator names one role reference after the collection.
func rcObject(name string) obj {
	return obj{{"name", name}, {"description", name + " (emulated)"},
		{"roleReferences", []obj{{{"roleTemplateAppId", "cis-local!b2"}, {"roleTemplateName", strings.ReplaceAll(name, " ", "_")},
			{"name", name}, {"description", name}}}},
		{"isReadOnly", true}}
}

func (s *Server) userCommand(r *http.Request, action string, scope approval.Scope, p map[string]string) *reply {
	z := s.zoneOf(r, scope)
	s.mu.Lock()
	defer s.mu.Unlock()
	origin := p["origin"]
	if origin == "" {
		origin = "ldap"
	}
	switch action {
	case "list":
		if !s.knownOrigin(origin) {
			// Recorded.
			return backendError(http.StatusNotFound, "Could not get user names: didn't find idp")
		}
		names := []string{}
		for uk, u := range s.users[key(scope)] {
			if uk.origin == approval.NormalizeOrigin(origin) {
				names = append(names, u.name)
			}
		}
		slices.Sort(names)
		return backendReply(http.StatusOK, names)
	case "get":
		if !s.knownOrigin(origin) {
			// Assumption: like the recorded list.
			return backendError(http.StatusNotFound, "Could not get user: didn't find idp")
		}
		u := s.shadow(scope, origin, p["userName"], false)
		if u == nil {
			// Assumption: an unknown user is a backend 404 (not recorded).
			return backendError(http.StatusNotFound, fmt.Sprintf("User %s with origin %s not found.", p["userName"], approval.NormalizeOrigin(origin)))
		}
		return backendReply(http.StatusOK, s.userObject(z, scope, u))
	}
	return serverMessage(http.StatusNotFound, "Unknown command security/user?"+action)
}
