package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/credbot/credbot/internal/slackfake"
	"github.com/credbot/credbot/internal/store"
	"github.com/slack-go/slack"
)

// collector is a SIEM's HTTP collector: it checks each request's signature
// and hands on every entry it takes.
type collector struct {
	srv      *httptest.Server
	secret   []byte
	attempts atomic.Int32
	fail     int32 // answer 503 to this many requests first
	entries  chan store.AuditRecord
	tried    chan struct{} // one per request
	badSig   atomic.Int32
}

func newCollector(t *testing.T, secret string, fail int32) *collector {
	c := &collector{secret: []byte(secret), fail: fail, entries: make(chan store.AuditRecord, 1000), tried: make(chan struct{}, 100)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Credbot-Request-Timestamp")
		if r.Header.Get("X-Credbot-Signature") != SignAuditWebhook(c.secret, ts, body) || r.Header.Get("Content-Type") != "application/x-ndjson" {
			c.badSig.Add(1)
		}
		n := c.attempts.Add(1)
		select {
		case c.tried <- struct{}{}:
		default:
		}
		if n <= c.fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec store.AuditRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("webhook line %q: %v", sc.Text(), err)
			}
			c.entries <- rec
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// next waits for the collector's next entry.
func (c *collector) next(t *testing.T, ctx context.Context) store.AuditRecord {
	t.Helper()
	select {
	case r := <-c.entries:
		return r
	case <-ctx.Done():
		t.Fatal("the collector got no more audit entries")
	}
	return store.AuditRecord{}
}

func TestAuditWebhookRetriesWithBackoffUntilTaken(t *testing.T) {
	c := newCollector(t, "0123456789abcdef", 2)
	hook := newAuditWebhook(c.srv.URL, "0123456789abcdef", slog.New(slog.DiscardHandler))
	hook.minBackoff, hook.maxBackoff = time.Millisecond, 4*time.Millisecond
	ctx := ctxT(t)
	go hook.run(ctx)
	for i := range 3 {
		hook.add(store.AuditRecord{ID: "1-" + string(rune('0'+i)), Seq: int64(i + 1), Entry: json.RawMessage(`{"request_id":"r1"}`)})
	}
	var seqs []int64
	for len(seqs) < 3 {
		seqs = append(seqs, c.next(t, ctx).Seq)
	}
	if seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("entries taken: %v", seqs)
	}
	if n := c.attempts.Load(); n < 3 {
		t.Fatalf("%d requests: the two failures were not retried", n)
	}
	if c.badSig.Load() != 0 {
		t.Fatal("a request's signature did not verify")
	}
	select {
	case r := <-c.entries:
		t.Fatalf("entry %d taken twice", r.Seq)
	default:
	}
}

func TestAuditWebhookNeverFollowsARedirect(t *testing.T) {
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	t.Cleanup(elsewhere.Close)
	tried := make(chan struct{}, 10)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tried <- struct{}{}
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	hook := newAuditWebhook(redirector.URL, "0123456789abcdef", slog.New(slog.DiscardHandler))
	hook.minBackoff = time.Millisecond
	ctx := ctxT(t)
	go hook.run(ctx)
	hook.add(store.AuditRecord{ID: "1-0", Seq: 1, Entry: json.RawMessage(`{}`)})
	for range 2 { // the redirect is a failure, retried
		select {
		case <-tried:
		case <-ctx.Done():
			t.Fatal("not retried")
		}
	}
	if followed.Load() != 0 {
		t.Fatal("the webhook followed a redirect")
	}
}

func TestServeRequiresTheAuditKeyAndASafeWebhook(t *testing.T) {
	base := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "CREDBOT_APPROVAL_CHANNEL": "C1",
		"REDIS_URL": "redis://127.0.0.1:1", "CREDBOT_SECRET_KEY": approval.NewRandomKey(), "CREDBOT_AUDIT_KEY": approval.NewRandomKey(),
	}
	validate := func(change map[string]string) error {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range change {
			env[k] = v
		}
		cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			return err
		}
		return cfg.Validate()
	}
	if err := validate(nil); err != nil {
		t.Fatalf("a complete configuration: %v", err)
	}
	err := validate(map[string]string{"CREDBOT_AUDIT_KEY": "", "REDIS_URL": ""})
	if err == nil || !strings.Contains(err.Error(), "CREDBOT_AUDIT_KEY is not set") || !strings.Contains(err.Error(), "REDIS_URL is not set") {
		t.Fatalf("missing audit key and Redis: %v", err)
	}
	if err := validate(map[string]string{"CREDBOT_AUDIT_KEY": approval.NewRandomKey() + ",c2hvcnQ="}); err == nil || !strings.Contains(err.Error(), "CREDBOT_AUDIT_KEY") {
		t.Fatalf("a short previous audit key: %v", err)
	}
	secret := "0123456789abcdef"
	for url, ok := range map[string]bool{
		"https://siem.example.com/collect": true, "http://127.0.0.1:8088/c": true, "http://[::1]:8088/": true,
		"http://localhost:8088/": true, "http://siem.example.com/collect": false, "ftp://siem.example.com/": false,
		"https://user:pass@siem.example.com/": false, "siem.example.com": false,
	} {
		err := validate(map[string]string{"CREDBOT_AUDIT_WEBHOOK_URL": url, "CREDBOT_AUDIT_WEBHOOK_SECRET": secret})
		if (err == nil) != ok {
			t.Errorf("webhook %s: %v", url, err)
		}
	}
	if err := validate(map[string]string{"CREDBOT_AUDIT_WEBHOOK_URL": "https://siem.example.com/"}); err == nil || !strings.Contains(err.Error(), "CREDBOT_AUDIT_WEBHOOK_SECRET") {
		t.Fatalf("a webhook without a secret: %v", err)
	}
	// One key for both would tie their rotations together, and whoever
	// holds the sealing key could then rewrite the trail too.
	sealing := base["CREDBOT_SECRET_KEY"]
	for _, audit := range []string{sealing, base["CREDBOT_AUDIT_KEY"] + ", " + sealing} {
		for _, secret := range []string{sealing, approval.NewRandomKey() + "," + sealing} {
			err := validate(map[string]string{"CREDBOT_AUDIT_KEY": audit, "CREDBOT_SECRET_KEY": secret})
			if err == nil || !strings.Contains(err.Error(), "CREDBOT_AUDIT_KEY") || !strings.Contains(err.Error(), "CREDBOT_SECRET_KEY") ||
				strings.Contains(err.Error(), sealing) {
				t.Errorf("audit key %q with sealing key %q: %v", audit, secret, err)
			}
		}
	}
	if err := validate(map[string]string{"CREDBOT_AUDIT_RETAIN": "1"}); err == nil {
		t.Fatal("CREDBOT_AUDIT_RETAIN=1 accepted")
	}
}

// TestEveryAuditEntryLeavesRedisAtOnce runs a whole loop with a collector
// behind the webhook and a retention of a few entries: every entry, the
// checkpoints of the trims included, is a JSON log line marked audit and
// reaches the collector, in order, none missing; the trail left in Redis
// starts at a checkpoint and verifies.
func TestEveryAuditEntryLeavesRedisAtOnce(t *testing.T) {
	c := newCollector(t, "0123456789abcdef", 0)
	h := start(t, map[string]string{
		"CREDBOT_AUDIT_WEBHOOK_URL": c.srv.URL, "CREDBOT_AUDIT_WEBHOOK_SECRET": "0123456789abcdef",
		"CREDBOT_AUDIT_RETAIN": "4",
	})
	ctx := ctxT(t)
	msg := h.request(t, ctx)
	h.click(t, ctx, Approver, msg, blockkit.ActionApprove)
	dm := h.waitDM(t, ctx)
	secret := h.revealSecret(t, ctx, dm)

	// The trims' checkpoints are entries too: wait for one after the last
	// transition (the reveal).
	var got []store.AuditRecord
	for delivered := false; ; {
		r := c.next(t, ctx)
		got = append(got, r)
		delivered = delivered || strings.Contains(string(r.Entry), `"to":"DELIVERED"`)
		if delivered && strings.Contains(string(r.Entry), `"checkpoint"`) {
			break
		}
	}
	// A trim keeps the entries written while it ran (they wait for the next
	// one), so the bound holds once the loop's last entries are written:
	// trim until it does, as the ticker would.
	var rep store.AuditReport
	for {
		if _, err := h.App.Store.TrimAudit(ctx, 4, 0); err != nil {
			t.Fatal(err)
		}
		var err error
		rep, err = h.App.Store.VerifyAudit(ctx)
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("the trimmed trail: %+v %v", rep, err)
		}
		if rep.Checkpoints > 0 && rep.First > 1 && rep.Entries <= 5 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the trail is not trimmed to 4 entries and a checkpoint: %+v", rep)
		}
	}
	for int64(len(got)) < rep.Head.Seq {
		got = append(got, c.next(t, ctx))
	}
	for i, r := range got {
		if r.Seq != int64(i+1) || r.Chain != rep.Head.Chain || r.MAC == "" {
			t.Fatalf("the collector's entry %d is %+v", i+1, r)
		}
		if strings.Contains(string(r.Entry), secret) {
			t.Fatal("the secret is in an audit entry")
		}
	}

	// The log lines: one per entry, with the entry's fields.
	logged := map[int64]map[string]any{}
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["audit"] != true {
			continue
		}
		seq, _ := l["seq"].(float64)
		logged[int64(seq)] = l
	}
	for _, r := range got {
		l := logged[r.Seq]
		if l == nil || l["msg"] != "audit entry" || l["level"] != "INFO" || l["mac"] != r.MAC || l["stream_id"] != r.ID {
			t.Fatalf("entry %d is not logged as it was written: %v", r.Seq, l)
		}
	}
	// The request's first entry (the replica's start and policy load come
	// before it).
	var first map[string]any
	for seq := int64(1); seq <= int64(len(got)) && first == nil; seq++ {
		if l := logged[seq]; l["to"] == "PENDING" {
			first = l
		}
	}
	if first == nil || first["request_id"] == "" || first["actor"] != Requester.ID || first["key_id"] == "" {
		t.Fatalf("the request's first entry's log line lacks its fields: %v", first)
	}
	if c.badSig.Load() != 0 {
		t.Fatal("a webhook request's signature did not verify")
	}
}

// The audit mirror leaves at least its interval between two messages to its
// channel, as Slack allows about one a second per channel, and entries that
// come meanwhile go together. It used to post back to back: a message for
// each of a request's entries.
func TestAuditMirrorSpacesItsMessages(t *testing.T) {
	fake, err := slackfake.Start("xoxb-mirror")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	api := slackapi.NewWebAPI(slack.New("xoxb-mirror", slack.OptionAPIURL(fake.APIURL())), slog.New(slog.DiscardHandler))
	m := newAuditMirror(api, "C0AUDIT", slog.New(slog.DiscardHandler))
	m.every = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	entry := func(i int) approval.AuditEntry {
		return approval.AuditEntry{RequestID: fmt.Sprintf("r%04d", i), From: approval.StatePending, To: approval.StateApproved, Actor: "U0APPROVER"}
	}
	posted := func(i int) slackfake.Call {
		t.Helper()
		c, err := fake.WaitFor(ctx, func(c slackfake.Call) bool {
			return c.Method == "chat.postMessage" && c.Channel == "C0AUDIT" && strings.Contains(c.Text(), fmt.Sprintf("`r%04d`", i))
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// One entry at a time, each once the last is in the channel.
	var at []time.Time
	for i := range 4 {
		m.add(entry(i))
		at = append(at, posted(i).At)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < m.every/2 {
			t.Errorf("message %d came %s after the one before, want about %s at least", i, gap, m.every)
		}
	}
	// Twenty at once go in at most two messages: the first, and the rest.
	mark := fake.Mark()
	for i := 10; i < 30; i++ {
		m.add(entry(i))
	}
	posted(29)
	n := 0
	_, _ = fake.WaitFrom(ctx, mark, func(c slackfake.Call) bool {
		if c.Method == "chat.postMessage" && c.Channel == "C0AUDIT" {
			n++
		}
		return strings.Contains(c.Text(), "`r0029`")
	})
	if n > 2 {
		t.Errorf("twenty entries at once took %d messages, want at most 2", n)
	}
}
