package handlers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
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
