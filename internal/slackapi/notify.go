package slackapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/policy"
	"github.com/slack-go/slack"
)

// ApproverSource names who may approve in a scope (policy subjects: user ids,
// email:…, group:…). Implemented by *policy.Engine.
type ApproverSource interface {
	Approvers(ctx context.Context, scope approval.Scope) ([]string, error)
}

// MaxMentions caps how many approvers one message mentions.
const MaxMentions = 15

// maxApproverDMs caps how many approvers one request is DMed to (routes.yaml
// dm_approvers): the copies are kept on the request and updated with it.
const maxApproverDMs = 15

// ApprovalRouter says where a scope's approval requests go (routes.yaml) and
// vets the approvers they are DMed to. Implemented by *policy.Engine.
type ApprovalRouter interface {
	ApprovalRoute(scope approval.Scope) policy.Route
	Authorize(ctx context.Context, user string, act approval.Action, scope approval.Scope, owner string) (approval.Decision, error)
}

// Notifier is the Slack Web API side of approval.Notifier. Every call goes
// through WebAPI, so a 429 delays the message instead of losing it.
type Notifier struct {
	api             *WebAPI
	approvalChannel string
	escalation      string         // channel told about escalated requests; "" broadcasts in the approval channel
	approvers       ApproverSource // nil: mention nobody
	router          ApprovalRouter // nil: every request goes to approvalChannel
	dir             *Directory     // nil: mention user ids only
	log             *slog.Logger
	// breakglass is the channel of break-glass alerts ("" the approval
	// channel); breakglassEscalation a channel or user told as well, and
	// again at every escalation.
	breakglass, breakglassEscalation string
}

var _ approval.Notifier = (*Notifier)(nil)

// NotifierOptions are the optional parts of a Notifier.
type NotifierOptions struct {
	// Approvers lets approval messages and reminders mention exactly the people
	// the policy routes a request to.
	Approvers ApproverSource
	// Directory resolves group handles and emails to mentions, and user ids to
	// names where a mention would ping someone needlessly.
	Directory *Directory
	// Router sends each request to the channel its scope's route names, and
	// DMs its approvers when the route says so; nil: approvalChannel for all.
	Router ApprovalRouter
	// EscalationChannel is told about requests that waited through every
	// reminder; empty: the escalated reminder is also shown in the approval channel.
	EscalationChannel string
	// BreakglassChannel gets break-glass alerts ("" the approval channel);
	// BreakglassEscalation (a channel or user id) gets them too, and every
	// escalation.
	BreakglassChannel    string
	BreakglassEscalation string
	Logger               *slog.Logger
}

// NewNotifier posts approval requests to approvalChannel through api.
func NewNotifier(api *WebAPI, approvalChannel string, opts NotifierOptions) *Notifier {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{api: api, approvalChannel: approvalChannel, escalation: opts.EscalationChannel,
		approvers: opts.Approvers, router: opts.Router, dir: opts.Directory, log: opts.Logger,
		breakglass: opts.BreakglassChannel, breakglassEscalation: opts.BreakglassEscalation}
}

// PostApproval implements approval.Notifier: the message goes to the channel
// routes.yaml names for the scope, or to the approval channel. If Slack
// refuses the routed channel (the bot was not invited, it was archived), the
// request goes to the approval channel with a warning rather than failing:
// nobody can approve a request nobody sees.
func (n *Notifier) PostApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) (string, string, error) {
	m := n.mentions(ctx, r)
	text := blockkit.ApprovalFallback(r)
	if m != "" {
		text += " — approvers: " + m
	}
	route := n.route(r.Scope)
	ch := n.approvalChannel
	if route.Channel != "" {
		ch = route.Channel
	}
	blocks := blockkit.ApprovalBlocks(r, q, m)
	c, ts, err := n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(blocks...))
	var se slack.SlackErrorResponse
	if err == nil || ch == n.approvalChannel || !errors.As(err, &se) {
		return c, ts, err
	}
	n.log.ErrorContext(ctx, "Slack refused the approval request in the channel routes.yaml names for its scope; posting it in CREDBOT_APPROVAL_CHANNEL instead",
		"request_id", r.ID, "scope", r.Scope.String(), "channel", ch, "route", route.Rule, "fallback", n.approvalChannel, "error", err,
		"fix", "invite the bot to "+ch+" (/invite @credbot in that channel), or correct the route in routes.yaml")
	warn := fmt.Sprintf(":warning: routes.yaml sends requests in %s to <#%s>, but Slack refused the message there (%s), so it is posted here. Invite the bot to that channel or correct the route.",
		blockkit.Escape(blockkit.ScopeLabel(r.Scope)), ch, blockkit.Escape(se.Err))
	blocks = append([]slack.Block{blockkit.Note(warn)}, blocks...)
	return n.api.PostMessage(ctx, n.approvalChannel, slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(blocks...))
}

func (n *Notifier) route(scope approval.Scope) policy.Route {
	if n.router == nil {
		return policy.Route{}
	}
	return n.router.ApprovalRoute(scope)
}

// DMApprovers implements approval.Notifier: when the scope's route sets
// dm_approvers, each person who may approve r now (the approvers the policy
// names, emails and groups resolved to people, each authorized again, never
// the requester; at most maxApproverDMs) gets the approval message with its
// buttons in their DM with the bot. A click there is authorized like one in
// the channel.
func (n *Notifier) DMApprovers(ctx context.Context, r *approval.Request, q approval.QuorumStatus) []approval.MessageRef {
	if n.router == nil || !n.router.ApprovalRoute(r.Scope).DMApprovers {
		return nil
	}
	users := n.approverPeople(ctx, r)
	var out []approval.MessageRef
	for _, u := range users {
		ch, err := n.api.DM(ctx, u)
		if err == nil {
			var ts string
			_, ts, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(blockkit.ApprovalFallback(r), blockkit.MaxFallbackText), false),
				slack.MsgOptionBlocks(dmApprovalBlocks(r, q, r.ApprovalChannel)...))
			if err == nil {
				out = append(out, approval.MessageRef{Channel: ch, TS: ts})
				continue
			}
		}
		n.log.WarnContext(ctx, "could not DM an approver the approval request; it is still in the approval channel",
			"request_id", r.ID, "approver", u, "error", err)
	}
	return out
}

// approverPeople resolves the approvers the policy names for r's scope to
// Slack user ids who may approve r right now.
func (n *Notifier) approverPeople(ctx context.Context, r *approval.Request) []string {
	if n.approvers == nil {
		return nil
	}
	names, err := n.approvers.Approvers(ctx, r.Scope)
	if err != nil {
		n.log.WarnContext(ctx, "list approvers to DM", "request_id", r.ID, "error", err)
		return nil
	}
	seen := map[string]bool{r.Requester: true}
	var candidates []string
	add := func(u string) {
		if !seen[u] && (IsSlackID(u, 'U') || IsSlackID(u, 'W')) {
			seen[u] = true
			candidates = append(candidates, u)
		}
	}
	for _, s := range names {
		switch {
		case strings.HasPrefix(s, "email:") && n.dir != nil:
			if id, err := n.dir.userByEmail(ctx, strings.TrimPrefix(s, "email:")); err == nil {
				add(id)
			}
		case strings.HasPrefix(s, "group:") && n.dir != nil:
			members, err := n.dir.GroupMembers(ctx, strings.TrimPrefix(s, "group:"))
			if err != nil {
				n.log.WarnContext(ctx, "list a group's members to DM them", "request_id", r.ID, "group", s, "error", err)
			}
			for _, m := range members {
				add(m)
			}
		default:
			add(s)
		}
	}
	var out []string
	for _, u := range candidates {
		if len(out) == maxApproverDMs {
			n.log.WarnContext(ctx, "more approvers than credbot DMs; the rest see the request in the channel",
				"request_id", r.ID, "dmed", maxApproverDMs, "approvers", len(candidates))
			break
		}
		d, err := n.router.Authorize(ctx, u, approval.ActionApprove, r.Scope, r.Requester)
		if err != nil || !d.Allowed {
			continue
		}
		out = append(out, u)
	}
	return out
}

// dmApprovalBlocks is the approval message as an approver's DM shows it: the
// same request and buttons, saying where the channel copy is, and mentioning
// nobody.
func dmApprovalBlocks(r *approval.Request, q approval.QuorumStatus, channel string) []slack.Block {
	head := "You may approve this request."
	if channel != "" {
		head += " It is also posted in <#" + channel + ">, where its thread shows each decision."
	}
	return append([]slack.Block{blockkit.Note(head)}, blockkit.ApprovalBlocks(r, q, "")...)
}

// UpdateApproval implements approval.Notifier: it rewrites the approval message
// and says what happened in its thread, so that the channel sees the decision
// and the approvers who did not act see that they need not.
func (n *Notifier) UpdateApproval(ctx context.Context, r *approval.Request, q approval.QuorumStatus) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	var m string
	if r.State == approval.StatePending {
		m = n.mentions(ctx, r)
	}
	err := n.api.UpdateMessage(ctx, r.ApprovalChannel, r.ApprovalTS,
		slack.MsgOptionText(blockkit.ApprovalFallback(r), false), slack.MsgOptionBlocks(blockkit.ApprovalBlocks(r, q, m)...))
	for _, dm := range r.ApprovalDMs {
		if derr := n.api.UpdateMessage(ctx, dm.Channel, dm.TS, slack.MsgOptionText(blockkit.ApprovalFallback(r), false),
			slack.MsgOptionBlocks(dmApprovalBlocks(r, q, r.ApprovalChannel)...)); derr != nil {
			n.log.WarnContext(ctx, "could not update an approver's DM copy of the approval request", "request_id", r.ID, "channel", dm.Channel, "error", derr)
		}
	}
	line := n.decisionLine(ctx, r, q)
	if line == "" {
		return err
	}
	thread := []slack.Block{blockkit.Section(line)}
	if r.State == approval.StateDenied && r.DenyReason != "" {
		thread = append(thread, blockkit.DenyReasonBlock(r))
	}
	_, _, terr := n.api.PostMessage(ctx, r.ApprovalChannel, slack.MsgOptionTS(r.ApprovalTS),
		slack.MsgOptionText(line, false), slack.MsgOptionBlocks(thread...))
	if err == nil {
		err = terr
	}
	return err
}

// decisionLine is the thread reply for the request's new state. People are
// named rather than mentioned: whoever clicked knows already.
func (n *Notifier) decisionLine(ctx context.Context, r *approval.Request, q approval.QuorumStatus) string {
	var by []string
	for _, a := range r.Approvals {
		by = append(by, n.name(ctx, a.User))
	}
	switch r.State {
	case approval.StatePending:
		if len(r.Approvals) == 0 {
			return ""
		}
		last := r.Approvals[len(r.Approvals)-1].User
		s := fmt.Sprintf(":ballot_box_with_check: Approved by %s (%s)", by[len(by)-1], blockkit.Progress(q, len(r.Approvals)))
		if ok, why := q.Counts(last); !ok {
			s += "; this approval does not count toward the rule because " + blockkit.Escape(why)
		}
		if len(q.Waiting) > 0 {
			s += " — still needs " + blockkit.Escape(strings.Join(q.Waiting, " and "))
		}
		return s
	case approval.StateDenied:
		return ":no_entry: Denied by " + n.name(ctx, r.DecidedBy)
	case approval.StateApproved:
		return ":white_check_mark: Approved by " + strings.Join(by, ", ") + ". Creating the credential."
	case approval.StateIssued:
		return ":key: Credential created; the requester has been sent a one-time Reveal button."
	case approval.StateCancelled:
		return ":heavy_multiplication_x: Cancelled by the requester"
	}
	return blockkit.StatusLine(r, q)
}

// name renders a user without pinging them: their Slack name if the directory
// knows it, else a mention.
func (n *Notifier) name(ctx context.Context, user string) string {
	if n.dir != nil {
		if p, err := n.dir.Profile(ctx, user); err == nil && p.Name != "" {
			return "*" + blockkit.Escape(p.Name) + "*"
		}
	}
	return "<@" + user + ">"
}

// mentions renders the approvers the policy routes r to, minus its requester.
func (n *Notifier) mentions(ctx context.Context, r *approval.Request) string {
	if n.approvers == nil {
		return ""
	}
	names, err := n.approvers.Approvers(ctx, r.Scope)
	if err != nil {
		n.log.WarnContext(ctx, "list approvers", "request_id", r.ID, "error", err)
		return ""
	}
	return n.mentionList(ctx, names, r.Requester)
}

// mentionList mentions names, leaving out the requester and stopping at
// MaxMentions ("and N more").
func (n *Notifier) mentionList(ctx context.Context, names []string, requester string) string {
	var out []string
	for _, s := range names {
		if s == requester {
			continue
		}
		if len(out) == MaxMentions {
			out = append(out, fmt.Sprintf("and %d more", len(names)-MaxMentions))
			break
		}
		out = append(out, n.mention(ctx, s))
	}
	return strings.Join(out, ", ")
}

func (n *Notifier) mention(ctx context.Context, subject string) string {
	if n.dir != nil {
		return n.dir.Mention(ctx, subject)
	}
	if IsSlackID(subject, 'U') || IsSlackID(subject, 'W') {
		return "<@" + subject + ">"
	}
	return blockkit.Escape(subject)
}

// Remind implements approval.Notifier: a reply in the request's thread that
// mentions the approvers again. Escalated, it also goes to the escalation
// channel, or, without one, is shown in the approval channel itself.
func (n *Notifier) Remind(ctx context.Context, r *approval.Request, q approval.QuorumStatus, escalate bool) error {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return nil
	}
	text := fmt.Sprintf(":bell: Request `%s` from <@%s> has waited since %s for approval (%s); it expires %s.",
		r.ID, r.Requester, blockkit.When(r.CreatedAt), blockkit.Progress(q, len(r.Approvals)), blockkit.When(r.PendingUntil))
	if len(q.Waiting) > 0 {
		text += " It still needs " + blockkit.Escape(strings.Join(q.Waiting, " and ")) + "."
	}
	if m := n.mentions(ctx, r); m != "" {
		text += " " + m
	}
	opts := []slack.MsgOption{slack.MsgOptionTS(r.ApprovalTS), slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(blockkit.Section(text))}
	if escalate && n.escalation == "" {
		opts = append(opts, slack.MsgOptionBroadcast())
	}
	if _, _, err := n.api.PostMessage(ctx, r.ApprovalChannel, opts...); err != nil {
		return err
	}
	if escalate && n.escalation != "" {
		what := blockkit.Escape(r.Name)
		if r.Assignment != nil { // its name is credbot's reservation, not what was asked for
			what = "role collection " + blockkit.Escape(r.Assignment.RoleCollection)
		}
		esc := fmt.Sprintf(":rotating_light: Request `%s` (%s in %s, from <@%s>) has waited through %d reminders without a decision.",
			r.ID, what, blockkit.Escape(blockkit.ScopeLabel(r.Scope)), r.Requester, r.Reminders)
		if _, _, err := n.api.PostMessage(ctx, n.escalation, slack.MsgOptionText(esc, false), slack.MsgOptionBlocks(blockkit.Section(esc))); err != nil {
			return err
		}
	}
	return nil
}

// Tell implements approval.Notifier.
func (n *Notifier) Tell(ctx context.Context, r *approval.Request, text string) error {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return err
	}
	_, _, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false))
	return err
}

// Denied implements approval.Notifier: who denied the request, and their
// reason as plain_text (user text: it can neither mention nor format). The
// notification's fallback text carries it escaped.
func (n *Notifier) Denied(ctx context.Context, r *approval.Request) error {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return err
	}
	what := r.Name
	if r.Assignment != nil {
		what = "role collection " + r.Assignment.RoleCollection
	}
	line := fmt.Sprintf("Your request `%s` for *%s* in %s was denied by <@%s>.", r.ID, blockkit.Escape(what), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), r.DecidedBy)
	text := fmt.Sprintf("Your request %s for %s was denied by <@%s>.", r.ID, blockkit.Escape(what), r.DecidedBy)
	blocks := []slack.Block{blockkit.Section(line)}
	if r.DenyReason != "" {
		blocks = append(blocks, blockkit.DenyReasonBlock(r))
		text += " Reason: " + blockkit.Escape(r.DenyReason)
	} else {
		blocks = append(blocks, blockkit.Note("No reason was given. You can ask the approver, or ask again with more detail."))
	}
	_, _, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(blocks...))
	return err
}

// WarnExpiry implements approval.Notifier: a DM with a Delete-now button.
func (n *Notifier) WarnExpiry(ctx context.Context, r *approval.Request) error {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return err
	}
	by := extendBy(r)
	text := fmt.Sprintf("Your API credential %s in %s will be deleted at BTP %s. To keep access, rotate it (a new credential under a new name; this one is deleted a while after you have revealed the new one), or extend it by %s (the policy may ask for approval). Or delete it now, or let it expire.",
		r.Name, blockkit.ScopeLabel(r.Scope), blockkit.When(r.ExpiresAt), blockkit.Lifetime(by))
	del := blockkit.Button(blockkit.ActionDeleteOwn, r.ID, "Delete it now").WithStyle(slack.StyleDanger)
	del.Confirm = slack.NewConfirmationBlockObject(blockkit.Plain("Delete "+blockkit.Truncate(r.Name, 60)+"?"),
		blockkit.Plain("It is deleted at BTP at once; whatever uses it stops working."), blockkit.Plain("Delete"), blockkit.Plain("Keep it"))
	blocks := []slack.Block{
		slack.NewSectionBlock(blockkit.Plain(text), nil, nil),
		slack.NewActionBlock("expiry:"+r.ID,
			blockkit.Button(blockkit.ActionRotate, r.ID, "Rotate").WithStyle(slack.StylePrimary),
			blockkit.Button(blockkit.ActionExtend, r.ID+"|"+durationValue(by), "Extend by "+blockkit.Lifetime(by)),
			del),
	}
	_, _, err = n.api.PostMessage(ctx, ch, slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(blocks...))
	return err
}

// extendBy is what the expiry warning's Extend button offers: the lifetime
// the credential was asked for.
func extendBy(r *approval.Request) time.Duration {
	if r.Lifetime >= time.Hour {
		return r.Lifetime.Round(time.Minute)
	}
	return 30 * 24 * time.Hour
}

// durationValue writes a duration as ParseLifetime reads it.
func durationValue(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// PostExtension implements approval.Notifier: an approval message for a
// pending extension, with its own Approve and Deny buttons.
func (n *Notifier) PostExtension(ctx context.Context, r *approval.Request, q approval.QuorumStatus) (string, string, error) {
	m := n.mentions(ctx, r)
	text := extensionFallback(r, *r.Extension)
	if m != "" {
		text += " — approvers: " + m
	}
	opts := []slack.MsgOption{slack.MsgOptionText(blockkit.Truncate(text, blockkit.MaxFallbackText), false), slack.MsgOptionBlocks(extensionBlocks(r, *r.Extension, q, m, "")...)}
	// Where routes.yaml sends the scope's requests, or, if Slack refuses
	// that channel, CREDBOT_APPROVAL_CHANNEL (PostApproval explains why).
	if ch := n.route(r.Scope).Channel; ch != "" && ch != n.approvalChannel {
		c, ts, err := n.api.PostMessage(ctx, ch, opts...)
		if err == nil {
			return c, ts, nil
		}
		n.log.ErrorContext(ctx, "Slack refused the extension request in the channel routes.yaml names for its scope; posting it in CREDBOT_APPROVAL_CHANNEL instead",
			"request_id", r.ID, "channel", ch, "error", err)
	}
	return n.api.PostMessage(ctx, n.approvalChannel, opts...)
}

// UpdateExtension implements approval.Notifier: the outcome replaces the buttons.
func (n *Notifier) UpdateExtension(ctx context.Context, r *approval.Request, ext approval.Extension, outcome string) error {
	if ext.Channel == "" || ext.TS == "" {
		return nil
	}
	return n.api.UpdateMessage(ctx, ext.Channel, ext.TS,
		slack.MsgOptionText(extensionFallback(r, ext), false), slack.MsgOptionBlocks(extensionBlocks(r, ext, approval.QuorumStatus{}, "", outcome)...))
}

func extensionFallback(r *approval.Request, ext approval.Extension) string {
	return fmt.Sprintf("Extension request for %s (%s) in %s: %s more", r.Name, r.ID, blockkit.ScopeLabel(r.Scope), blockkit.Lifetime(ext.By))
}

// extensionBlocks renders an extension's approval message; outcome, once
// decided, replaces the buttons.
func extensionBlocks(r *approval.Request, ext approval.Extension, q approval.QuorumStatus, mentions, outcome string) []slack.Block {
	blocks := []slack.Block{
		blockkit.Section(fmt.Sprintf("*Extension request* for `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			blockkit.Plain("Scope: " + blockkit.ScopeLabel(r.Scope)), blockkit.Plain("Name: " + r.Name),
			blockkit.Plain("Expires now: " + r.ExpiresAt.UTC().Format(time.RFC1123)), blockkit.Plain("Extend by: " + blockkit.Lifetime(ext.By)),
			blockkit.Plain("Original reason: " + r.Reason),
		}, nil),
	}
	if outcome != "" {
		return append(blocks, blockkit.Note(outcome))
	}
	if mentions != "" {
		blocks = append(blocks, blockkit.Section("Approvers: "+mentions))
	}
	line := fmt.Sprintf(":hourglass: Waiting for approval (%d of %d)", q.Have, max(q.Need, 1))
	if len(q.Waiting) > 0 {
		line += " — waiting on " + blockkit.Escape(strings.Join(q.Waiting, ", "))
	}
	return append(blocks, blockkit.Note(line), slack.NewActionBlock("extend-decide:"+r.ID,
		blockkit.Button(blockkit.ActionExtendApprove, extensionValue(r.ID, ext), "Approve").WithStyle(slack.StylePrimary),
		blockkit.Button(blockkit.ActionExtendDeny, extensionValue(r.ID, ext), "Deny").WithStyle(slack.StyleDanger)))
}

// extensionValue names one extension request: the request id and when it
// was asked, so that a click on the message of an extension that lapsed and
// was asked again never decides the newer one.
func extensionValue(id string, ext approval.Extension) string {
	return id + "|" + strconv.FormatInt(ext.At.UnixNano(), 10)
}

// OfferReveal implements approval.Notifier: a DM notice without the secret.
func (n *Notifier) OfferReveal(ctx context.Context, r *approval.Request, window time.Duration) (string, string, error) {
	ch, err := n.api.DM(ctx, r.Requester)
	if err != nil {
		return "", "", err
	}
	text := fmt.Sprintf("Your API credential %s in %s is ready. Reveal it within %s; it is shown once.", r.Name, blockkit.ScopeLabel(r.Scope), window)
	blocks := []slack.Block{
		slack.NewSectionBlock(blockkit.Plain(text), nil, nil),
		slack.NewActionBlock("reveal:"+r.ID, blockkit.Button(blockkit.ActionReveal, r.ID, "Reveal secret").WithStyle(slack.StylePrimary)),
		blockkit.Note("Only you see the secret, once, as a message that disappears when you reload Slack. Copy it into your secret store right away."),
	}
	_, ts, err := n.api.PostMessage(ctx, ch, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", "", err
	}
	return ch, ts, nil
}

// Revealed implements approval.Notifier: the DM notice loses its Reveal
// button and says what became of the secret.
func (n *Notifier) Revealed(ctx context.Context, r *approval.Request) error {
	if r.DMChannel == "" || r.DMTS == "" {
		return nil
	}
	text := fmt.Sprintf("The secret of %s in %s was revealed at %s and is no longer stored by credbot.", r.Name, blockkit.ScopeLabel(r.Scope), r.UpdatedAt.Format(time.RFC1123))
	if !r.ExpiresAt.IsZero() {
		text += " The credential expires " + blockkit.When(r.ExpiresAt) + "."
	}
	if r.State == approval.StateRevoked {
		// The reply that carried the secret failed: nobody saw it.
		text = fmt.Sprintf("The secret of %s in %s could not be shown to you, so credbot deleted the credential at BTP (%s). Nobody has seen the secret. Ask again with /credbot create.",
			r.Name, blockkit.ScopeLabel(r.Scope), blockkit.When(r.UpdatedAt))
	}
	blocks := []slack.Block{slack.NewSectionBlock(blockkit.Plain(text), nil, nil)}
	if r.State == approval.StateDelivered && r.Rotates != "" && !r.RotationDone && !r.GraceUntil.IsZero() {
		// A rotation: the credential it replaces lives until GraceUntil.
		old := fmt.Sprintf("The credential this one replaces is deleted at BTP %s. Switch over, then retire it now if you like.", blockkit.When(r.GraceUntil))
		text += " " + old
		retire := blockkit.Button(blockkit.ActionRetireOld, r.ID, "Retire the old one").WithStyle(slack.StyleDanger)
		retire.Confirm = slack.NewConfirmationBlockObject(blockkit.Plain("Retire the old credential?"),
			blockkit.Plain("It is deleted at BTP at once; whatever still uses it stops working."), blockkit.Plain("Retire it"), blockkit.Plain("Keep it"))
		blocks = append(blocks, blockkit.Section(blockkit.Escape(old)), slack.NewActionBlock("retire:"+r.ID, retire))
	}
	return n.api.UpdateMessage(ctx, r.DMChannel, r.DMTS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
}
