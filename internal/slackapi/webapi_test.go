package slackapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/slackfake"
	"github.com/slack-go/slack"
)

func fakeSlack(t *testing.T) (*slackfake.Server, *WebAPI) {
	t.Helper()
	s, err := slackfake.Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, NewWebAPI(slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL())), nil)
}

func count(s *slackfake.Server, method string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

func TestWebAPIWaitsOutRetryAfterForThatMethodOnly(t *testing.T) {
	s, api := fakeSlack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Inject(slackfake.Fault{Method: "chat.postMessage", Times: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})

	posted := make(chan error, 1)
	go func() {
		_, _, err := api.PostMessage(ctx, "C1", slack.MsgOptionText("hello", false))
		posted <- err
	}()
	// Once the 429 is in, chat.postMessage is held back but users.info is not.
	if _, err := s.WaitFor(ctx, func(c slackfake.Call) bool { return c.Method == "chat.postMessage!fault" }); err != nil {
		t.Fatal(err)
	}
	if _, err := api.UserInfo(ctx, "U0ANYONE"); err != nil {
		t.Fatal(err)
	}
	if n := count(s, "chat.postMessage"); n != 0 {
		t.Fatalf("chat.postMessage retried before users.info answered: the wait is not per method (%d)", n)
	}
	if err := <-posted; err != nil {
		t.Fatalf("the message was not delivered after the wait: %v", err)
	}
	var limited, delivered time.Time
	for _, c := range s.Calls() {
		switch c.Method {
		case "chat.postMessage!fault":
			limited = c.At
		case "chat.postMessage":
			delivered = c.At
		}
	}
	if d := delivered.Sub(limited); d < 900*time.Millisecond {
		t.Fatalf("retried %s after the 429; Retry-After said 1s", d)
	}
}

// Every caller of a limited method waits for the same window, rather than each
// finding the limit for itself: once a 429 is in, nobody calls before it ends.
func TestWebAPIHoldsBackEveryCallerOfALimitedMethod(t *testing.T) {
	s, api := fakeSlack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, ts, err := api.PostMessage(ctx, "C1", slack.MsgOptionText("x", false))
	if err != nil {
		t.Fatal(err)
	}
	limited := time.Now()
	api.block("chat.update", time.Second) // as a 429 with Retry-After: 1 does
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- api.UpdateMessage(ctx, "C1", ts, slack.MsgOptionText("y", false)) }()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, c := range s.Calls() {
		if c.Method == "chat.update" {
			n++
			if d := c.At.Sub(limited); d < time.Second {
				t.Fatalf("a chat.update went out %s into a 1s Retry-After window", d)
			}
		}
	}
	if n != 10 {
		t.Fatalf("%d updates delivered, want 10", n)
	}
}

func TestWebAPINeverWaitsPastTheCallersDeadline(t *testing.T) {
	s, api := fakeSlack(t)
	s.Inject(slackfake.Fault{Method: "views.open", Times: 1, Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := api.OpenView(ctx, s.NewTrigger(), slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Request", false, false)})
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("got %v, want ErrRateLimited at once (an ack cannot wait 30s)", err)
	}
	if ctx.Err() != nil {
		t.Fatal("OpenView waited until the deadline instead of failing at once")
	}
	if n := count(s, "views.open"); n != 0 {
		t.Fatalf("views.open retried %d times inside the ack budget", n)
	}
}

func TestWebAPIRemembersTheDMChannel(t *testing.T) {
	s, api := fakeSlack(t)
	ctx := context.Background()
	for range 3 {
		ch, err := api.DM(ctx, "U0SOMEONE")
		if err != nil || !strings.HasPrefix(ch, "D") {
			t.Fatalf("DM: %q %v", ch, err)
		}
	}
	if n := count(s, "conversations.open"); n != 1 {
		t.Fatalf("conversations.open called %d times, want 1", n)
	}
}
