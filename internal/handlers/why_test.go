package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

// TestWhyOutcomeOnEveryStateSaysWhatHappened: once a request is no longer
// waiting for approval, "why" says who moved it, when and why — never that
// it waits on approvals.
func TestWhyOutcomeOnEveryStateSaysWhatHappened(t *testing.T) {
	at := time.Date(2026, 11, 29, 21, 30, 0, 0, time.UTC)
	base := func(st approval.State) *approval.Request {
		return &approval.Request{ID: "r000000000001", Requester: "U0REQ", Name: "ci", State: st,
			Approvals: []approval.Approval{{User: "U0APR"}}, DecidedBy: "U0APR", EndedAt: at, UpdatedAt: at,
			PendingUntil: at, ClaimUntil: at.Add(15 * time.Minute), ExpiresAt: at.Add(90 * 24 * time.Hour)}
	}
	for _, c := range []struct {
		r    func() *approval.Request
		want []string
	}{
		{func() *approval.Request {
			r := base(approval.StateDenied)
			r.Approvals, r.DecidedBy, r.EndedBy, r.DenyReason = nil, "U0DENIER", "U0DENIER", "prod is frozen <!channel> *until* Monday"
			return r
		}, []string{"Denied", "<@U0DENIER>", "2026-11-29 21:30 UTC", "reason is below"}},
		{func() *approval.Request {
			r := base(approval.StateDenied)
			r.DecidedBy, r.EndedBy = "U0DENIER", "U0DENIER"
			return r
		}, []string{"Denied", "<@U0DENIER>", "No reason was given", "Approved before the denial by <@U0APR>"}},
		{func() *approval.Request {
			r := base(approval.StateCancelled)
			r.Approvals, r.DecidedBy, r.EndedBy = nil, "U0REQ", "U0REQ"
			return r
		}, []string{"Cancelled", "<@U0REQ>", "2026-11-29 21:30 UTC"}},
		{func() *approval.Request {
			r := base(approval.StateExpired)
			r.EndedBy, r.DecidedBy = "deadline", ""
			return r
		}, []string{"Expired", "nobody decided", "1 approval(s) recorded"}},
		{func() *approval.Request {
			r := base(approval.StateFailed)
			r.EndedBy, r.Failure = "minter", "BTP refused to create the credential: 403"
			return r
		}, []string{"Failed", "BTP refused", "21:30"}},
		{func() *approval.Request {
			r := base(approval.StateRevoked)
			r.EndedBy, r.Failure = "deadline", "the secret was not revealed within the claim window"
			return r
		}, []string{"Revoked", "not revealed within the claim window", "deleted the credential at BTP", "<@U0APR>"}},
		{func() *approval.Request {
			r := base(approval.StateDeleted)
			r.EndedBy, r.EndNote = "U0ADMIN", "deleted by an admin"
			return r
		}, []string{"Deleted", "<@U0ADMIN>", "deleted by an admin"}},
		{func() *approval.Request {
			r := base(approval.StateDeleted)
			r.EndedBy, r.EndNote = "deadline", "the credential reached the end of its lifetime"
			return r
		}, []string{"Deleted", "credbot (a deadline passed)", "end of its lifetime"}},
		{func() *approval.Request { return base(approval.StateApproved) }, []string{"Approved", "<@U0APR>", "creating"}},
		{func() *approval.Request { return base(approval.StateMinting) }, []string{"Approved", "creating"}},
		{func() *approval.Request { return base(approval.StateIssued) }, []string{"Issued", "reveal", "21:45"}},
		{func() *approval.Request { return base(approval.StateDelivered) }, []string{"Delivered", "revealed", "2027-02-27"}},
	} {
		r := c.r()
		got := whyOutcome(r)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", r.State, got, w)
			}
		}
		for _, bad := range []string{"waiting", "Waiting", "more approv", "<!channel>", "frozen"} { // the reason never in mrkdwn
			if strings.Contains(got, bad) {
				t.Errorf("%s: %q says %q", r.State, got, bad)
			}
		}
	}
}
