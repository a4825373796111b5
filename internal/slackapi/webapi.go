// Package slackapi is credbot's outbound Slack adapter: the Web API client
// (one per process, waiting out each method's rate limit off the ack path),
// the identity directory the policy reads people and groups from (cached), and
// the Notifier through which the lifecycle posts approval messages, reminders,
// DMs and break-glass alerts (rendered by internal/blockkit).
package slackapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// BotScopes are the OAuth scopes of the bot token: exactly what the Web API
// methods below need. The app manifests in manifests/ must ask for this set and
// no more; a test holds them to it.
var BotScopes = []string{
	"commands",         // the /credbot slash command
	"chat:write",       // chat.postMessage, chat.update, chat.postEphemeral
	"im:write",         // conversations.open for the requester's DM
	"users:read",       // users.info: who is asking, and are they a full member
	"users:read.email", // the profile email, for email: policy subjects and approver mentions
	"usergroups:read",  // usergroups.list and usergroups.users.list, for group: subjects
	"channels:read",    // conversations.info: is the bot in a public channel it posts to
	"groups:read",      // conversations.info: is the bot in a private channel it posts to
}

// MethodScopes maps every Web API method the bot calls to the scope it needs
// ("" for none; several, space-separated, when the method needs one or the
// other by the kind of channel). Tests check each call the fake Slack saw
// against it.
var MethodScopes = map[string]string{
	"chat.postMessage":      "chat:write",
	"chat.update":           "chat:write",
	"chat.postEphemeral":    "chat:write",
	"conversations.open":    "im:write",
	"users.info":            "users:read",
	"users.lookupByEmail":   "users:read.email",
	"usergroups.list":       "usergroups:read",
	"usergroups.users.list": "usergroups:read",
	"views.open":            "",
	"views.publish":         "",
	"auth.test":             "",
	"conversations.info":    "channels:read groups:read",
	"apps.connections.open": "", // app-level token (connections:write), Socket Mode only
}

// ErrRateLimited is returned when Slack asks us to wait longer than the
// caller's context allows.
var ErrRateLimited = errors.New("slack rate limit")

// WebAPI is the Slack Web API as credbot calls it. Slack limits each method
// separately, so a 429 on chat.postMessage holds back only chat.postMessage:
// every later call of that method waits out the Retry-After once, instead of
// each caller discovering the limit for itself. Waiting happens only in work
// that runs after the ack; a call whose context ends before the wait would is
// refused at once with ErrRateLimited, so an ack path never stalls.
type WebAPI struct {
	c           *slack.Client
	log         *slog.Logger
	maxAttempts int
	maxWait     time.Duration

	mu    sync.Mutex
	until map[string]time.Time // method → no call before this instant
	dms   map[string]string    // user → their DM channel with the bot

	// Observe, when set, is told about every Web API call: the method, its
	// outcome (ok, rate_limited, error, unreachable) and how long it took.
	Observe func(method, outcome string, took time.Duration)
}

// NewWebAPI wraps c. c must not retry by itself (slack-go's default).
func NewWebAPI(c *slack.Client, log *slog.Logger) *WebAPI {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &WebAPI{c: c, log: log, maxAttempts: 20, maxWait: 2 * time.Minute, until: map[string]time.Time{}, dms: map[string]string{}}
}

// call runs f for method, waiting out and retrying 429s, at most maxAttempts
// times and never past ctx.
func call[T any](ctx context.Context, w *WebAPI, method string, f func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	for attempt := 1; ; attempt++ {
		if err := w.wait(ctx, method); err != nil {
			return zero, err
		}
		start := time.Now()
		v, err := f(ctx)
		wait, limited := retryAfter(err)
		if w.Observe != nil {
			w.Observe(method, slackOutcome(err, limited), time.Since(start))
		}
		if !limited {
			return v, err
		}
		w.block(method, wait)
		w.log.InfoContext(ctx, "slack rate limited", "method", method, "retry_after", wait, "attempt", attempt)
		if attempt >= w.maxAttempts {
			return zero, fmt.Errorf("%s: %w: gave up after %d attempts", method, ErrRateLimited, attempt)
		}
	}
}

// slackOutcome names a call's result for metrics.
func slackOutcome(err error, limited bool) string {
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	switch {
	case err == nil:
		return "ok"
	case limited:
		return "rate_limited"
	case errors.As(err, &se), errors.As(err, &sc):
		return "error" // Slack answered: invalid_auth, not_in_channel, a 5xx, …
	}
	return "unreachable"
}

// retryAfter reports whether err is Slack's 429, and how long it asks to wait.
func retryAfter(err error) (time.Duration, bool) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return max(rl.RetryAfter, 100*time.Millisecond), true
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusTooManyRequests {
		return time.Second, true // a 429 without Retry-After: Slack's usual window
	}
	return 0, false
}

func (w *WebAPI) block(method string, d time.Duration) {
	d = min(d, w.maxWait)
	w.mu.Lock()
	defer w.mu.Unlock()
	if t := time.Now().Add(d); t.After(w.until[method]) {
		w.until[method] = t
	}
}

// wait blocks until method may be called again, or fails at once if ctx would
// end first.
func (w *WebAPI) wait(ctx context.Context, method string) error {
	for {
		w.mu.Lock()
		d := time.Until(w.until[method])
		w.mu.Unlock()
		if d <= 0 {
			return ctx.Err()
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return fmt.Errorf("%s: %w for another %s", method, ErrRateLimited, d.Round(time.Millisecond))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// PostMessage is chat.postMessage.
func (w *WebAPI) PostMessage(ctx context.Context, channel string, opts ...slack.MsgOption) (string, string, error) {
	type r struct{ ch, ts string }
	v, err := call(ctx, w, "chat.postMessage", func(ctx context.Context) (r, error) {
		ch, ts, err := w.c.PostMessageContext(ctx, channel, opts...)
		return r{ch, ts}, err
	})
	if err != nil {
		return "", "", fmt.Errorf("chat.postMessage: %w", err)
	}
	return v.ch, v.ts, nil
}

// UpdateMessage is chat.update.
func (w *WebAPI) UpdateMessage(ctx context.Context, channel, ts string, opts ...slack.MsgOption) error {
	_, err := call(ctx, w, "chat.update", func(ctx context.Context) (struct{}, error) {
		_, _, _, err := w.c.UpdateMessageContext(ctx, channel, ts, opts...)
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("chat.update: %w", err)
	}
	return nil
}

// PostEphemeral is chat.postEphemeral.
func (w *WebAPI) PostEphemeral(ctx context.Context, channel, user string, opts ...slack.MsgOption) error {
	_, err := call(ctx, w, "chat.postEphemeral", func(ctx context.Context) (string, error) {
		return w.c.PostEphemeralContext(ctx, channel, user, opts...)
	})
	if err != nil {
		return fmt.Errorf("chat.postEphemeral: %w", err)
	}
	return nil
}

// DM returns the user's direct-message channel with the bot (conversations.open,
// remembered: Slack answers with the same channel every time).
func (w *WebAPI) DM(ctx context.Context, user string) (string, error) {
	w.mu.Lock()
	ch, ok := w.dms[user]
	w.mu.Unlock()
	if ok {
		return ch, nil
	}
	c, err := call(ctx, w, "conversations.open", func(ctx context.Context) (*slack.Channel, error) {
		c, _, _, err := w.c.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
		return c, err
	})
	if err != nil {
		return "", fmt.Errorf("conversations.open: %w", err)
	}
	w.mu.Lock()
	w.dms[user] = c.ID
	w.mu.Unlock()
	return c.ID, nil
}

// UserInfo is users.info.
func (w *WebAPI) UserInfo(ctx context.Context, id string) (*slack.User, error) {
	return call(ctx, w, "users.info", func(ctx context.Context) (*slack.User, error) {
		return w.c.GetUserInfoContext(ctx, id)
	})
}

// UserByEmail is users.lookupByEmail.
func (w *WebAPI) UserByEmail(ctx context.Context, email string) (*slack.User, error) {
	return call(ctx, w, "users.lookupByEmail", func(ctx context.Context) (*slack.User, error) {
		return w.c.GetUserByEmailContext(ctx, email)
	})
}

// UserGroups is usergroups.list.
func (w *WebAPI) UserGroups(ctx context.Context) ([]slack.UserGroup, error) {
	return call(ctx, w, "usergroups.list", func(ctx context.Context) ([]slack.UserGroup, error) {
		return w.c.GetUserGroupsContext(ctx)
	})
}

// UserGroupMembers is usergroups.users.list.
func (w *WebAPI) UserGroupMembers(ctx context.Context, id string) ([]string, error) {
	return call(ctx, w, "usergroups.users.list", func(ctx context.Context) ([]string, error) {
		return w.c.GetUserGroupMembersContext(ctx, id)
	})
}

// OpenView is views.open. It runs inside an ack, so its context is short and a
// rate limit fails it rather than delaying the ack.
func (w *WebAPI) OpenView(ctx context.Context, trigger string, v slack.ModalViewRequest) error {
	_, err := call(ctx, w, "views.open", func(ctx context.Context) (*slack.ViewResponse, error) {
		return w.c.OpenViewContext(ctx, trigger, v)
	})
	if err != nil {
		return fmt.Errorf("views.open: %w", err)
	}
	return nil
}

// PublishHome is views.publish of a user's App Home tab.
func (w *WebAPI) PublishHome(ctx context.Context, user string, v slack.HomeTabViewRequest) error {
	_, err := call(ctx, w, "views.publish", func(ctx context.Context) (*slack.ViewResponse, error) {
		return w.c.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: v})
	})
	if err != nil {
		return fmt.Errorf("views.publish: %w", err)
	}
	return nil
}

// ChannelMember is conversations.info: whether the bot is a member of a
// channel, and its name, for readiness and doctor.
func (w *WebAPI) ChannelMember(ctx context.Context, channel string) (member bool, name string, err error) {
	ch, err := call(ctx, w, "conversations.info", func(ctx context.Context) (*slack.Channel, error) {
		return w.c.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: channel})
	})
	if err != nil {
		return false, "", fmt.Errorf("conversations.info %s: %w", channel, err)
	}
	return ch.IsMember, ch.Name, nil
}

// AuthTest is auth.test: who the bot is, and in which team it is installed.
func (w *WebAPI) AuthTest(ctx context.Context) (*slack.AuthTestResponse, error) {
	return call(ctx, w, "auth.test", func(ctx context.Context) (*slack.AuthTestResponse, error) {
		return w.c.AuthTestContext(ctx)
	})
}
