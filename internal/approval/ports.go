package approval

import (
	"context"
	"time"
)

// Authorizer answers "may this Slack user do this in this scope?" and "has this
// request enough approvals?". Implemented by internal/policy (Casbin).
type Authorizer interface {
	// Authorize decides one action. owner is the requester of the request being
	// acted on (for approve), or "" when there is none. Approving one's own request
	// must never be allowed, whatever the policy says.
	Authorize(ctx context.Context, user string, act Action, scope Scope, owner string) (Decision, error)
	// Quorum reports whether the distinct approvers collected so far satisfy the
	// policy's approval rule for scope.
	Quorum(ctx context.Context, scope Scope, approvers []string) (QuorumStatus, error)
}

// QuorumStatus is the progress of a request towards approval.
type QuorumStatus struct {
	Met bool
	// Have counts only the approvals that advance the rule: an approver from
	// none of the groups it still needs, once its other places are filled,
	// counts for nothing, and says so in Uncounted.
	Have int
	Need int
	// Waiting says what is still missing, each a phrase that reads after
	// "still needs": "one approver from role:security", "one more approver".
	Waiting []string
	// Uncounted are the recorded approvals that do not count, with why.
	Uncounted []Uncounted
	// Rule names the quorum rule(s) that decide, for explanations.
	Rule string
}

// Uncounted is an approval that does not advance the rule.
type Uncounted struct {
	User string
	// Why completes "their approval does not count toward this rule
	// because …", e.g. "they are in neither role:prod-owner nor role:security".
	Why string
}

// Counts reports whether user's approval counts toward the rule.
func (q QuorumStatus) Counts(user string) (bool, string) {
	for _, u := range q.Uncounted {
		if u.User == user {
			return false, u.Why
		}
	}
	return true, ""
}

// Issuer creates and deletes API credentials at BTP. Implemented by internal/btp.
// Create has exactly-once semantics: after an ambiguous failure it resolves by name,
// so a nil error means exactly one live credential whose secret the caller holds.
type Issuer interface {
	Create(ctx context.Context, spec CredentialSpec) (Issued, error)
	Get(ctx context.Context, scope Scope, name string) (Credential, error)
	List(ctx context.Context, scope Scope) ([]Credential, error)
	Delete(ctx context.Context, scope Scope, name string) error
}

// Temporary is implemented by errors that are worth retrying later (network down,
// BTP overloaded). Anything else from the Issuer is a refusal.
type Temporary interface{ Temporary() bool }

// Clock is injected so that deadlines can be tested.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
