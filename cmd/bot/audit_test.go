package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
	"github.com/credbot/credbot/internal/store"
)

func TestAuditVerifyPrintsTheHeadAndCatchesADeletedTrailWithIt(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	key := approval.NewRandomKey()
	keys, err := store.ParseAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	st.UseAuditKeys(keys)
	for i := range 3 {
		req := &approval.Request{ID: fmt.Sprintf("r00000000000%d", i), Requester: "U1", State: approval.StatePending, Version: 1,
			Scope: approval.Scope{Kind: approval.ScopeGlobalAccount, ID: "acme-ga"}, Name: fmt.Sprintf("n%d", i)}
		if err := st.Create(ctx, req, approval.AuditEntry{RequestID: req.ID, To: approval.StatePending, Actor: "U1"}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"REDIS_URL": r.URL, "CREDBOT_KEY_PREFIX": r.Prefix, "CREDBOT_AUDIT_KEY": key}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := auditCmd(ctx, args, func(k string) string { return env[k] }, &out)
		return out.String(), err
	}

	out, err := run("verify")
	head := regexp.MustCompile(`(?m)^head (\S+)$`).FindStringSubmatch(out)
	if err != nil || !strings.Contains(out, "audit trail verifies: 3 entries (seq 1 to 3") || head == nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := run("verify", "--expect-head", head[1]); err != nil {
		t.Fatalf("verify against its own head: %v\n%s", err, out)
	}
	if out, err := run("export", "--since", "2000-01-01T00:00:00Z"); err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"seq":3`) {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := run("trim", "--keep", "2"); err != nil || !strings.Contains(out, "trimmed through seq 2") {
		t.Fatalf("trim: %v\n%s", err, out)
	}
	if out, err := run("verify", "--expect-head", head[1]); err != nil {
		t.Fatalf("verify after a trim: %v\n%s", err, out)
	}

	// Someone with Redis write access deletes every audit key.
	r.Client.Del(ctx, st.AuditKey(), st.AuditKey()+":head", st.AuditKey()+":genesis")
	if out, err := run("verify"); err != nil || !strings.Contains(out, "empty") {
		t.Fatalf("verify of an empty Redis: %v\n%s", err, out)
	}
	out, err = run("verify", "--expect-head", head[1])
	if err == nil || !strings.Contains(out, "BROKEN: expected the trail to reach") {
		t.Fatalf("a deleted trail verified against the head kept elsewhere: %v\n%s", err, out)
	}

	env["CREDBOT_AUDIT_KEY"] = ""
	if _, err := run("verify"); err == nil || !strings.Contains(err.Error(), "CREDBOT_AUDIT_KEY is not set") {
		t.Fatalf("verify without the key: %v", err)
	}
	for _, bad := range [][]string{{}, {"verify", "--since", "x"}, {"trim"}, {"trim", "--keep", "1"}, {"export", "extra"}, {"rotate"}} {
		if _, err := run(bad...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("audit %v: %v", bad, err)
		}
	}
}
