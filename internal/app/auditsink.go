package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/store"
)

// auditSink takes every audit entry right after the store wrote it, for a
// SIEM: one log line marked "audit": true with the entry's fields, through
// the app's logger (JSON under `serve`), and, with CREDBOT_AUDIT_WEBHOOK_URL,
// a signed POST off the path of the transitions. Redis keeps the record;
// these are copies that leave Redis at once.
type auditSink struct {
	log  *slog.Logger
	hook *auditWebhook // nil without CREDBOT_AUDIT_WEBHOOK_URL
}

// recordFields are the names the log line gives the record's own fields; an
// entry field of the same name (there is none today) is logged as entry_<name>.
var recordFields = []string{"audit", "stream_id", "seq", "chain", "key_id", "mac", "prev"}

// record is the store's OnAudit hook: it must not block.
func (s *auditSink) record(r store.AuditRecord) {
	keyID, _, _ := strings.Cut(r.MAC, ":")
	attrs := []slog.Attr{
		slog.Bool("audit", true), slog.String("stream_id", r.ID), slog.Int64("seq", r.Seq),
		slog.String("chain", r.Chain), slog.String("key_id", keyID), slog.String("mac", r.MAC), slog.String("prev", r.Prev),
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Entry))
	dec.UseNumber()
	if err := dec.Decode(&fields); err == nil {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			name := k
			if slices.Contains(recordFields, k) {
				name = "entry_" + k
			}
			attrs = append(attrs, slog.Any(name, fields[k]))
		}
	} else {
		attrs = append(attrs, slog.String("entry", string(r.Entry)))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "audit entry", attrs...)
	if s.hook != nil {
		s.hook.add(r)
	}
}

// auditWebhook POSTs audit entries to a SIEM's HTTP collector, in batches of
// JSON lines (store.AuditRecord, as `bot audit export` writes them), signed
// like Slack signs its requests:
//
//	X-Credbot-Request-Timestamp: <unix seconds>
//	X-Credbot-Signature: v1=<hex HMAC-SHA-256(secret, "v1:" + timestamp + ":" + body)>
//
// Entries queue in a bounded buffer and one goroutine sends them, retrying a
// failed batch with backoff until it is taken; a full buffer drops entries
// (and says which in the log, so that they can be sent again with
// `bot audit export --since`), never transitions. It never follows a
// redirect, and sends only over https (or to a loopback address).
type auditWebhook struct {
	url        string
	secret     []byte
	client     *http.Client
	log        *slog.Logger
	queue      chan store.AuditRecord
	batch      int
	minBackoff time.Duration
	maxBackoff time.Duration
}

const auditWebhookQueue = 10_000

func newAuditWebhook(rawURL, secret string, log *slog.Logger) *auditWebhook {
	return &auditWebhook{
		url: rawURL, secret: []byte(secret), log: log,
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		queue: make(chan store.AuditRecord, auditWebhookQueue),
		batch: 100, minBackoff: time.Second, maxBackoff: time.Minute,
	}
}

// checkWebhookURL allows https, and http only to a loopback address (a
// collector beside the bot, or a test).
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.User != nil {
		return errors.New("must not hold credentials: the secret signs the requests")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%q: audit entries are sent only over https (http only to a loopback address)", raw)
}

func (h *auditWebhook) add(r store.AuditRecord) {
	select {
	case h.queue <- r:
	default:
		h.log.Warn("audit webhook queue full; entry not sent (it is in Redis: send it again with bot audit export --since)",
			"seq", r.Seq, "stream_id", r.ID)
	}
}

func (h *auditWebhook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-h.queue:
			batch := []store.AuditRecord{r}
		fill:
			for len(batch) < h.batch {
				select {
				case r := <-h.queue:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			h.send(ctx, batch)
		}
	}
}

// send retries one batch until the collector takes it or ctx ends.
func (h *auditWebhook) send(ctx context.Context, batch []store.AuditRecord) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, r := range batch {
		_ = enc.Encode(r)
	}
	wait := h.minBackoff
	for attempt := 1; ; attempt++ {
		err := h.post(ctx, body.Bytes())
		if err == nil {
			return
		}
		h.log.Warn("audit webhook", "attempt", attempt, "first_seq", batch[0].Seq, "first_stream_id", batch[0].ID,
			"entries", len(batch), "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, h.maxBackoff)
	}
}

func (h *auditWebhook) post(ctx context.Context, body []byte) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("X-Credbot-Request-Timestamp", ts)
	req.Header.Set("X-Credbot-Signature", SignAuditWebhook(h.secret, ts, body))
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s", resp.Status)
	}
	return nil
}

// SignAuditWebhook is the X-Credbot-Signature of a webhook body: a receiver
// computes it over the timestamp header and the raw body, compares in
// constant time, and refuses timestamps more than five minutes off.
func SignAuditWebhook(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v1:" + timestamp + ":"))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// runAuditTrim keeps the trail within CREDBOT_AUDIT_RETAIN entries: every
// sweep interval it trims, through a checkpoint, once the stream holds a
// tenth more than that (every replica does; they cannot trim twice).
func (a *App) runAuditTrim(ctx context.Context) {
	every(ctx, a.cfg.SweepInterval, func() { a.trimAudit(ctx) })
}

func (a *App) trimAudit(ctx context.Context) {
	keep := a.cfg.AuditRetain
	tr, err := a.Store.TrimAudit(ctx, keep, keep/10)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("trim the audit trail", "error", err)
		}
		return
	}
	if tr.Checkpoints > 0 {
		a.log.Info("audit trail trimmed through a checkpoint", "through_seq", tr.ThroughSeq, "entries", tr.Len, "retain", keep)
	}
}

// validateAudit is Validate's part for the audit settings.
func (c Config) validateAudit() []error {
	var errs []error
	if c.AuditKey != "" {
		if _, err := store.ParseAuditKey(c.AuditKey); err != nil {
			errs = append(errs, fmt.Errorf("CREDBOT_AUDIT_KEY: %w", err))
		} else if sharesAKey(c.AuditKey, c.SecretKey) {
			errs = append(errs, errors.New("CREDBOT_AUDIT_KEY holds a key that is also in CREDBOT_SECRET_KEY: give the audit trail a key of its own "+
				"(openssl rand -base64 32), so that each rotates on its own and whoever holds the sealing key cannot rewrite the trail"))
		}
	}
	switch {
	case c.AuditWebhookURL != "":
		if err := checkWebhookURL(c.AuditWebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("CREDBOT_AUDIT_WEBHOOK_URL: %w", err))
		}
		if len(c.AuditWebhookSecret) < 16 {
			errs = append(errs, errors.New("CREDBOT_AUDIT_WEBHOOK_SECRET: set it (at least 16 characters, e.g. openssl rand -base64 32) to sign the webhook's requests"))
		}
	case c.AuditWebhookSecret != "":
		errs = append(errs, errors.New("CREDBOT_AUDIT_WEBHOOK_SECRET is set but CREDBOT_AUDIT_WEBHOOK_URL is not"))
	}
	return errs
}

// sharesAKey reports whether two comma-separated lists of base64 keys hold
// the same key (compared decoded, so that padding or spaces do not hide it).
func sharesAKey(a, b string) bool {
	decode := func(list string) [][]byte {
		var out [][]byte
		for _, k := range strings.Split(list, ",") {
			if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k)); err == nil && len(raw) > 0 {
				out = append(out, raw)
			}
		}
		return out
	}
	for _, x := range decode(a) {
		for _, y := range decode(b) {
			if hmac.Equal(x, y) {
				return true
			}
		}
	}
	return false
}

// useAuditConfig gives the store its audit key and sends every entry it
// writes to the log (and the webhook).
func (a *App) useAuditConfig(cfg Config) error {
	keys, err := store.ParseAuditKey(cfg.AuditKey)
	if err != nil {
		return fmt.Errorf("CREDBOT_AUDIT_KEY: %w", err)
	}
	a.Store.UseAuditKeys(keys)
	a.auditOut = &auditSink{log: a.log}
	if cfg.AuditWebhookURL != "" {
		a.auditOut.hook = newAuditWebhook(cfg.AuditWebhookURL, cfg.AuditWebhookSecret, a.log)
	}
	a.Store.OnAudit(a.auditOut.record)
	return nil
}
