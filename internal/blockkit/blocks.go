// Package blockkit renders credbot's Slack messages, forms and App Home as
// Block Kit: pure functions from the domain to blocks, within Slack's limits,
// with user text always escaped or plain. The action and callback ids of its
// buttons and forms are what the handlers dispatch on.
package blockkit

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// Block Kit limits (docs.slack.dev/reference/block-kit). Every renderer here
// stays inside them; the handlers' blocks_test.go checks each one against them.
const (
	MaxMessageBlocks = 50
	MaxViewBlocks    = 100
	MaxSectionText   = 3000
	MaxFieldText     = 2000
	MaxFields        = 10
	MaxButtonText    = 75
	MaxButtonValue   = 2000
	MaxFallbackText  = 4000
)

// UserID is a Slack user id (W… on Enterprise Grid).
var UserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

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

// Plain is a plain_text object: Slack renders it verbatim, so user input in it
// cannot mention, link or format anything.
func Plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, Truncate(s, MaxFieldText), false, false)
}

// Mrkdwn is a Mrkdwn object for text we compose; anything user-supplied in it
// must have gone through escape.
func Mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, Truncate(s, MaxFieldText), false, false)
}

func Section(s string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, Truncate(s, MaxSectionText), false, false), nil, nil)
}

func Note(s string) *slack.ContextBlock {
	return slack.NewContextBlock("", Mrkdwn(s))
}

func Button(actionID, value, text string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, value, slack.NewTextBlockObject(slack.PlainTextType, Truncate(text, MaxButtonText), false, false))
}

// Confirm is a confirmation dialog (title ≤ 100, text ≤ 300, buttons ≤ 30
// characters). danger styles its Confirm button red.
func Confirm(title, text, yes, no string, danger bool) *slack.ConfirmationBlockObject {
	pt := func(s string, n int) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, Truncate(s, n), false, false)
	}
	c := slack.NewConfirmationBlockObject(pt(title, 100), pt(text, 300), pt(yes, 30), pt(no, 30))
	if danger {
		c = c.WithStyle(slack.StyleDanger)
	}
	return c
}

// Escape neutralises Slack's control sequences in text shown as mrkdwn: only
// &, < and > (docs.slack.dev/messaging/formatting-message-text), so that
// "<!channel>" or "<@U123>" typed by a user pings nobody.
func Escape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return escaper.Replace(s)
}

// escaper is built once: a Replacer builds its lookup table on first use,
// several kilobytes, which per call was a tenth of all the bot allocated.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut. Never
// used on secret material, which is split instead (revealBlocks).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Chunks splits s into pieces of at most n bytes on rune boundaries, losing nothing.
func Chunks(s string, n int) []string {
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

func ScopeLabel(s approval.Scope) string {
	switch s.Kind {
	case approval.ScopeGlobalAccount:
		return "global account " + s.ID
	default:
		return string(s.Kind) + " " + s.ID
	}
}

func AccessLabel(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "full access"
}

func When(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Lifetime renders a duration the way people type it: 30d, 72h, 90m.
func Lifetime(d time.Duration) string {
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

func ApprovalFallback(r *approval.Request) string {
	if a := r.Assignment; a != nil {
		return fmt.Sprintf("Role collection request %s: %s in %s (%s)", r.ID, a.RoleCollection, ScopeLabel(r.Scope), strings.ToLower(string(r.State)))
	}
	return fmt.Sprintf("Credential request %s: %s in %s (%s)", r.ID, r.Name, ScopeLabel(r.Scope), strings.ToLower(string(r.State)))
}

// ApprovalBlocks renders the approval message. User-supplied text (name, reason)
// goes only into plain_text objects, so "<!channel>" in a reason pings nobody.
// mentions, when set, name the approvers the policy routes the request to.
func ApprovalBlocks(r *approval.Request, q approval.QuorumStatus, mentions string) []slack.Block {
	if r.Assignment != nil {
		return AssignmentBlocks(r, q, mentions)
	}
	fields := []*slack.TextBlockObject{
		Plain("Scope: " + ScopeLabel(r.Scope)),
		Plain("Name: " + r.Name),
		Plain("Access: " + AccessLabel(r.ReadOnly)),
	}
	if r.Lifetime > 0 {
		fields = append(fields, Plain("Lifetime: "+Lifetime(r.Lifetime)))
	}
	fields = append(fields, Plain("Reason: "+r.Reason))
	blocks := []slack.Block{
		Section(fmt.Sprintf("*API credential request* `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if c := r.CertificateInfo; c != nil {
		// The subject and issuer are the requester's text: plain_text only.
		blocks = append(blocks, slack.NewSectionBlock(Plain(CertificateFacts(*c)), nil, nil))
	}
	return append(blocks, decisionBlocks(r, q, mentions)...)
}

// CertificateFacts is what approvers check of a certificate credential: who
// it names, who vouches for it, how long it is good for, and the fingerprint
// the requester can compare with their own file.
func CertificateFacts(c approval.CertificateInfo) string {
	issuer := c.Issuer
	if c.SelfSigned() {
		issuer += " (self-signed)"
	}
	return fmt.Sprintf("Certificate credential (X.509; the requester keeps the private key)\nSubject: %s\nIssuer: %s\nValid: %s to %s\nKey: %s\nSHA-256: %s",
		c.Subject, issuer, When(c.NotBefore), When(c.NotAfter), c.Key, c.SHA256)
}

func StatusLine(r *approval.Request, q approval.QuorumStatus) string {
	var by []string
	for _, a := range r.Approvals {
		by = append(by, "<@"+a.User+">")
	}
	if a := r.Assignment; a != nil {
		switch r.State {
		case approval.StateApproved, approval.StateMinting:
			return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — assigning the role collection"
		case approval.StateAssigned:
			s := ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — assigned until " + When(r.ExpiresAt)
			if a.PreExisting {
				s = ":information_source: The requester already held it (not granted by credbot; it stays) — tracked until " + When(r.ExpiresAt)
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
		s := ":hourglass: Waiting for approval (" + Progress(q, len(r.Approvals)) + ")"
		if len(q.Waiting) > 0 {
			s += " — still needs " + Escape(strings.Join(q.Waiting, " and "))
		}
		if len(by) > 0 {
			s += "; approved so far by " + strings.Join(by, ", ")
		}
		for _, u := range q.Uncounted {
			s += ". " + UncountedLine(u)
		}
		return s
	case approval.StateDenied:
		return fmt.Sprintf(":no_entry: Denied by <@%s>", r.DecidedBy)
	case approval.StateApproved, approval.StateMinting:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — creating the credential"
	case approval.StateIssued, approval.StateDelivered:
		s := ":white_check_mark: Approved by " + strings.Join(by, ", ") + " — credential issued to the requester"
		if !r.ExpiresAt.IsZero() {
			s += ", expires " + When(r.ExpiresAt)
		}
		return s
	case approval.StateFailed:
		return ":x: Failed: " + Escape(r.Failure)
	case approval.StateExpired:
		return ":hourglass_flowing_sand: Expired without a decision"
	case approval.StateRevoked:
		return ":wastebasket: Revoked: " + Escape(r.Failure)
	case approval.StateCancelled:
		return ":heavy_multiplication_x: Cancelled by the requester"
	case approval.StateDeleted:
		return ":wastebasket: Deleted" + map[bool]string{true: ": " + Escape(r.Failure)}[r.Failure != ""]
	}
	return Escape(string(r.State))
}

// Progress is "1 of 2 counted": only approvals that advance the rule count.
func Progress(q approval.QuorumStatus, approvals int) string {
	s := fmt.Sprintf("%d of %d", q.Have, max(q.Need, 1))
	if approvals > 0 {
		s += " counted"
	}
	return s
}

// UncountedLine says whose approval does not count toward the rule, and why.
func UncountedLine(u approval.Uncounted) string {
	return Mention(u.User) + "'s approval does not count toward this rule because " + Escape(u.Why)
}

// Mention renders a Slack user id as a Mention, anything else inert.
func Mention(user string) string {
	if UserID.MatchString(user) {
		return "<@" + user + ">"
	}
	return Escape(user)
}

// DenyReasonBlock shows a denier's reason as plain_text: user text there
// can neither mention, link nor format anything.
func DenyReasonBlock(r *approval.Request) *slack.ContextBlock {
	return slack.NewContextBlock("", Plain("Reason: "+Truncate(r.DenyReason, 4*approval.MaxDenyReason)))
}

// decisionBlocks end every approval message: while it is pending, who may
// approve and the Approve and Deny buttons; always its status, and a denier's
// reason once denied.
func decisionBlocks(r *approval.Request, q approval.QuorumStatus, mentions string) []slack.Block {
	var blocks []slack.Block
	if r.State == approval.StatePending && mentions != "" {
		blocks = append(blocks, Section("Approvers: "+mentions))
	}
	blocks = append(blocks, Note(StatusLine(r, q)))
	if r.State == approval.StateDenied && r.DenyReason != "" {
		blocks = append(blocks, DenyReasonBlock(r))
	}
	if r.State == approval.StatePending {
		blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("decide:%s:%d", r.ID, r.Version),
			Button(ActionApprove, r.ID, "Approve").WithStyle(slack.StylePrimary),
			Button(ActionDeny, r.ID, "Deny").WithStyle(slack.StyleDanger),
		))
	}
	return blocks
}

// AssignmentBlocks renders the approval message of a role collection
// request: what, for whom at BTP, where, for how long, why.
func AssignmentBlocks(r *approval.Request, q approval.QuorumStatus, mentions string) []slack.Block {
	a := r.Assignment
	fields := []*slack.TextBlockObject{
		Plain("Scope: " + ScopeLabel(r.Scope)),
		Plain("Role collection: " + a.RoleCollection),
		Plain("BTP user: " + a.User.Name + " (origin " + a.User.Origin + ")"),
		Plain("For: " + Lifetime(r.Lifetime)),
		Plain("Reason: " + r.Reason),
	}
	blocks := []slack.Block{
		Section(fmt.Sprintf("*Role collection request* `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	return append(blocks, decisionBlocks(r, q, mentions)...)
}

// RequestLine is one request in a list: id, name, scope and where it stands.
func RequestLine(r *approval.Request) string {
	if a := r.Assignment; a != nil {
		return fmt.Sprintf("`%s` role collection *%s* in %s for %s — %s", r.ID, Escape(a.RoleCollection), Escape(ScopeLabel(r.Scope)),
			Escape(a.User.Name), StatusLine(r, approval.QuorumStatus{}))
	}
	s := fmt.Sprintf("`%s` *%s* in %s, %s — %s", r.ID, Escape(r.Name), Escape(ScopeLabel(r.Scope)), AccessLabel(r.ReadOnly), StatusLine(r, approval.QuorumStatus{}))
	if r.State == approval.StateDelivered && !r.ExpiresAt.IsZero() {
		s += "; expires " + When(r.ExpiresAt)
	}
	return s
}

// RevealMessages renders the one-time secret for the ephemeral reply: one
// message, or more if the material needs more than 50 blocks.
func RevealMessages(rv approval.Revelation) [][]slack.Block {
	c := rv.Request.Credential
	var meta strings.Builder
	fmt.Fprintf(&meta, "*%s* in %s\n", Escape(c.Name), Escape(ScopeLabel(c.Scope)))
	fmt.Fprintf(&meta, "clientid: `%s`\ntokenurl: %s\n", Escape(c.ClientID), Escape(c.TokenURL))
	for _, u := range []struct{ k, v string }{{"url", c.URL}, {"certurl", c.CertURL}, {"apiurl", c.APIURL}} {
		if u.v != "" {
			fmt.Fprintf(&meta, "%s: %s\n", u.k, Escape(u.v))
		}
	}
	blocks := []slack.Block{Section(meta.String())}
	if ci := rv.Request.CertificateInfo; ci != nil {
		var key bool
		for _, f := range rv.Secret.Fields() {
			key = key || f.Name == "key"
		}
		text := fmt.Sprintf("Certificate credential: get tokens over mutual TLS at the tokenurl with the certificate you sent (SHA-256 %s, valid to %s)", ci.SHA256, When(ci.NotAfter))
		if key {
			text += ", or with the certificate and key BTP returned below"
		} else {
			text += " and its private key, which only you hold: credbot never saw it"
		}
		blocks = append(blocks, Note(Escape(text)+"."))
	}
	for _, f := range rv.Secret.Fields() {
		// Never truncate a secret: split it over as many sections as it needs. A
		// chunk of 550 bytes stays under Slack's 3000 even if every byte is escaped.
		parts := Chunks(f.Value, 550)
		for i, p := range parts {
			label := f.Name
			if len(parts) > 1 {
				label = fmt.Sprintf("%s (part %d of %d)", f.Name, i+1, len(parts))
			}
			blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
				fmt.Sprintf("%s:\n```%s```", label, Escape(p)), false, false), nil, nil))
		}
	}
	blocks = append(blocks, Note("Shown once. credbot has deleted its copy; BTP cannot show it again."))
	var msgs [][]slack.Block
	for len(blocks) > MaxMessageBlocks {
		msgs = append(msgs, blocks[:MaxMessageBlocks])
		blocks = blocks[MaxMessageBlocks:]
	}
	return append(msgs, blocks)
}
