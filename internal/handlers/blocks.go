package handlers

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// Block Kit limits (docs.slack.dev/reference/block-kit). Every renderer here
// stays inside them; blocks_test.go checks each one against them.
const (
	maxMessageBlocks = 50
	maxViewBlocks    = 100
	maxSectionText   = 3000
	maxFieldText     = 2000
	maxFields        = 10
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxFallbackText  = 4000
)

// Action ids of our buttons and the modal's callback id. Button values carry
// ids and names to look up again, never authority and never a secret.
const (
	ActionApprove = "credbot_approve" // value: request id
	ActionDeny    = "credbot_deny"    // value: request id; opens the reason form
	ActionReveal  = "credbot_reveal"  // value: request id
	ActionCancel  = "credbot_cancel"  // value: request id
	ActionDelete  = "credbot_delete"  // value: scope|name; behind a confirm dialog
	ActionMore    = "credbot_more"    // value: scope|offset of the next page of a list
	ActionHome    = "credbot_home"    // value: unused; refreshes the Home tab
	// ActionHomePage shows another page of the Home tab's credentials; value:
	// the offset of its first credential.
	ActionHomePage = "credbot_home_page"
	// ActionDeleteOwn deletes the clicker's own credential; value: request id.
	ActionDeleteOwn = "credbot_delete_own"
	// Break-glass review buttons; value: request id. The clicker is
	// authorized at click time for review.
	ActionAcknowledge = "credbot_acknowledge"
	ActionRevokeNow   = "credbot_revoke_now"
	// ActionRotate rotates the clicker's own credential; value: request id.
	ActionRotate = "credbot_rotate"
	// ActionExtend extends the clicker's own credential; value: request id|duration.
	ActionExtend = "credbot_extend"
	// ActionExtendApprove and ActionExtendDeny decide a pending extension;
	// value: request id|when it was asked (unix ns).
	ActionExtendApprove = "credbot_extend_approve"
	ActionExtendDeny    = "credbot_extend_deny"
	// ActionRetireOld deletes, now, the credential a rotation replaces;
	// value: the rotation's request id.
	ActionRetireOld = "credbot_retire_old"

	CallbackCreate = "credbot_create"
	// CallbackDeny is the form a Deny click opens for an optional reason;
	// its private_metadata names the request (denyMeta), never who denies.
	CallbackDeny = "credbot_deny_reason"
)

// plain is a plain_text object: Slack renders it verbatim, so user input in it
// cannot mention, link or format anything.
func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, maxFieldText), false, false)
}

// mrkdwn is a mrkdwn object for text we compose; anything user-supplied in it
// must have gone through escape.
func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(s, maxFieldText), false, false)
}

func section(s string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(s, maxSectionText), false, false), nil, nil)
}

func note(s string) *slack.ContextBlock {
	return slack.NewContextBlock("", mrkdwn(s))
}

func button(actionID, value, text string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, value, slack.NewTextBlockObject(slack.PlainTextType, truncate(text, maxButtonText), false, false))
}

// confirm is a confirmation dialog (title ≤ 100, text ≤ 300, buttons ≤ 30
// characters). danger styles its confirm button red.
func confirm(title, text, yes, no string, danger bool) *slack.ConfirmationBlockObject {
	pt := func(s string, n int) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, n), false, false)
	}
	c := slack.NewConfirmationBlockObject(pt(title, 100), pt(text, 300), pt(yes, 30), pt(no, 30))
	if danger {
		c = c.WithStyle(slack.StyleDanger)
	}
	return c
}

// escape neutralises Slack's control sequences in text shown as mrkdwn: only
// &, < and > (docs.slack.dev/messaging/formatting-message-text), so that
// "<!channel>" or "<@U123>" typed by a user pings nobody.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut. Never
// used on secret material, which is split instead (revealBlocks).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// chunks splits s into pieces of at most n bytes on rune boundaries, losing nothing.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

func scopeLabel(s approval.Scope) string {
	switch s.Kind {
	case approval.ScopeGlobalAccount:
		return "global account " + s.ID
	default:
		return string(s.Kind) + " " + s.ID
	}
}

func accessLabel(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "full access"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// lifetime renders a duration the way people type it: 30d, 72h, 90m.
func lifetime(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d < time.Minute:
		return d.Round(time.Second).String() // break-glass tests run in seconds
	}
	return d.Round(time.Minute).String()
}

func approvalFallback(r *approval.Request) string {
	if a := r.Assignment; a != nil {
		return fmt.Sprintf("Role collection request %s: %s in %s (%s)", r.ID, a.RoleCollection, scopeLabel(r.Scope), strings.ToLower(string(r.State)))
	}
	return fmt.Sprintf("Credential request %s: %s in %s (%s)", r.ID, r.Name, scopeLabel(r.Scope), strings.ToLower(string(r.State)))
}

// approvalBlocks renders the approval message. User-supplied text (name, reason)
// goes only into plain_text objects, so "<!channel>" in a reason pings nobody.
// mentions, when set, name the approvers the policy routes the request to.
func approvalBlocks(r *approval.Request, q approval.QuorumStatus, mentions string) []slack.Block {
	if r.Assignment != nil {
		return assignmentBlocks(r, q, mentions)
	}
	fields := []*slack.TextBlockObject{
		plain("Scope: " + scopeLabel(r.Scope)),
		plain("Name: " + r.Name),
		plain("Access: " + accessLabel(r.ReadOnly)),
	}
	if r.Lifetime > 0 {
		fields = append(fields, plain("Lifetime: "+lifetime(r.Lifetime)))
	}
	fields = append(fields, plain("Reason: "+r.Reason))
	blocks := []slack.Block{
		section(fmt.Sprintf("*API credential request* `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if c := r.CertificateInfo; c != nil {
		// The subject and issuer are the requester's text: plain_text only.
		blocks = append(blocks, slack.NewSectionBlock(plain(certificateFacts(*c)), nil, nil))
	}
	if r.State == approval.StatePending && mentions != "" {
		blocks = append(blocks, section("Approvers: "+mentions))
	}
	blocks = append(blocks, note(statusLine(r, q)))
	if r.State == approval.StateDenied && r.DenyReason != "" {
		blocks = append(blocks, denyReasonBlock(r))
	}
	if r.State == approval.StatePending {
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("decide:%s:%d", r.ID, r.Version),
			button(ActionApprove, r.ID, "Approve").WithStyle(slack.StylePrimary),
			button(ActionDeny, r.ID, "Deny").WithStyle(slack.StyleDanger),
		))
	}
	return blocks
}

// certificateFacts is what approvers check of a certificate credential: who
// it names, who vouches for it, how long it is good for, and the fingerprint
// the requester can compare with their own file.
func certificateFacts(c approval.CertificateInfo) string {
	issuer := c.Issuer
	if c.SelfSigned() {
		issuer += " (self-signed)"
	}
	return fmt.Sprintf("Certificate credential (X.509; the requester keeps the private key)\nSubject: %s\nIssuer: %s\nValid: %s to %s\nKey: %s\nSHA-256: %s",
		c.Subject, issuer, when(c.NotBefore), when(c.NotAfter), c.Key, c.SHA256)
}

func statusLine(r *approval.Request, q approval.QuorumStatus) string {
	var by []string
	for _, a := range r.Approvals {
		by = append(by, "<@"+a.User+">")
	}
	if a := r.Assignment; a != nil {
		switch r.State {
		case approval.StateApproved, approval.StateMinting:
			return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — assigning the role collection"
		case approval.StateAssigned:
			s := ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — assigned until " + when(r.ExpiresAt)
			if a.PreExisting {
				s = ":information_source: The requester already held it (not granted by credbot; it stays) — tracked until " + when(r.ExpiresAt)
			}
			if r.Revoking {
				s += "; being unassigned"
			}
			return s
		case approval.StateEnded:
			if a.EndedBy != "" {
				return fmt.Sprintf(":wastebasket: Ended early by <@%s>", a.EndedBy)
			}
			return ":wastebasket: Ended at its time"
		}
	}
	switch r.State {
	case approval.StatePending:
		if q.Need == 0 { // the quorum was not asked (lists)
			s := ":hourglass: Waiting for approval"
			if len(by) > 0 {
				s += "; approved so far by " + strings.Join(by, ", ")
			}
			return s
		}
		s := ":hourglass: Waiting for approval (" + progress(q, len(r.Approvals)) + ")"
		if len(q.Waiting) > 0 {
			s += " — still needs " + escape(strings.Join(q.Waiting, " and "))
		}
		if len(by) > 0 {
			s += "; approved so far by " + strings.Join(by, ", ")
		}
		for _, u := range q.Uncounted {
			s += ". " + uncountedLine(u)
		}
		return s
	case approval.StateDenied:
		return fmt.Sprintf(":no_entry: Denied by <@%s>", r.DecidedBy)
	case approval.StateApproved, approval.StateMinting:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — creating the credential"
	case approval.StateIssued, approval.StateDelivered:
		s := ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — credential issued to the requester"
		if !r.ExpiresAt.IsZero() {
			s += ", expires " + when(r.ExpiresAt)
		}
		return s
	case approval.StateFailed:
		return ":x: Failed: " + escape(r.Failure)
	case approval.StateExpired:
		return ":hourglass_flowing_sand: Expired without a decision"
	case approval.StateRevoked:
		return ":wastebasket: Revoked: " + escape(r.Failure)
	case approval.StateCancelled:
		return ":heavy_multiplication_x: Cancelled by the requester"
	case approval.StateDeleted:
		return ":wastebasket: Deleted" + map[bool]string{true: ": " + escape(r.Failure)}[r.Failure != ""]
	}
	return escape(string(r.State))
}

// progress is "1 of 2 counted": only approvals that advance the rule count.
func progress(q approval.QuorumStatus, approvals int) string {
	s := fmt.Sprintf("%d of %d", q.Have, max(q.Need, 1))
	if approvals > 0 {
		s += " counted"
	}
	return s
}

// uncountedLine says whose approval does not count toward the rule, and why.
func uncountedLine(u approval.Uncounted) string {
	return mention(u.User) + "'s approval does not count toward this rule because " + escape(u.Why)
}

// mention renders a Slack user id as a mention, anything else inert.
func mention(user string) string {
	if userIDRE.MatchString(user) {
		return "<@" + user + ">"
	}
	return escape(user)
}

// denyReasonBlock shows a denier's reason as plain_text: user text there
// can neither mention, link nor format anything.
func denyReasonBlock(r *approval.Request) *slack.ContextBlock {
	return slack.NewContextBlock("", plain("Reason: "+truncate(r.DenyReason, 4*maxDenyReason)))
}

// assignmentBlocks renders the approval message of a role collection
// request: what, for whom at BTP, where, for how long, why.
func assignmentBlocks(r *approval.Request, q approval.QuorumStatus, mentions string) []slack.Block {
	a := r.Assignment
	fields := []*slack.TextBlockObject{
		plain("Scope: " + scopeLabel(r.Scope)),
		plain("Role collection: " + a.RoleCollection),
		plain("BTP user: " + a.User.Name + " (origin " + a.User.Origin + ")"),
		plain("For: " + lifetime(r.Lifetime)),
		plain("Reason: " + r.Reason),
	}
	blocks := []slack.Block{
		section(fmt.Sprintf("*Role collection request* `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if r.State == approval.StatePending && mentions != "" {
		blocks = append(blocks, section("Approvers: "+mentions))
	}
	blocks = append(blocks, note(statusLine(r, q)))
	if r.State == approval.StateDenied && r.DenyReason != "" {
		blocks = append(blocks, denyReasonBlock(r))
	}
	if r.State == approval.StatePending {
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("decide:%s:%d", r.ID, r.Version),
			button(ActionApprove, r.ID, "Approve").WithStyle(slack.StylePrimary),
			button(ActionDeny, r.ID, "Deny").WithStyle(slack.StyleDanger),
		))
	}
	return blocks
}

// requestLine is one request in a list: id, name, scope and where it stands.
func requestLine(r *approval.Request) string {
	if a := r.Assignment; a != nil {
		return fmt.Sprintf("`%s` role collection *%s* in %s for %s — %s", r.ID, escape(a.RoleCollection), escape(scopeLabel(r.Scope)),
			escape(a.User.Name), statusLine(r, approval.QuorumStatus{}))
	}
	s := fmt.Sprintf("`%s` *%s* in %s, %s — %s", r.ID, escape(r.Name), escape(scopeLabel(r.Scope)), accessLabel(r.ReadOnly), statusLine(r, approval.QuorumStatus{}))
	if r.State == approval.StateDelivered && !r.ExpiresAt.IsZero() {
		s += "; expires " + when(r.ExpiresAt)
	}
	return s
}

// revealMessages renders the one-time secret for the ephemeral reply: one
// message, or more if the material needs more than 50 blocks.
func revealMessages(rv approval.Revelation) [][]slack.Block {
	c := rv.Request.Credential
	var meta strings.Builder
	fmt.Fprintf(&meta, "*%s* in %s\n", escape(c.Name), escape(scopeLabel(c.Scope)))
	fmt.Fprintf(&meta, "clientid: `%s`\ntokenurl: %s\n", escape(c.ClientID), escape(c.TokenURL))
	for _, u := range []struct{ k, v string }{{"url", c.URL}, {"certurl", c.CertURL}, {"apiurl", c.APIURL}} {
		if u.v != "" {
			fmt.Fprintf(&meta, "%s: %s\n", u.k, escape(u.v))
		}
	}
	blocks := []slack.Block{section(meta.String())}
	if ci := rv.Request.CertificateInfo; ci != nil {
		var key bool
		for _, f := range rv.Secret.Fields() {
			key = key || f.Name == "key"
		}
		text := fmt.Sprintf("Certificate credential: get tokens over mutual TLS at the tokenurl with the certificate you sent (SHA-256 %s, valid to %s)", ci.SHA256, when(ci.NotAfter))
		if key {
			text += ", or with the certificate and key BTP returned below"
		} else {
			text += " and its private key, which only you hold: credbot never saw it"
		}
		blocks = append(blocks, note(escape(text)+"."))
	}
	for _, f := range rv.Secret.Fields() {
		// Never truncate a secret: split it over as many sections as it needs. A
		// chunk of 550 bytes stays under Slack's 3000 even if every byte is escaped.
		parts := chunks(f.Value, 550)
		for i, p := range parts {
			label := f.Name
			if len(parts) > 1 {
				label = fmt.Sprintf("%s (part %d of %d)", f.Name, i+1, len(parts))
			}
			blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
				fmt.Sprintf("%s:\n```%s```", label, escape(p)), false, false), nil, nil))
		}
	}
	blocks = append(blocks, note("Shown once. credbot has deleted its copy; BTP cannot show it again."))
	var msgs [][]slack.Block
	for len(blocks) > maxMessageBlocks {
		msgs = append(msgs, blocks[:maxMessageBlocks])
		blocks = blocks[maxMessageBlocks:]
	}
	return append(msgs, blocks)
}
