package approval

import (
	"context"
	"time"
)

// Store keeps requests and their sealed secrets. Every method that changes a
// request is one atomic compare-and-set that also appends the audit entry; if the
// audit entry cannot be written, nothing changes. Implemented by internal/store.
type Store interface {
	// Create stores a new PENDING request and reserves its scope and name for
	// it, in one step; its id must be unused (ErrConflict) and the name not
	// held by another request (ErrNameHeld).
	Create(ctx context.Context, r *Request, a AuditEntry, deadline time.Time) error
	// Get returns the request, or ErrNotFound.
	Get(ctx context.Context, id string) (*Request, error)
	// Apply writes next over the stored request if the stored state and version
	// still equal from and fromVersion, bumping the version; otherwise ErrConflict.
	Apply(ctx context.Context, next *Request, from State, fromVersion int64, a AuditEntry, fx Effects) error
	// Take atomically moves an ISSUED request to DELIVERED and returns and deletes
	// its sealed secret. ErrAlreadyTaken when there is none.
	// deadline is the request's next deadline after delivery (zero: none).
	Take(ctx context.Context, next *Request, fromVersion int64, a AuditEntry, deadline time.Time) ([]byte, error)

	// ListByRequester returns a user's requests, newest first.
	ListByRequester(ctx context.Context, user string, limit int64) ([]*Request, error)
	// ListLive returns a page of a user's live credentials (requests ISSUED
	// or DELIVERED), newest first, and how many they have.
	ListLive(ctx context.Context, user string, offset, limit int64) ([]*Request, int64, error)
	// ListPending returns requests waiting for approval, oldest first.
	ListPending(ctx context.Context, limit int64) ([]*Request, error)
	// NameHolder returns the id of the request that holds the reservation of a
	// credential name in a scope — from its submission until its end, and for
	// an issued credential until BTP confirmed its deletion — or ErrNotFound
	// when no request holds it.
	NameHolder(ctx context.Context, scope Scope, name string) (string, error)
	// HoldName reserves a name no one holds for token, for ttl, and reports
	// whether it was free: an admin's delete at BTP of a credential no
	// request holds holds its name until BTP answered, so that no request
	// takes the name meanwhile (NameHolder then returns token).
	HoldName(ctx context.Context, scope Scope, name, token string, ttl time.Duration) (bool, error)
	// ReleaseName ends token's hold; a name held by anyone else stays held.
	ReleaseName(ctx context.Context, scope Scope, name, token string) error

	// Mint queue: a durable queue with at-least-once delivery.
	ClaimMintJobs(ctx context.Context, consumer string, block, minIdle time.Duration) ([]MintJob, error)
	AckMintJob(ctx context.Context, job MintJob) error

	// DueDeadlines returns the requests whose deadline is at or before now.
	DueDeadlines(ctx context.Context, now time.Time, limit int64) ([]Due, error)
	// DropDeadline removes a request's deadline if it is still at.
	DropDeadline(ctx context.Context, id string, at time.Time) error

	// Alive reports whether a replica's liveness lease is current.
	Alive(ctx context.Context, replica string) (bool, error)

	// Note appends an audit entry that changes no request: a refused
	// attempt, an admin lookup or delete, a policy load, a replica start.
	Note(ctx context.Context, a AuditEntry) error

	// Quotas count pending requests and cache lookups (limits.go).
	Quotas
}

// Effects are the side writes that go with a transition, in the same atomic step.
type Effects struct {
	EnqueueMint   bool          // add the request to the mint queue
	SealedSecret  []byte        // store the sealed secret ...
	SecretTTL     time.Duration // ... for this long
	DropSecret    bool          // delete any sealed secret
	Deadline      time.Time     // set the request's next deadline (zero: leave as is)
	ClearDeadline bool          // remove the request from the deadline set
	// ReleaseName gives up the request's reservation of its scope and name
	// (at its end: nothing of it lives at BTP any more).
	ReleaseName bool
}

// Due is a request whose deadline has come.
type Due struct {
	ID string
	At time.Time
}

// MintJob is one delivery of a queued mint.
type MintJob struct {
	StreamID   string
	RequestID  string
	Deliveries int64
}

// AuditEntry is one line of the audit trail. It never holds secret material.
type AuditEntry struct {
	RequestID  string    `json:"request_id,omitempty"` // empty on an entry about no request (a list, a policy load)
	From       State     `json:"from,omitempty"`
	To         State     `json:"to,omitempty"` // empty on an entry that changes no request (Event)
	Actor      string    `json:"actor"`
	At         time.Time `json:"at"`
	Rule       string    `json:"rule,omitempty"`
	PolicyHash string    `json:"policy_hash,omitempty"`
	Note       string    `json:"note,omitempty"`
	// Reason is a denier's own words (user text, at most MaxDenyReason
	// characters): the one piece of free text an entry holds.
	Reason string `json:"reason,omitempty"`

	// Event names what an entry that changes no request records (Store.Note):
	// refused, list, get, delete, policy, start. Empty on a transition.
	Event  string `json:"event,omitempty"`
	Action Action `json:"action,omitempty"` // what was attempted (refused)
	Scope  string `json:"scope,omitempty"`
	Name   string `json:"name,omitempty"`   // the credential name
	Result string `json:"result,omitempty"` // how it ended, in credbot's words
}
