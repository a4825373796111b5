package slackapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/policy"
)

type approvers []string

func (a approvers) Approvers(context.Context, approval.Scope) ([]string, error) { return a, nil }

func pending() *approval.Request {
	return &approval.Request{
		ID: "r0123456789ab", Requester: "U0REQUESTER", Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"},
		Name: "ci", Reason: "<!channel> please", State: approval.StatePending, Version: 1,
		CreatedAt: time.Unix(1_700_000_000, 0), PendingUntil: time.Unix(1_700_086_400, 0),
	}
}

func TestApprovalMessageMentionsTheRoutedApproversOnly(t *testing.T) {
	s, api := fakeSlack(t)
	s.SetGroup("S0SEC", "security", "U0SEC1")
	ctx := context.Background()
	n := NewNotifier(api, "C0APPROVALS", NotifierOptions{
		Approvers: approvers{"U0APPROVER", "U0REQUESTER", "group:security", "email:nobody@example.com"},
		Directory: NewDirectory(api, DirectoryConfig{}),
	})
	r := pending()
	ch, ts, err := n.PostApproval(ctx, r, approval.QuorumStatus{Need: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Message(ch, ts)
	for _, want := range []string{`\u003c@U0APPROVER\u003e`, `\u003c!subteam^S0SEC\u003e`, "nobody@example.com"} {
		if !strings.Contains(m.Blocks, want) {
			t.Errorf("approval message lacks %s: %s", want, m.Blocks)
		}
	}
	if strings.Contains(m.Blocks, `Approvers: \u003c@U0REQUESTER`) || strings.Contains(m.Blocks, `, \u003c@U0REQUESTER`) {
		t.Errorf("the requester is mentioned as an approver: %s", m.Blocks)
	}
	if strings.Contains(m.Text, "<!channel>") || strings.Contains(m.Text, "please") {
		t.Errorf("the fallback text carries the reason: %q", m.Text)
	}
}

func TestRemindersGoToTheThreadAndEscalate(t *testing.T) {
	ctx := context.Background()
	for _, esc := range []string{"", "C0ESCALATE"} {
		s, api := fakeSlack(t)
		n := NewNotifier(api, "C0APPROVALS", NotifierOptions{Approvers: approvers{"U0APPROVER"}, EscalationChannel: esc})
		r := pending()
		ch, ts, err := n.PostApproval(ctx, r, approval.QuorumStatus{Need: 1})
		if err != nil {
			t.Fatal(err)
		}
		r.ApprovalChannel, r.ApprovalTS, r.Reminders = ch, ts, 3
		if err := n.Remind(ctx, r, approval.QuorumStatus{Need: 1}, false); err != nil {
			t.Fatal(err)
		}
		if err := n.Remind(ctx, r, approval.QuorumStatus{Need: 1}, true); err != nil {
			t.Fatal(err)
		}
		var thread, broadcast, escalated int
		for _, c := range s.Calls() {
			if c.Method != "chat.postMessage" {
				continue
			}
			switch {
			case c.ThreadTS == ts:
				thread++
				if !strings.Contains(c.Text(), "<@U0APPROVER>") {
					t.Errorf("reminder does not mention the approver: %s", c.Text())
				}
				if c.Params.Get("reply_broadcast") == "true" {
					broadcast++
				}
			case c.Channel == "C0ESCALATE":
				escalated++
			}
		}
		wantBroadcast, wantEscalated := 1, 0
		if esc != "" {
			wantBroadcast, wantEscalated = 0, 1
		}
		if thread != 2 || broadcast != wantBroadcast || escalated != wantEscalated {
			t.Errorf("escalation channel %q: %d thread replies, %d broadcast, %d escalations; want 2, %d, %d",
				esc, thread, broadcast, escalated, wantBroadcast, wantEscalated)
		}
	}
}

// router routes every scope to channel, DMing approvers when dm; it lets
// everyone approve but those in denied.
type router struct {
	channel string
	dm      bool
	denied  map[string]bool
}

func (r router) ApprovalRoute(approval.Scope) policy.Route {
	return policy.Route{Channel: r.channel, DMApprovers: r.dm, Rule: "test route"}
}

func (r router) Authorize(_ context.Context, user string, _ approval.Action, _ approval.Scope, owner string) (approval.Decision, error) {
	return approval.Decision{Allowed: user != owner && !r.denied[user]}, nil
}

// TestApproversAreDMedOnlyWhenRoutedSoAndOnlyThoseWhoMayApprove: the DM
// copies go to the people behind the approver names (groups resolved), each
// authorized again, never the requester, at most maxApproverDMs; and only
// when the route says dm_approvers.
func TestApproversAreDMedOnlyWhenRoutedSoAndOnlyThoseWhoMayApprove(t *testing.T) {
	ctx := context.Background()
	names := approvers{"U0APPROVER", "U0REQUESTER", "U0DENIED", "group:security"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("U0EXTRA%02d", i))
	}
	for _, dm := range []bool{false, true} {
		s, api := fakeSlack(t)
		s.SetGroup("S0SEC", "security", "U0SEC1", "U0APPROVER", "U0REQUESTER")
		n := NewNotifier(api, "C0APPROVALS", NotifierOptions{
			Approvers: names, Directory: NewDirectory(api, DirectoryConfig{}),
			Router: router{channel: "C0ROUTED", dm: dm, denied: map[string]bool{"U0DENIED": true}},
		})
		r := pending()
		ch, ts, err := n.PostApproval(ctx, r, approval.QuorumStatus{Need: 1})
		if err != nil || ch != "C0ROUTED" {
			t.Fatalf("posted in %q (%v), want C0ROUTED", ch, err)
		}
		r.ApprovalChannel, r.ApprovalTS = ch, ts
		refs := n.DMApprovers(ctx, r, approval.QuorumStatus{Need: 1})
		if !dm {
			if len(refs) != 0 {
				t.Errorf("the route does not DM approvers, but %d DMs were sent", len(refs))
			}
			continue
		}
		if len(refs) != maxApproverDMs {
			t.Fatalf("%d DMs, want the cap %d", len(refs), maxApproverDMs)
		}
		got := map[string]bool{}
		for _, ref := range refs {
			got[ref.Channel] = true
			m, ok := s.Message(ref.Channel, ref.TS)
			if !ok || !strings.Contains(m.Blocks, blockkit.ActionApprove) || !strings.Contains(m.Blocks, `\u003c#C0ROUTED\u003e`) {
				t.Errorf("DM %s: %+v", ref.Channel, m)
			}
		}
		for _, want := range []string{"D0APPROVER", "D0SEC1"} {
			if !got[want] {
				t.Errorf("no DM in %s; got %v", want, got)
			}
		}
		for _, not := range []string{"D0REQUESTER", "D0DENIED"} {
			if got[not] {
				t.Errorf("DMed %s", not)
			}
		}
		// The copies follow the request.
		r.ApprovalDMs = refs
		r.State, r.DecidedBy = approval.StateDenied, "U0APPROVER"
		if err := n.UpdateApproval(ctx, r, approval.QuorumStatus{Need: 1}); err != nil {
			t.Fatal(err)
		}
		for _, ref := range refs {
			if m, _ := s.Message(ref.Channel, ref.TS); strings.Contains(m.Blocks, blockkit.ActionApprove) || !strings.Contains(m.Blocks, "Denied") {
				t.Errorf("DM %s not updated: %s", ref.Channel, m.Blocks)
			}
		}
	}
}

// An escalation of a role-collection request names the role collection, not
// the reservation name credbot made up for it.
func TestEscalationOfAnAssignmentNamesTheRoleCollection(t *testing.T) {
	ctx := context.Background()
	s, api := fakeSlack(t)
	n := NewNotifier(api, "C0APPROVALS", NotifierOptions{Approvers: approvers{"U0APPROVER"}, EscalationChannel: "C0ESCALATE"})
	r := pending()
	r.Name = "jit-0123456789abcdef"
	r.Assignment = &approval.Assignment{RoleCollection: "Subaccount Viewer"}
	r.ApprovalChannel, r.ApprovalTS, r.Reminders = "C0APPROVALS", "1700000000.000001", 3
	if err := n.Remind(ctx, r, approval.QuorumStatus{Need: 1}, true); err != nil {
		t.Fatal(err)
	}
	escalated := 0
	for _, c := range s.Calls() {
		if c.Method == "chat.postMessage" && c.Channel == "C0ESCALATE" {
			escalated++
			if !strings.Contains(c.Text(), "Subaccount Viewer") || strings.Contains(c.Text(), "jit-") {
				t.Errorf("escalation: %s", c.Text())
			}
		}
	}
	if escalated != 1 {
		t.Fatalf("%d escalations", escalated)
	}
}
