package handlers

import (
	"context"
	"testing"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// The ack path of a slash command: parse, decide the ack, hand the slow work to
// a goroutine. Slack allows 3 s; this is what credbot spends of it.
func BenchmarkHandleCommandAck(b *testing.B) {
	s := NewServer(refuser{}, Config{})
	defer s.Close()
	cmd := slack.SlashCommand{UserID: "U0REQUESTER",
		Text: `create --subaccount 11111111-2222-4333-8444-555555555555 --name ci-payments --reason "CI pipeline" --expires-in 30d`}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if s.HandleCommand(ctx, cmd) == nil {
			b.Fatal("no ack")
		}
	}
}

func BenchmarkHandleInteractionAck(b *testing.B) {
	s := NewServer(refuser{}, Config{})
	defer s.Close()
	cb := slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, User: slack.User{ID: "U0APPROVER"}}
	cb.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: blockkit.ActionApprove, Value: "r0123456789ab"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.HandleInteraction(ctx, cb)
	}
}
