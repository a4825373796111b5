package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// checkBlocks holds rendered Block Kit to Slack's limits.
func checkBlocks(t *testing.T, what string, blocks []slack.Block, maxBlocks int) {
	t.Helper()
	for _, p := range blockProblems(blocks, maxBlocks) {
		t.Errorf("%s: %s", what, p)
	}
}

// blockProblems lists where blocks break Slack's limits
// (docs.slack.dev/reference/block-kit): blocks per surface, text lengths per
// element, unique block ids.
func blockProblems(blocks []slack.Block, maxBlocks int) []string {
	var problems []string
	b, err := json.Marshal(blocks)
	if err != nil {
		return []string{err.Error()}
	}
	var bs []map[string]any
	if err := json.Unmarshal(b, &bs); err != nil {
		return []string{err.Error()}
	}
	errorf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if len(bs) > maxBlocks {
		errorf("%d blocks, Slack allows %d", len(bs), maxBlocks)
	}
	text := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			s, _ := m["text"].(string)
			return s
		}
		return ""
	}
	limit := func(where, s string, n int) {
		if c := utf8.RuneCountInString(s); c > n {
			errorf("%s is %d characters, Slack allows %d", where, c, n)
		}
	}
	var element func(where string, e map[string]any)
	element = func(where string, e map[string]any) {
		switch e["type"] {
		case "button":
			limit(where+" button text", text(e["text"]), blockkit.MaxButtonText)
			v, _ := e["value"].(string)
			limit(where+" button value", v, blockkit.MaxButtonValue)
			a, _ := e["action_id"].(string)
			limit(where+" action_id", a, 255)
			if c, ok := e["confirm"].(map[string]any); ok {
				limit(where+" confirm title", text(c["title"]), 100)
				limit(where+" confirm text", text(c["text"]), 300)
				limit(where+" confirm button", text(c["confirm"]), 30)
				limit(where+" deny button", text(c["deny"]), 30)
			}
		case "mrkdwn", "plain_text":
			limit(where+" text", text(e), blockkit.MaxSectionText)
		}
	}
	ids := map[string]bool{}
	for i, blk := range bs {
		where := fmt.Sprintf("block %d (%v)", i, blk["type"])
		if id, _ := blk["block_id"].(string); id != "" {
			limit(where+" block_id", id, 255)
			if ids[id] {
				errorf("block_id %q repeats", id)
			}
			ids[id] = true
		}
		switch blk["type"] {
		case "section":
			limit(where+" text", text(blk["text"]), blockkit.MaxSectionText)
			fields, _ := blk["fields"].([]any)
			if len(fields) > blockkit.MaxFields {
				errorf("%s has %d fields, Slack allows %d", where, len(fields), blockkit.MaxFields)
			}
			for _, f := range fields {
				limit(where+" field", text(f), blockkit.MaxFieldText)
			}
			if a, ok := blk["accessory"].(map[string]any); ok {
				element(where, a)
			}
		case "header":
			limit(where+" text", text(blk["text"]), 150)
		case "actions", "context":
			els, _ := blk["elements"].([]any)
			if len(els) > 10 {
				errorf("%s has %d elements", where, len(els))
			}
			for _, e := range els {
				element(where, e.(map[string]any))
			}
		case "input":
			limit(where+" label", text(blk["label"]), 2000)
			limit(where+" hint", text(blk["hint"]), 2000)
		}
	}
	return problems
}

// The checker itself catches what it should.
func TestBlockProblemsFindsBrokenLimits(t *testing.T) {
	long := slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", 3001), false, false)
	var many []slack.Block
	for range 51 {
		many = append(many, slack.NewDividerBlock())
	}
	for name, blocks := range map[string][]slack.Block{
		"long section": {slack.NewSectionBlock(long, nil, nil)},
		"51 blocks":    many,
		"long button":  {slack.NewActionBlock("a", slack.NewButtonBlockElement("x", strings.Repeat("v", 2001), blockkit.Plain("ok")))},
		"repeated ids": {slack.NewActionBlock("a", blockkit.Button("x", "1", "ok")), slack.NewActionBlock("a", blockkit.Button("y", "1", "ok"))},
	} {
		if len(blockProblems(blocks, blockkit.MaxMessageBlocks)) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

// hostile is a request whose every user-supplied field is as long and as
// nasty as the grammar lets through (and longer, for what comes from BTP).
func hostile(i int) *approval.Request {
	r := &approval.Request{
		ID: fmt.Sprintf("r%012x", i), Requester: "U0REQUESTER", Scope: approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"},
		Name: strings.Repeat("n", 64), ReadOnly: i%2 == 0, Reason: strings.Repeat("<!channel>&", 46)[:500],
		State: approval.StatePending, Version: 7, CreatedAt: time.Unix(1_700_000_000, 0), Lifetime: 30 * 24 * time.Hour,
		Failure: strings.Repeat("<&>", 1000), DecidedBy: "U0DECIDER",
	}
	if i%2 == 1 {
		// A subject and issuer as long as a certificate of MaxCertificateText allows.
		r.CertificateInfo = &approval.CertificateInfo{Subject: "CN=" + strings.Repeat("<!channel>", 200), Issuer: strings.Repeat("O=<&>,", 300),
			NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_800_000_000, 0), Key: "RSA 4096", SHA256: strings.Repeat("AB:", 31) + "AB"}
	}
	for j := range 40 {
		r.Approvals = append(r.Approvals, approval.Approval{User: fmt.Sprintf("U0APPROVER%02d", j)})
	}
	return r
}

func TestEveryRenderingStaysWithinBlockKitLimits(t *testing.T) {
	q := approval.QuorumStatus{Have: 40, Need: 41, Waiting: []string{strings.Repeat("an approval from role:<security> ", 100)}}
	mentions := strings.Repeat("<@U0APPROVER01>, ", 15) + "and 30 more"
	for _, st := range []approval.State{approval.StatePending, approval.StateDenied, approval.StateApproved, approval.StateIssued,
		approval.StateDelivered, approval.StateFailed, approval.StateExpired, approval.StateRevoked, approval.StateCancelled, approval.StateDeleted} {
		r := hostile(1)
		r.State = st
		checkBlocks(t, "approval message "+string(st), blockkit.ApprovalBlocks(r, q, mentions), blockkit.MaxMessageBlocks)
		checkBlocks(t, "status "+string(st), requestBlocks(r, approval.QuorumStatus{Need: 2, Have: 1, Waiting: []string{"one approver from role:security"}}), blockkit.MaxMessageBlocks)
		checkBlocks(t, "request line "+string(st), []slack.Block{requestSection(r, blockkit.ActionCancel)}, blockkit.MaxMessageBlocks)
		r.Breakglass, r.Escalations = true, 99
		checkBlocks(t, "break-glass alert "+string(st), blockkit.BreakglassBlocks(r, mentions, 99), blockkit.MaxMessageBlocks)
		r.AckedBy, r.RevokedBy = "U0REVIEWER", "U0REVIEWER"
		checkBlocks(t, "break-glass alert reviewed "+string(st), blockkit.BreakglassBlocks(r, mentions, 0), blockkit.MaxMessageBlocks)
	}

	var views []approval.CredentialView
	for i := range 95 {
		c := approval.Credential{Name: strings.Repeat("<x>", 300) + fmt.Sprint(i), Type: strings.Repeat("t", 3000), ClientID: strings.Repeat("c", 3000),
			TokenURL: strings.Repeat("u", 3000), APIURL: strings.Repeat("a", 3000), Scope: hostile(0).Scope}
		v := approval.CredentialView{Credential: c}
		if i%2 == 0 {
			v.Managed, v.Owner, v.ExpiresAt, v.Request = true, "U0OWNER", time.Unix(1_800_000_000, 0), hostile(i)
		}
		views = append(views, v)
	}
	scope := hostile(0).Scope
	for off := 0; off < len(views); off += listPage {
		checkBlocks(t, fmt.Sprintf("list page at %d", off), listBlocks(scope, views, off), blockkit.MaxMessageBlocks)
	}
	checkBlocks(t, "credential", credentialBlocks(views[0]), blockkit.MaxMessageBlocks)
	checkBlocks(t, "unmanaged credential", credentialBlocks(views[1]), blockkit.MaxMessageBlocks)

	var mine, awaiting []*approval.Request
	for i := range 40 {
		r := hostile(i)
		r.State = []approval.State{approval.StatePending, approval.StateDelivered, approval.StateIssued, approval.StateDenied}[i%4]
		mine = append(mine, r)
		awaiting = append(awaiting, hostile(100+i))
	}
	var creds []*approval.Request
	for i := range homeCredentials {
		r := hostile(200 + i)
		r.State = approval.StateDelivered
		creds = append(creds, r)
	}
	page := credentialPage{creds: creds, total: 1000, offset: 15}
	checkBlocks(t, "home", homeBlocks(mine, awaiting, page), blockkit.MaxViewBlocks)
	var found []approval.UnmanagedCredential
	for i := range 30 {
		found = append(found, approval.UnmanagedCredential{Scope: hostile(i).Scope, Name: strings.Repeat("<x>`&", 60) + fmt.Sprint(i), FirstSeen: time.Unix(1_800_000_000, 0)})
	}
	admin := NewServer(refuser{}, Config{Inventory: unmanagedList(found)})
	defer admin.Close()
	unmanaged := admin.unmanagedBlocks(context.Background(), "U0ADMIN")
	checkBlocks(t, "home of an admin", append(homeBlocks(mine, awaiting, page), unmanaged...), blockkit.MaxViewBlocks)
	// The list ends with a count of the rest, not cut mid-line.
	if last := unmanaged[len(unmanaged)-1].(*slack.SectionBlock).Text.Text; strings.HasSuffix(last, "…") || !strings.Contains(last, "more: `/credbot list`") {
		t.Errorf("the unmanaged list was cut: %.200q…", last[max(0, len(last)-200):])
	}
	checkBlocks(t, "empty home", homeBlocks(nil, nil, credentialPage{}), blockkit.MaxViewBlocks)

	d := denyModal(hostile(1), "r000000000001", denyMeta{ID: "r000000000001", OpenedBy: "U0A", ResponseURL: "https://hooks.slack.com/" + strings.Repeat("x", 500)})
	checkBlocks(t, "deny form", d.Blocks.BlockSet, blockkit.MaxViewBlocks)
	if len(d.PrivateMetadata) > 3000 {
		t.Errorf("deny form metadata is %d bytes, Slack allows 3000", len(d.PrivateMetadata))
	}
	for name, o := range map[string]*slack.TextBlockObject{"title": d.Title, "submit": d.Submit, "close": d.Close} {
		if n := utf8.RuneCountInString(o.Text); n > 24 {
			t.Errorf("deny form %s is %d characters, Slack allows 24", name, n)
		}
	}

	m := createModal(Command{})
	checkBlocks(t, "create modal", m.Blocks.BlockSet, blockkit.MaxViewBlocks)
	for name, o := range map[string]*slack.TextBlockObject{"title": m.Title, "submit": m.Submit, "close": m.Close} {
		if n := utf8.RuneCountInString(o.Text); n > 24 {
			t.Errorf("modal %s is %d characters, Slack allows 24", name, n)
		}
	}
	if !slack.ValidateUniqueBlockID(m) {
		t.Error("modal block ids repeat")
	}
}

var codeRE = regexp.MustCompile("(?s)```(.*?)```")

// A secret is never cut: however long, it is split over sections and, past 50
// blocks, over messages, and the pieces put together are the secret.
func TestRevealSplitsButNeverTruncatesSecrets(t *testing.T) {
	unescape := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace
	for _, n := range []int{1, 549, 550, 551, 4096, 60_000} {
		cert := strings.Repeat("<&>é", n)[:n*3] // multi-byte runes and escapable bytes, cut mid-rune on purpose
		cert = strings.ToValidUTF8(cert, "")
		key := strings.Repeat("k", n)
		rv := approval.Revelation{
			Request: &approval.Request{Credential: &approval.Credential{Name: "c", Scope: hostile(0).Scope, ClientID: "id", TokenURL: "https://t"}},
			Secret:  approval.NewCertificateSecret(cert, key),
		}
		msgs := blockkit.RevealMessages(rv)
		var got strings.Builder
		for i, blocks := range msgs {
			checkBlocks(t, fmt.Sprintf("reveal of %d, message %d", n, i), blocks, blockkit.MaxMessageBlocks)
			b, _ := json.Marshal(blocks)
			var bs []struct {
				Text *struct{ Text string } `json:"text"`
			}
			_ = json.Unmarshal(b, &bs)
			for _, blk := range bs {
				if blk.Text == nil {
					continue
				}
				if m := codeRE.FindStringSubmatch(blk.Text.Text); m != nil {
					got.WriteString(unescape(m[1]))
				}
			}
		}
		if got.String() != cert+key {
			t.Errorf("secret of %d: reassembled %d bytes, want %d, unchanged", n, got.Len(), len(cert+key))
		}
	}
}

// unmanagedList is an Inventory that lists the same credentials to anyone.
type unmanagedList []approval.UnmanagedCredential

func (l unmanagedList) Unmanaged(context.Context, string) ([]approval.UnmanagedCredential, error) {
	return l, nil
}
