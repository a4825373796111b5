package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/app"
	"github.com/credbot/credbot/internal/store"
)

const auditUsage = `usage:
  credbot audit verify [--expect-head CHAIN/SEQ/MAC]   check the trail (needs CREDBOT_AUDIT_KEY)
  credbot audit export [--since RFC3339-TIME|STREAM-ID] write the trail as JSON lines
  credbot audit trim --keep N                          remove all but the last N entries, through a checkpoint`

func audit(ctx context.Context, args []string) error {
	return auditCmd(ctx, args, os.Getenv, os.Stdout)
}

// auditCmd runs `bot audit …` against REDIS_URL under CREDBOT_KEY_PREFIX.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if wantsHelp(args) {
		fmt.Fprintln(out, "Usage:\n"+strings.TrimPrefix(auditUsage, "usage:\n"))
		return nil
	}
	if len(args) == 0 {
		return usageError{auditUsage}
	}
	sub := args[0]
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	expect := fs.String("expect-head", "", "")
	since := fs.String("since", "", "")
	keep := fs.Int64("keep", 0, "")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return usageError{auditUsage}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	allowed := map[string]string{"verify": "expect-head", "export": "since", "trim": "keep"}[sub]
	for name := range set {
		if name != allowed {
			return usageError{auditUsage}
		}
	}
	if allowed == "" || (sub == "trim" && *keep < 2) {
		return usageError{auditUsage}
	}

	cfg, err := app.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		return errors.New("REDIS_URL is not set")
	}
	var keys *store.AuditKeys
	if sub != "export" {
		if cfg.AuditKey == "" {
			return errors.New("CREDBOT_AUDIT_KEY is not set: it takes the key (and the previous keys) the trail was MAC'd with")
		}
		if keys, err = store.ParseAuditKey(cfg.AuditKey); err != nil {
			return fmt.Errorf("CREDBOT_AUDIT_KEY: %w", err)
		}
	}
	rdb, err := app.NewRedis(cfg.RedisURL, 0)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := store.New(ctx, rdb, cfg.KeyPrefix)
	if err != nil {
		return err
	}
	switch sub {
	case "export":
		_, err := st.ExportAuditSince(ctx, out, *since)
		return err
	case "trim":
		st.UseAuditKeys(keys)
		tr, err := st.TrimAudit(ctx, *keep, 0)
		if err != nil {
			return err
		}
		if tr.Checkpoints == 0 {
			fmt.Fprintf(out, "nothing to trim: %d entries\n", tr.Len)
			return nil
		}
		fmt.Fprintf(out, "trimmed through seq %d with %d checkpoint(s): %d entries left\n", tr.ThroughSeq, tr.Checkpoints, tr.Len)
		return nil
	}
	st.UseAuditKeys(keys)
	rep, err := st.VerifyAuditExpecting(ctx, *expect)
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(out, "BROKEN:", p)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("audit trail broken in %d place(s) over %d entries", len(rep.Problems), rep.Entries)
	}
	if rep.Entries == 0 {
		fmt.Fprintln(out, "audit trail is empty (no entry, head or genesis marker): nothing to verify")
		return nil
	}
	var notes []string
	if rep.Head.Seq > 0 {
		notes = append(notes, fmt.Sprintf("seq %d to %d", rep.First, rep.Head.Seq))
	}
	if rep.Checkpoints > 0 {
		notes = append(notes, fmt.Sprintf("%d checkpoint(s)", rep.Checkpoints))
	}
	if rep.Legacy > 0 {
		notes = append(notes, fmt.Sprintf("%d unkeyed entries from before the trail was MAC'd (not tamper-evident)", rep.Legacy))
	}
	if !rep.Started.IsZero() {
		notes = append(notes, "chain begun "+rep.Started.Format(time.RFC3339))
	}
	fmt.Fprintf(out, "audit trail verifies: %d entries (%s)\n", rep.Entries, strings.Join(notes, ", "))
	if h := rep.Head.String(); h != "" {
		fmt.Fprintf(out, "head %s\n", h)
		fmt.Fprintln(out, "(keep the head outside Redis; pass it back with --expect-head to detect a rollback or a deleted trail)")
	}
	return nil
}
