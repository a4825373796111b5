package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// refuser is a Lifecycle that refuses everything, for input fuzzing.
type refuser struct{}

var errRefused = &approval.UserError{Msg: "no", Err: approval.ErrForbidden}

func (refuser) Submit(context.Context, approval.Submission) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) Breakglass(context.Context, approval.Submission) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) Review(context.Context, string, string, bool) (approval.Outcome, error) {
	return approval.Outcome{}, errRefused
}
func (refuser) Decide(context.Context, string, string, bool) (approval.Outcome, error) {
	return approval.Outcome{}, errRefused
}
func (refuser) Deny(context.Context, string, string, string) (approval.Outcome, error) {
	return approval.Outcome{}, errRefused
}
func (refuser) Credentials(context.Context, string, int, int) ([]*approval.Request, int, error) {
	return nil, 0, errors.New("down")
}
func (refuser) Reveal(context.Context, string, string) (approval.Revelation, error) {
	return approval.Revelation{}, errRefused
}
func (refuser) Undeliverable(context.Context, string, error) error { return nil }
func (refuser) Status(context.Context, string) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) Cancel(context.Context, string, string) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) DeleteOwn(context.Context, string, string) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) Rotate(context.Context, approval.Rotation) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) RetireOld(context.Context, string, string) (*approval.Request, error) {
	return nil, errRefused
}
func (refuser) Extend(context.Context, string, string, time.Duration) (approval.Outcome, error) {
	return approval.Outcome{}, errRefused
}
func (refuser) DecideExtension(context.Context, string, string, int64, bool) (approval.Outcome, error) {
	return approval.Outcome{}, errRefused
}
func (refuser) Requests(context.Context, string) ([]*approval.Request, []*approval.Request, error) {
	return nil, nil, errors.New("down")
}
func (refuser) ListCredentials(context.Context, string, approval.Scope) ([]approval.CredentialView, error) {
	return nil, errRefused
}
func (refuser) GetCredential(context.Context, string, approval.Scope, string) (approval.CredentialView, error) {
	return approval.CredentialView{}, errRefused
}
func (refuser) DeleteCredential(context.Context, string, approval.Scope, string) error {
	return errRefused
}
func (refuser) CheckDelete(context.Context, string, approval.Scope, string) error {
	return errRefused
}
func (refuser) Adopt(context.Context, approval.Adoption) (*approval.Request, error) {
	return nil, errRefused
}

// Whatever Slack (or someone who stole a signature) sends, the handlers answer
// with something Slack can take, and never panic.
func FuzzHandlePayloads(f *testing.F) {
	f.Add(`{"type":"block_actions","user":{"id":"U0APPROVER"},"actions":[{"action_id":"credbot_approve","value":"r0123456789ab"}]}`, "create")
	f.Add(`{"type":"block_actions","user":{"id":"U0APPROVER"},"actions":[{"action_id":"credbot_delete","value":"subaccount:11111111-2222-4333-8444-555555555555|x"}]}`, "delete --subaccount 11111111-2222-4333-8444-555555555555 --name x")
	f.Add(`{"type":"block_actions","user":{"id":"U0APPROVER"},"actions":[{"action_id":"credbot_more","value":"globalaccount:acme-ga|-1"}]}`, "list --global-account acme-ga")
	f.Add(`{"type":"view_submission","user":{"id":"U0REQ"},"view":{"callback_id":"credbot_create","state":{"values":{"scope_kind":{"value":{"selected_option":{"value":"subaccount"}}}}}}}`, "status")
	f.Add(`{"type":"view_submission","user":{"id":"U0REQ"},"view":{"callback_id":"credbot_create"}}`, "why r0123456789ab")
	f.Fuzz(func(t *testing.T, payload, text string) {
		s := NewServer(refuser{}, Config{})
		defer s.Close()
		var cb slack.InteractionCallback
		if json.Unmarshal([]byte(payload), &cb) == nil {
			if ack := s.HandleInteraction(context.Background(), cb); ack != nil {
				if _, err := json.Marshal(ack); err != nil {
					t.Fatalf("ack does not marshal: %v", err)
				}
			}
		}
		ack := s.HandleCommand(context.Background(), slack.SlashCommand{UserID: "U0REQUESTER", Text: text, TriggerID: "1.2.3"})
		b, err := json.Marshal(ack)
		if err != nil || len(b) >= 20*1024 {
			t.Fatalf("slash ack of %d bytes (%v): Socket Mode drops acks of 20 KB", len(b), err)
		}
	})
}
