package handlers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/store"
	"github.com/slack-go/slack"
)

// countingLimiter counts every command it is asked about; its window always
// has left of it.
type countingLimiter struct {
	n    int64
	left time.Duration
}

func (l *countingLimiter) CountInWindow(_ context.Context, key string, _ time.Duration) (int64, time.Duration, error) {
	l.n++
	return l.n, l.left, nil
}

// recordingInbox remembers what was recorded and never hands it out. It
// counts quotas as the store does, each window with left of it.
type recordingInbox struct {
	recorded, calls int
	counts          map[string]int64
	quotas          []store.Quota
	left            time.Duration
}

func (i *recordingInbox) Record(_ context.Context, _ string, _ time.Duration, _ []byte, q store.Quota) (store.Recorded, time.Duration, error) {
	i.calls++
	if q.Limit > 0 {
		i.quotas = append(i.quotas, q)
		if i.counts == nil {
			i.counts = map[string]int64{}
		}
		if i.counts[q.Key]++; i.counts[q.Key] > q.Limit {
			return store.RecordedOver, i.left, nil
		}
	}
	i.recorded++
	return store.RecordedNew, 0, nil
}
func (i *recordingInbox) ClaimInbox(context.Context, string, store.InboxRead) ([]store.InboxEntry, error) {
	return nil, nil
}
func (i *recordingInbox) DoneInbox(context.Context, string) error { return nil }

func ackBody(t *testing.T, ack any) string {
	t.Helper()
	b, err := json.Marshal(ack)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommandsPastTheLimitAreRefusedInTheAckAndClicksDoNotCount(t *testing.T) {
	lim := &countingLimiter{left: 36200 * time.Millisecond}
	inbox := &recordingInbox{left: 36200 * time.Millisecond}
	s := NewServer(refuser{}, Config{Limiter: lim, CommandsPerMinute: 2, Inbox: inbox})
	defer s.Close()
	ctx := context.Background()
	cmd := func(text string) string {
		return ackBody(t, s.HandleCommand(ctx, slack.SlashCommand{UserID: "U0ALICE", Text: text, TriggerID: "t-" + text + time.Now().String()}))
	}

	// Help and usage errors are answered in the ack and cost nothing.
	for range 5 {
		cmd("help")
		cmd("list")
	}
	// Nor do clicks: an approver may rightly clear many requests in a minute.
	for range 5 {
		s.HandleInteraction(ctx, slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, User: slack.User{ID: "U0ALICE"},
			ActionCallback: slack.ActionCallbacks{BlockActions: []*slack.BlockAction{{ActionID: blockkit.ActionApprove, Value: "r0123456789ab"}}}})
	}
	if lim.n != 0 || len(inbox.quotas) != 0 {
		t.Fatalf("%d of help, usage errors and clicks were counted (%d in the inbox's quota)", lim.n, len(inbox.quotas))
	}
	recorded, calls := inbox.recorded, inbox.calls
	for i := range 2 {
		if a := cmd("status"); !strings.Contains(a, "Looking up") {
			t.Fatalf("command %d: %s", i+1, a)
		}
	}
	a := cmd("status")
	if !strings.Contains(a, "at most 2 commands a minute from one person; try again in 37 s") || !strings.Contains(a, "Nothing was done") {
		t.Fatalf("third command: %s", a)
	}
	if inbox.recorded != recorded+2 {
		t.Fatalf("%d commands recorded, want the 2 within the limit", inbox.recorded-recorded)
	}
	// Each ack went to Redis once: the count is made by the step that
	// records the command, not by a call of its own before it.
	if lim.n != 0 || inbox.calls != calls+3 {
		t.Fatalf("3 commands made %d calls to the limiter and %d to the inbox; want none and 3", lim.n, inbox.calls-calls)
	}
	if q := inbox.quotas[0]; q != (store.Quota{Key: "commands:U0ALICE", Limit: 2, Window: time.Minute}) {
		t.Fatalf("quota %+v", q)
	}
	// A command that opens a form records nothing: the limiter counts it
	// (in the store, on the same counter as the inbox's quota).
	cmd("create")
	if lim.n != 1 || inbox.calls != calls+3 {
		t.Fatalf("a form was counted %d times by the limiter, %d by the inbox; want once, by the limiter", lim.n, inbox.calls-calls-3)
	}
}

func TestWithoutALimiterThereIsNoCommandLimit(t *testing.T) {
	s := NewServer(refuser{}, Config{CommandsPerMinute: 1})
	defer s.Close()
	for i := range 5 {
		if a := ackBody(t, s.HandleCommand(context.Background(), slack.SlashCommand{UserID: "U0ALICE", Text: "status"})); !strings.Contains(a, "Looking up") {
			t.Fatalf("command %d: %s", i+1, a)
		}
	}
}
