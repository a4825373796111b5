// Package approval is the centre of credbot: the life of one credential request,
// from a Slack command to a one-time secret in the requester's DM. It imports none
// of Slack, Redis, Casbin or HTTP; those live in adapter packages that implement the
// small interfaces declared here, where they are used.
package approval

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ScopeKind is one of the three BTP levels an API credential can be created at.
type ScopeKind string

const (
	ScopeSubaccount    ScopeKind = "subaccount"
	ScopeDirectory     ScopeKind = "directory"
	ScopeGlobalAccount ScopeKind = "globalaccount"
)

// Scope names the BTP level of a credential. Subaccounts and directories are
// addressed by GUID, the global account by its subdomain, exactly as the btp CLI
// server expects them.
type Scope struct {
	Kind ScopeKind `json:"kind"`
	ID   string    `json:"id"`
}

var (
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	subdomainRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	// nameRE is the Terraform provider's validator for credential names; we also cap
	// the length because the server's limit is unknown.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// Validate rejects anything that is not a well-formed scope identifier, so that
// hostile text never reaches the policy engine, Redis keys or BTP.
func (s Scope) Validate() error {
	switch s.Kind {
	case ScopeSubaccount, ScopeDirectory:
		if !guidRE.MatchString(s.ID) {
			return fmt.Errorf("%w: %s must be a GUID like 11111111-2222-4333-8444-555555555555", ErrInvalid, s.Kind)
		}
	case ScopeGlobalAccount:
		if !subdomainRE.MatchString(s.ID) {
			return fmt.Errorf("%w: global account must be its subdomain (lowercase letters, digits, '-')", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown scope kind %q", ErrInvalid, s.Kind)
	}
	return nil
}

// String renders the scope as the policy domain, e.g. "subaccount:1111…".
func (s Scope) String() string { return string(s.Kind) + ":" + strings.ToLower(s.ID) }

// ParseScope is the inverse of String.
func ParseScope(v string) (Scope, error) {
	kind, id, ok := strings.Cut(v, ":")
	if !ok {
		return Scope{}, fmt.Errorf("%w: scope %q", ErrInvalid, v)
	}
	s := Scope{Kind: ScopeKind(kind), ID: id}
	return s, s.Validate()
}

// ValidateName checks a credential name against what BTP accepts.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name must be 1-64 letters, digits or '-'", ErrInvalid)
	}
	return nil
}

// State is a request's place in the lifecycle. Every change between states is one
// atomic compare-and-set in the store.
type State string

const (
	StatePending   State = "PENDING"
	StateApproved  State = "APPROVED"
	StateDenied    State = "DENIED"
	StateCancelled State = "CANCELLED"
	StateExpired   State = "EXPIRED"
	StateMinting   State = "MINTING"
	StateIssued    State = "ISSUED"
	StateFailed    State = "FAILED"
	StateDelivered State = "DELIVERED"
	StateRevoked   State = "REVOKED"
	StateDeleted   State = "DELETED"
)

// Terminal reports whether no further transition can leave the state.
func (s State) Terminal() bool {
	switch s {
	case StateDenied, StateCancelled, StateExpired, StateFailed, StateRevoked, StateDeleted, StateEnded:
		return true
	}
	return false
}

// MessageRef is where a Slack message lives, for later updates.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Request is one ask for one API credential.
type Request struct {
	ID        string    `json:"id"`
	Requester string    `json:"requester"` // Slack user id
	Team      string    `json:"team,omitempty"`
	Scope     Scope     `json:"scope"`
	Name      string    `json:"name"` // credential name at BTP
	ReadOnly  bool      `json:"read_only"`
	Reason    string    `json:"reason"`
	State     State     `json:"state"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	Approvals []Approval `json:"approvals,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"` // who denied, cancelled or completed the quorum
	Failure   string     `json:"failure,omitempty"`    // user-facing reason of FAILED / REVOKED
	// DenyReason is the denier's own words (user text: bounded, shown only
	// escaped or as plain_text); empty when they gave none.
	DenyReason string `json:"deny_reason,omitempty"`
	// How the request ended, for /credbot why: when, by whom (a Slack user
	// id, or credbot's role: deadline, system, minter) and credbot's note.
	// Set by the transition that moves it into a final state.
	EndedAt time.Time `json:"ended_at,omitempty"`
	EndedBy string    `json:"ended_by,omitempty"`
	EndNote string    `json:"end_note,omitempty"`

	// Where the approval message and the DM notice live, for later updates.
	ApprovalChannel string `json:"approval_channel,omitempty"`
	ApprovalTS      string `json:"approval_ts,omitempty"`
	// ApprovalDMs are the copies of the approval message sent to approvers'
	// DMs when their route says dm_approvers (routes.yaml): at most a few
	// dozen, updated with the channel message.
	ApprovalDMs []MessageRef `json:"approval_dms,omitempty"`
	DMChannel   string       `json:"dm_channel,omitempty"`
	DMTS        string       `json:"dm_ts,omitempty"`

	Credential *Credential `json:"credential,omitempty"` // metadata once ISSUED; never the secret
	// Assignment makes this a just-in-time role collection request
	// (assign.go) rather than a credential.
	Assignment *Assignment `json:"assignment,omitempty"`
	// AdoptedBy is the admin who put a credential credbot did not create
	// under its management (/credbot adopt): the request began DELIVERED,
	// credbot never had its secret, and its lifetime ends in a deletion.
	AdoptedBy string `json:"adopted_by,omitempty"`

	// Certificate, when set, makes this a certificate credential: the
	// requester's X.509 client certificate as canonical PEM (public; the
	// private key stays with the requester and never reaches credbot), and
	// the facts approvers are shown. See CheckCertificate.
	Certificate     string           `json:"certificate,omitempty"`
	CertificateInfo *CertificateInfo `json:"certificate_info,omitempty"`

	// NameFreeAt is when this request, holding the reservation of its name,
	// saw at BTP that no credential had that name, right before its first
	// create. From then on a credential of that name in the scope can only be
	// this request's own (a create whose answer was lost), and only then may
	// an automatic path delete by name.
	NameFreeAt time.Time `json:"name_free_at,omitempty"`

	// Deadlines. The request's single entry in the store's deadline set is the
	// earliest of the ones that apply to its state.
	Lifetime     time.Duration `json:"lifetime,omitempty"`      // how long the credential may live
	PendingUntil time.Time     `json:"pending_until"`           // PENDING expires then
	Reminders    int           `json:"reminders,omitempty"`     // approver reminders sent
	NextReminder time.Time     `json:"next_reminder,omitempty"` // when the next one is due
	ClaimUntil   time.Time     `json:"claim_until,omitempty"`   // ISSUED: reveal by then
	ExpiresAt    time.Time     `json:"expires_at,omitempty"`    // the credential is deleted then
	ExpiryWarned bool          `json:"expiry_warned,omitempty"` // the owner was told it expires
	// Break-glass (breakglass.go): issued without approval, alerted at once,
	// reviewed afterwards. ReviewAt is when it escalates next while nobody
	// has acknowledged it.
	Breakglass  bool         `json:"breakglass,omitempty"`
	Alerts      []MessageRef `json:"alerts,omitempty"` // the alert messages, for updates
	ReviewAt    time.Time    `json:"review_at,omitempty"`
	Escalations int          `json:"escalations,omitempty"`
	AckedBy     string       `json:"acked_by,omitempty"`
	AckedAt     time.Time    `json:"acked_at,omitempty"`
	RevokedBy   string       `json:"revoked_by,omitempty"`
	// Revoking is a lease: a worker is deleting the credential at BTP. While it
	// is set the secret cannot be revealed; if the worker dies the deadline
	// (pushed out by the lease) brings another worker back to finish.
	Revoking    bool      `json:"revoking,omitempty"`
	LeaseUntil  time.Time `json:"lease_until,omitempty"`  // the Revoking worker's lease ends then
	LeaseHolder string    `json:"lease_holder,omitempty"` // the replica that holds it; its death ends the lease early
	// RevokeWhy is why the Revoking worker deletes it, so that a worker that
	// takes the deletion over records the same reason.
	RevokeWhy string `json:"revoke_why,omitempty"`

	// Extension is an owner's ask to push ExpiresAt out, waiting for the
	// approvals the extend quorum needs (extend.go). Nil when none waits.
	Extension *Extension `json:"extension,omitempty"`

	// Action is what the request asks for: create (empty) or rotate. A
	// rotation is a request for a new credential under a new name that
	// replaces the credential of request Rotates (rotate.go).
	Action  Action `json:"action,omitempty"`
	Rotates string `json:"rotates,omitempty"`
	// GraceUntil is when the credential this rotation replaces is deleted:
	// set in the same step that delivers the new secret. RotationDone says
	// the old one is gone.
	GraceUntil   time.Time `json:"grace_until,omitempty"`
	RotationDone bool      `json:"rotation_done,omitempty"`
}

// Extension is a pending ask to extend a credential's lifetime.
type Extension struct {
	By        time.Duration `json:"by"`
	At        time.Time     `json:"at"` // asked then; it lapses after the pending TTL
	Approvals []Approval    `json:"approvals,omitempty"`
	Channel   string        `json:"channel,omitempty"` // the approval message
	TS        string        `json:"ts,omitempty"`
}

// CredentialView is a credential at BTP joined with credbot's record of it.
type CredentialView struct {
	Credential Credential
	Managed    bool     // issued by credbot
	Request    *Request // the request that issued it, when Managed
	// Held is the live request that holds the name and has not issued yet
	// (PENDING, APPROVED, MINTING), when not Managed: what BTP has under the
	// name may be what credbot is creating right now.
	Held      *Request
	Owner     string
	ExpiresAt time.Time
}

// Approval records one approver's click.
type Approval struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
	Rule string    `json:"rule,omitempty"` // the policy rule that allowed it
}

// Credential is the non-secret metadata of an API credential at BTP.
type Credential struct {
	Name     string `json:"name"`
	Scope    Scope  `json:"scope"`
	ReadOnly bool   `json:"read_only"`
	Type     string `json:"type"` // secret, binding-secret, client certificate
	ClientID string `json:"client_id"`
	TokenURL string `json:"token_url"`
	APIURL   string `json:"api_url,omitempty"`
	URL      string `json:"url,omitempty"`
	CertURL  string `json:"cert_url,omitempty"` // certificate credentials: the mutual-TLS host
}

// CredentialSpec is what the bot asks BTP to create.
type CredentialSpec struct {
	Scope       Scope
	Name        string
	ReadOnly    bool
	Certificate string // optional PEM: makes it a certificate credential
	// OwnsName says the caller saw the name free at BTP and holds it reserved,
	// so whatever an ambiguous create leaves under this name is the caller's
	// own and may be deleted and created again. Without it an ambiguous create
	// that left a credential behind is an error, and nothing is deleted.
	OwnsName bool
}

// Issued is the result of a create: metadata plus the one-time secret.
type Issued struct {
	Credential Credential
	Secret     Secret
}

// Secret is the one-time material BTP returns only on create: a clientsecret, or a
// certificate with its key. Every way of printing it redacts; only Fields and
// Plaintext expose it, and only the sealer and the reveal renderer call those.
type Secret struct {
	clientSecret string
	certificate  string
	key          string
}

const redacted = "[REDACTED]"

// NewClientSecret wraps a clientsecret.
func NewClientSecret(v string) Secret { return Secret{clientSecret: v} }

// NewCertificateSecret wraps a certificate credential's material.
func NewCertificateSecret(cert, key string) Secret { return Secret{certificate: cert, key: key} }

// IsZero reports whether the secret holds nothing.
func (s Secret) IsZero() bool { return s == Secret{} }

// SecretField is one named piece of secret material, for the reveal message.
type SecretField struct{ Name, Value string }

// Fields exposes the material, for the reveal message only.
func (s Secret) Fields() []SecretField {
	var out []SecretField
	if s.clientSecret != "" {
		out = append(out, SecretField{"clientsecret", s.clientSecret})
	}
	if s.certificate != "" {
		out = append(out, SecretField{"certificate", s.certificate})
	}
	if s.key != "" {
		out = append(out, SecretField{"key", s.key})
	}
	return out
}

// Plaintext serialises the material for sealing. Nothing else may call it.
func (s Secret) Plaintext() []byte {
	// Fields cannot contain NUL (they are JSON strings from BTP); NUL separates them.
	return []byte(s.clientSecret + "\x00" + s.certificate + "\x00" + s.key)
}

// SecretFromPlaintext is the inverse of Plaintext.
func SecretFromPlaintext(b []byte) (Secret, error) {
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 {
		return Secret{}, errors.New("approval: malformed secret plaintext")
	}
	return Secret{clientSecret: parts[0], certificate: parts[1], key: parts[2]}, nil
}

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }

// Action is what a user asks the policy to allow.
type Action string

const (
	ActionCreate  Action = "create" // request a credential
	ActionApprove Action = "approve"
	ActionList    Action = "list"
	ActionGet     Action = "get"
	ActionDelete  Action = "delete"
	ActionRotate  Action = "rotate" // replace one's own credential with a new one under a new name
	ActionExtend  Action = "extend" // push one's own credential's expiry out
	// ActionBreakglass issues a credential at once, without approval, in an
	// emergency; reviewers (ActionReview) look at it afterwards.
	ActionBreakglass Action = "breakglass"
	// ActionReview acknowledges or revokes someone else's break-glass.
	ActionReview Action = "review"
)

// ActionAssign asks for a role collection (just-in-time access). It always
// travels with the collection it is for, as AssignAction builds it:
// "assign:Subaccount Viewer"; policy rows may use '*' in the collection.
const ActionAssign Action = "assign"

// AssignAction is the action of asking for one role collection.
func AssignAction(collection string) Action { return Action(string(ActionAssign) + ":" + collection) }

// Split separates an action from the object it names: "assign:Subaccount
// Viewer" is assign and "Subaccount Viewer"; other actions name none.
func (a Action) Split() (Action, string) {
	base, obj, ok := strings.Cut(string(a), ":")
	if !ok {
		return a, ""
	}
	return Action(base), obj
}

// Privileged reports whether an action is a gatekeeper's power: approving,
// breaking glass (which skips approval) and reviewing a break-glass. Slack
// groups grant none of them unless the policy trusts groups, since in many
// workspaces anyone may join a group.
func (a Action) Privileged() bool {
	return a == ActionApprove || a == ActionBreakglass || a == ActionReview
}

// Decision is the policy's answer, with enough to explain and audit it.
type Decision struct {
	Allowed    bool
	Rule       string // the deciding policy line, empty on default deny
	Reason     string // human explanation
	PolicyHash string // content hash of the policy that decided
}

// Errors callers match with errors.Is.
var (
	ErrInvalid      = errors.New("invalid input")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("state changed concurrently")
	ErrForbidden    = errors.New("not allowed")
	ErrAlreadyTaken = errors.New("secret already revealed or expired")
	// ErrUnverified: a new credential could not get a token at its tokenurl
	// (the Issuer has deleted it); nothing was handed out.
	ErrUnverified = errors.New("the new credential could not get a token")
	// ErrNameHeld: another request holds the reservation of this name.
	ErrNameHeld = errors.New("name reserved by another request")
	// ErrBreakglassActive: the user already holds a live break-glass.
	ErrBreakglassActive = errors.New("a break-glass is active")
)

// BreakglassActiveError is returned by Store.Create when the requester's
// break-glass lock is held by another live request.
type BreakglassActiveError struct{ Request string }

func (e *BreakglassActiveError) Error() string {
	return "break-glass request " + e.Request + " is still active"
}
func (e *BreakglassActiveError) Unwrap() error { return ErrBreakglassActive }

// Clone is a deep copy of r: changing the copy, down to its approvals,
// credential or assignment, leaves r as it was.
func (r *Request) Clone() *Request {
	c := *r
	c.Approvals = slices.Clone(r.Approvals)
	c.ApprovalDMs = slices.Clone(r.ApprovalDMs)
	c.Alerts = slices.Clone(r.Alerts)
	c.Credential = clonePtr(r.Credential)
	c.CertificateInfo = clonePtr(r.CertificateInfo)
	if c.Assignment = clonePtr(r.Assignment); c.Assignment != nil {
		c.Assignment.Held = slices.Clone(r.Assignment.Held)
		c.Assignment.HeldAfter = slices.Clone(r.Assignment.HeldAfter)
	}
	if c.Extension = clonePtr(r.Extension); c.Extension != nil {
		c.Extension.Approvals = slices.Clone(r.Extension.Approvals)
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
