package handlers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/slackapi"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

var requestIDRE = regexp.MustCompile(`^r[0-9a-f]{12}$`)

// HandleCommand answers a slash command. It returns the ack payload (nil for
// an empty ack) at once; anything slow is recorded in the inbox before the ack
// and done by a worker, which answers through the command's response_url.
func (s *Server) HandleCommand(ctx context.Context, sc slack.SlashCommand) any {
	if !blockkit.UserID.MatchString(sc.UserID) {
		return ackText(":warning: credbot could not tell who you are.")
	}
	cmd, err := ParseCommand(sc.Text)
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return ackText(":warning: " + blockkit.Escape(ue.Msg) + "\n\n" + Help(ue.Verb))
		}
		return ackText(":warning: " + blockkit.Escape(err.Error()))
	}
	if cmd.Verb == "help" {
		topic := ""
		if len(cmd.Args) == 1 {
			topic = cmd.Args[0]
		}
		return ackText(Help(topic))
	}
	if cmd.Modal && (cmd.Verb == "assign" || cmd.Verb == "create") {
		// A form records nothing: its count is a call of its own.
		if refusal, over := s.overCommandLimit(ctx, sc.UserID); over {
			return refusal
		}
		if !s.first(ctx, "command", sc.TriggerID) {
			return nil
		}
		if cmd.Verb == "assign" {
			return s.openAssignModal(ctx, sc.TriggerID)
		}
		return s.openCreateModal(ctx, sc.TriggerID, cmd)
	}
	j := job{Kind: jobCommand, User: sc.UserID, Team: sc.TeamID, Text: sc.Text, Trigger: sc.TriggerID, ResponseURL: sc.ResponseURL}
	ack, f := s.commandWork(j)
	if f == nil {
		return ackText(Help(""))
	}
	// Counted in the step that records it (overCommandLimit's counter).
	return s.acceptCounted(ctx, sc.TriggerID, j, ackText(ack), s.commandQuota(sc.UserID))
}

// commandWork is what a recorded command does after its ack, and the ack
// that promises it. It only decides; nothing happens until f runs.
func (s *Server) commandWork(j job) (ack string, f func(ctx context.Context)) {
	cmd, err := ParseCommand(j.Text)
	if err != nil {
		return "", nil
	}
	o := origin{user: j.User, responseURL: j.ResponseURL}
	switch cmd.Verb {
	case "create":
		if cmd.Modal {
			return "", nil
		}
		// The trigger id makes the submission idempotent: a job that runs
		// twice (its worker died after submitting) finds its own request.
		sub := approval.Submission{User: j.User, Team: j.Team, Scope: cmd.Scope, Name: cmd.Name,
			ReadOnly: cmd.ReadOnly, Reason: cmd.Reason, ExpiresIn: cmd.ExpiresIn, Key: j.Trigger}
		return "Submitting your request…", func(ctx context.Context) { s.submit(ctx, o, sub) }
	case "breakglass":
		sub := approval.Submission{User: j.User, Team: j.Team, Scope: cmd.Scope, Name: cmd.Name,
			ReadOnly: cmd.ReadOnly, Reason: cmd.Reason, ExpiresIn: cmd.ExpiresIn, Key: j.Trigger}
		return "Breaking glass…", func(ctx context.Context) { s.breakglass(ctx, o, sub) }
	case "list":
		return "Listing the API credentials…", func(ctx context.Context) { s.list(ctx, o, cmd.Scope, 0) }
	case "get":
		return "Looking it up…", func(ctx context.Context) { s.get(ctx, o, cmd.Scope, cmd.Name) }
	case "delete":
		return "Looking it up…", func(ctx context.Context) { s.confirmDelete(ctx, o, cmd.Scope, cmd.Name) }
	case "adopt":
		// The trigger id makes it idempotent, as for create.
		in := approval.Adoption{Admin: j.User, Scope: cmd.Scope, Name: cmd.Name, Owner: cmd.Owner, ExpiresIn: cmd.ExpiresIn, Key: j.Trigger}
		return "Looking it up at BTP…", func(ctx context.Context) { s.adopt(ctx, o, in) }
	case "rotate":
		// The trigger id makes the rotation idempotent, like a create.
		in := approval.Rotation{User: j.User, Team: j.Team, Scope: cmd.Scope, Name: cmd.Name, Key: j.Trigger}
		return "Rotating…", func(ctx context.Context) { s.rotate(ctx, o, in) }
	case "extend":
		id, by := cmd.Args[0], cmd.By
		return "Extending…", func(ctx context.Context) { s.extend(ctx, o, id, by) }
	case "status":
		if len(cmd.Args) == 0 {
			return "Looking up your requests…", func(ctx context.Context) { s.myRequests(ctx, o) }
		}
		return "Looking it up…", func(ctx context.Context) { s.status(ctx, o, cmd.Args[0]) }
	case "cancel":
		return "Cancelling…", func(ctx context.Context) { s.cancelRequest(ctx, o, cmd.Args[0]) }
	case "why":
		return "Looking it up…", func(ctx context.Context) { s.why(ctx, o, cmd.Args[0]) }
	case "approvers":
		return "Looking it up…", func(ctx context.Context) { s.listApprovers(ctx, o, cmd.Scope) }
	case "assign":
		if cmd.Modal {
			return "", nil
		}
		// The trigger id makes it idempotent, as for create.
		in := approval.AssignmentSubmission{User: j.User, Team: j.Team, Scope: cmd.Scope, RoleCollection: cmd.RoleCollection,
			For: cmd.For, Reason: cmd.Reason, Key: j.Trigger}
		return "Submitting your request…", func(ctx context.Context) { s.assign(ctx, o, in) }
	case "assignments":
		return "Looking up assignments…", func(ctx context.Context) { s.assignments(ctx, o, cmd.All) }
	case "unassign":
		return "Ending it…", func(ctx context.Context) { s.unassign(ctx, o, cmd.Args[0]) }
	}
	return "", nil
}

// HandleInteraction answers a button click or a modal submission. The clicker
// is always cb.User.ID, as Slack vouches for it; button values only name what
// to look up.
func (s *Server) HandleInteraction(ctx context.Context, cb slack.InteractionCallback) any {
	if !blockkit.UserID.MatchString(cb.User.ID) {
		return nil
	}
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) > 0 {
			return s.blockAction(ctx, cb, cb.ActionCallback.BlockActions[0])
		}
	case slack.InteractionTypeViewSubmission:
		switch cb.View.CallbackID {
		case blockkit.CallbackCreate:
			return s.submitCreateModal(ctx, cb)
		case CallbackAssign:
			return s.submitAssignModal(ctx, cb)
		case blockkit.CallbackDeny:
			return s.submitDenyForm(ctx, cb)
		}
	}
	return nil
}

// HandleEvent handles an Events API event. Its ack is empty, or an
// unrecordedAck when the work it asks for could not be recorded.
func (s *Server) HandleEvent(ctx context.Context, ev slackevents.EventsAPIEvent) any {
	if ev.Type != slackevents.CallbackEvent {
		return nil
	}
	key := ""
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok {
		key = cb.EventID
	}
	switch e := ev.InnerEvent.Data.(type) {
	case *slackevents.AppHomeOpenedEvent:
		if e.Tab != "home" || !blockkit.UserID.MatchString(e.User) {
			return nil
		}
		return s.accept(ctx, key, job{Kind: jobHome, User: e.User}, nil)
	}
	return nil
}

// blockAction records a click for a worker; the clicker is cb.User.ID, as
// Slack vouches for it.
func (s *Server) blockAction(ctx context.Context, cb slack.InteractionCallback, act *slack.BlockAction) any {
	j := job{Kind: jobAction, User: cb.User.ID, Team: cb.Team.ID, Trigger: cb.TriggerID, Action: act.ActionID, Value: act.Value, ResponseURL: cb.ResponseURL,
		FromHome: cb.View.Type == slack.VTHomeTab || cb.Container.Type == "view"}
	if j.FromHome {
		j.ResponseURL = "" // there is none on the Home tab; answer in the DM
	}
	if j.Action == blockkit.ActionDeny && s.cfg.API != nil && requestIDRE.MatchString(j.Value) {
		return s.openDenyForm(ctx, cb, j.Value, j.FromHome) // the denial comes with the form
	}
	if s.actionWork(j) == nil {
		return nil
	}
	return s.accept(ctx, cb.TriggerID, j, nil)
}

// actionWork is what a recorded click does, or nil for a click that asks for
// nothing valid. Button values only name what to look up.
func (s *Server) actionWork(j job) func(ctx context.Context) {
	user := j.User
	o := origin{user: user, responseURL: j.ResponseURL}
	switch j.Action {
	case blockkit.ActionApprove, blockkit.ActionDeny:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		id, approve, reason := j.Value, j.Action == blockkit.ActionApprove, j.Reason
		return func(ctx context.Context) {
			var out approval.Outcome
			var err error
			if approve {
				out, err = s.life.Decide(ctx, id, user, true)
			} else {
				out, err = s.life.Deny(ctx, id, user, reason)
			}
			if err != nil {
				s.warn(ctx, o, err, "decide")
				return
			}
			msg := out.Message
			if out.Request != nil && out.Request.State == approval.StateApproved {
				msg += s.btpNote()
			}
			s.reply(ctx, o, msg)
		}
	case blockkit.ActionAcknowledge, blockkit.ActionRevokeNow:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		id, revoke := j.Value, j.Action == blockkit.ActionRevokeNow
		return func(ctx context.Context) {
			out, err := s.life.Review(ctx, id, user, revoke)
			if err != nil {
				s.warn(ctx, o, err, "review")
				return
			}
			s.reply(ctx, o, out.Message)
		}
	case blockkit.ActionCancel:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		id := j.Value
		return func(ctx context.Context) { s.cancelRequest(ctx, o, id) }
	case blockkit.ActionDeleteOwn:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		id := j.Value
		return func(ctx context.Context) {
			r, err := s.life.DeleteOwn(ctx, id, user)
			if err != nil {
				s.warn(ctx, o, err, "delete own")
				return
			}
			s.reply(ctx, o, fmt.Sprintf("*%s* in %s was deleted at BTP.", blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope))))
		}
	case blockkit.ActionExtendApprove, blockkit.ActionExtendDeny:
		id, v, _ := strings.Cut(j.Value, "|")
		asked, err := strconv.ParseInt(v, 10, 64)
		if !requestIDRE.MatchString(id) || err != nil {
			return nil
		}
		approve := j.Action == blockkit.ActionExtendApprove
		return func(ctx context.Context) {
			out, err := s.life.DecideExtension(ctx, id, user, asked, approve)
			if err != nil {
				s.warn(ctx, o, err, "decide extension")
				return
			}
			s.reply(ctx, o, blockkit.Escape(out.Message))
		}
	case blockkit.ActionRotate:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		// A click's trigger id is the key: the same click, replayed, rotates once.
		in := approval.Rotation{User: user, Team: j.Team, ID: j.Value, Key: j.Trigger}
		return func(ctx context.Context) { s.rotate(ctx, o, in) }
	case blockkit.ActionExtend:
		id, v, ok := strings.Cut(j.Value, "|")
		by, err := ParseLifetime(v)
		if !ok || err != nil || !requestIDRE.MatchString(id) {
			return nil
		}
		return func(ctx context.Context) { s.extend(ctx, o, id, by) }
	case blockkit.ActionRetireOld:
		if !requestIDRE.MatchString(j.Value) {
			return nil
		}
		id := j.Value
		return func(ctx context.Context) {
			r, err := s.life.RetireOld(ctx, id, user)
			if err != nil {
				s.warn(ctx, o, err, "retire old")
				return
			}
			s.reply(ctx, o, fmt.Sprintf("The old credential was deleted at BTP; *%s* replaces it.", blockkit.Escape(r.Name)))
		}
	case blockkit.ActionReveal:
		if !requestIDRE.MatchString(j.Value) || !s.trustedResponseURL(o.responseURL) {
			// The secret goes only to the ephemeral reply of this click, on
			// Slack's host: checked before the secret is taken, not after.
			return nil
		}
		id := j.Value
		return func(ctx context.Context) { s.reveal(ctx, o, id) }
	case blockkit.ActionDelete:
		scope, name, ok := strings.Cut(j.Value, "|")
		sc, err := approval.ParseScope(scope)
		if !ok || err != nil || approval.ValidateName(name) != nil {
			return nil
		}
		return func(ctx context.Context) { s.delete(ctx, o, sc, name) }
	case blockkit.ActionMore:
		scope, off, ok := strings.Cut(j.Value, "|")
		sc, err := approval.ParseScope(scope)
		offset, perr := strconv.Atoi(off)
		if !ok || err != nil || perr != nil || offset < 0 || offset > 100_000 {
			return nil
		}
		return func(ctx context.Context) { s.list(ctx, o, sc, offset) }
	case blockkit.ActionHome:
		if j.FromHome {
			return func(context.Context) {}
		}
	case blockkit.ActionHomePage:
		offset, err := strconv.Atoi(j.Value)
		if !j.FromHome || err != nil || offset < 0 || offset > maxHomeOffset {
			return nil
		}
		return func(ctx context.Context) { s.publishHomePage(ctx, user, offset) }
	}
	return nil
}

func (s *Server) submit(ctx context.Context, o origin, sub approval.Submission) {
	req, err := s.life.Submit(ctx, sub)
	if err != nil {
		s.warn(ctx, o, err, "submit")
		return
	}
	s.reply(ctx, o, fmt.Sprintf("Request `%s` for *%s* in %s (%s) is waiting for approval. You will get a DM when it is decided.",
		req.ID, blockkit.Escape(req.Name), blockkit.Escape(blockkit.ScopeLabel(req.Scope)), blockkit.AccessLabel(req.ReadOnly))+s.btpNote())
}

func (s *Server) breakglass(ctx context.Context, o origin, sub approval.Submission) {
	req, err := s.life.Breakglass(ctx, sub)
	if err != nil {
		s.warn(ctx, o, err, "breakglass")
		return
	}
	s.reply(ctx, o, fmt.Sprintf(":rotating_light: Break-glass `%s`: *%s* in %s (%s) is being created now, without approval. "+
		"You will get a DM with a one-time Reveal button. Security has been alerted and will review it; it lives at most %s.",
		req.ID, blockkit.Escape(req.Name), blockkit.Escape(blockkit.ScopeLabel(req.Scope)), blockkit.AccessLabel(req.ReadOnly), blockkit.Lifetime(req.Lifetime))+s.btpNote())
}

func (s *Server) rotate(ctx context.Context, o origin, in approval.Rotation) {
	r, err := s.life.Rotate(ctx, in)
	if err != nil {
		s.warn(ctx, o, err, "rotate")
		return
	}
	var msg string
	switch r.State {
	case approval.StatePending:
		msg = fmt.Sprintf("Rotation `%s`: *%s* in %s will replace the old credential once approved. You will get a DM when it is decided.",
			r.ID, blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)))
	default:
		msg = fmt.Sprintf("Rotation `%s`: credbot is creating *%s* in %s (no approval needed). You will get a DM with a Reveal button; "+
			"the old credential is deleted %s after you reveal the new one, or when you retire it.",
			r.ID, blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), blockkit.Lifetime(s.cfg.RotationGrace))
	}
	s.reply(ctx, o, msg+s.btpNote())
}

func (s *Server) extend(ctx context.Context, o origin, id string, by time.Duration) {
	out, err := s.life.Extend(ctx, id, o.user, by)
	if err != nil {
		s.warn(ctx, o, err, "extend")
		return
	}
	s.reply(ctx, o, blockkit.Escape(out.Message))
}

func (s *Server) reveal(ctx context.Context, o origin, id string) {
	rv, err := s.life.Reveal(ctx, id, o.user)
	if err != nil {
		s.warn(ctx, o, err, "reveal")
		return
	}
	for i, blocks := range blockkit.RevealMessages(rv) {
		err = s.post(ctx, o.responseURL, &slack.WebhookMessage{
			ResponseType: slack.ResponseTypeEphemeral, Text: fmt.Sprintf("Your one-time secret (shown once, part %d)", i+1),
			Blocks: &slack.Blocks{BlockSet: blocks},
		})
		if err != nil {
			break
		}
	}
	if err != nil {
		// The secret is gone from our store and was not (fully) shown: revoke it.
		s.log.ErrorContext(ctx, "deliver revealed secret", "request_id", id, "error", err)
		if err := s.life.Undeliverable(ctx, id, err); err != nil {
			s.log.ErrorContext(ctx, "revoke undeliverable secret", "request_id", id, "error", err)
		}
	}
}

// btpNote tells a requester or approver that BTP cannot be reached right now:
// the request is queued, not lost, and not refused.
func (s *Server) btpNote() string {
	if s.cfg.BTPDown == nil {
		return ""
	}
	if err := s.cfg.BTPDown(); err != nil {
		return "\n:hourglass: Queued: BTP is unreachable right now (" + blockkit.Escape(err.Error()) + "). credbot creates the credential as soon as BTP answers again."
	}
	return ""
}

// involved reports whether user may see a request's details: its requester,
// someone who approved it, or someone the policy lets approve it.
func (s *Server) involved(ctx context.Context, user string, r *approval.Request) bool {
	if user == r.Requester || user == r.DecidedBy || slices.ContainsFunc(r.Approvals, func(a approval.Approval) bool { return a.User == user }) {
		return true
	}
	if s.cfg.Policy == nil {
		return false
	}
	act := approval.ActionApprove
	if r.Breakglass {
		// A break-glass has no approvers: its reviewers look after it.
		if user == r.AckedBy {
			return true
		}
		act = approval.ActionReview
	}
	d, err := s.cfg.Policy.Authorize(ctx, user, act, r.Scope, r.Requester)
	return err == nil && d.Allowed
}

var errNotInvolved = &approval.UserError{Msg: "you can only look at requests you made or may approve", Err: approval.ErrForbidden}

func (s *Server) status(ctx context.Context, o origin, id string) {
	r, err := s.life.Status(ctx, id)
	if err == nil && !s.involved(ctx, o.user, r) {
		err = errNotInvolved
	}
	if err != nil {
		s.warn(ctx, o, err, "status")
		return
	}
	var q approval.QuorumStatus // unknown (Need 0) unless the policy says
	if r.State == approval.StatePending && s.cfg.Policy != nil {
		if got, err := s.cfg.Policy.Quorum(ctx, r.Scope, approvalUsers(r)); err == nil {
			q = got
		}
	}
	s.reply(ctx, o, blockkit.ApprovalFallback(r), requestBlocks(r, q)...)
}

func (s *Server) myRequests(ctx context.Context, o origin) {
	mine, awaiting, err := s.life.Requests(ctx, o.user)
	if err != nil {
		s.warn(ctx, o, err, "requests")
		return
	}
	blocks := []slack.Block{blockkit.Section(fmt.Sprintf("*Your requests* (%d)", len(mine)))}
	if len(mine) == 0 {
		blocks = append(blocks, blockkit.Section("You have no requests. `/credbot create` asks for a credential."))
	}
	for i, r := range mine {
		if len(blocks) >= blockkit.MaxMessageBlocks-2 {
			blocks = append(blocks, blockkit.Note(fmt.Sprintf("and %d older requests", len(mine)-i)))
			break
		}
		blocks = append(blocks, requestSection(r, blockkit.ActionCancel))
	}
	if len(awaiting) > 0 {
		blocks = append(blocks, blockkit.Note(fmt.Sprintf("%d request(s) are waiting for your approval: see credbot's Home tab.", len(awaiting))))
	}
	s.reply(ctx, o, fmt.Sprintf("Your requests (%d)", len(mine)), blocks...)
}

func (s *Server) cancelRequest(ctx context.Context, o origin, id string) {
	r, err := s.life.Cancel(ctx, id, o.user)
	if err != nil {
		s.warn(ctx, o, err, "cancel")
		return
	}
	s.reply(ctx, o, fmt.Sprintf("Request `%s` for *%s* is cancelled.", r.ID, blockkit.Escape(r.Name)))
}

// requestSection is one request with, while it is pending, a button.
func requestSection(r *approval.Request, actionID string) *slack.SectionBlock {
	sec := blockkit.Section(blockkit.RequestLine(r))
	if r.State == approval.StatePending && actionID != "" {
		label := map[string]string{blockkit.ActionCancel: "Cancel", blockkit.ActionApprove: "Approve"}[actionID]
		b := blockkit.Button(actionID, r.ID, label)
		if actionID == blockkit.ActionCancel {
			b = b.WithConfirm(blockkit.Confirm("Cancel this request?", "Request "+r.ID+" for "+r.Name+" will be withdrawn.", "Cancel it", "Keep it", false))
		}
		sec.Accessory = slack.NewAccessory(b)
	}
	return sec
}

// requestBlocks renders one request in full, for status.
func requestBlocks(r *approval.Request, q approval.QuorumStatus) []slack.Block {
	fields := []*slack.TextBlockObject{
		blockkit.Plain("Scope: " + blockkit.ScopeLabel(r.Scope)),
		blockkit.Plain("Name: " + r.Name),
		blockkit.Plain("Access: " + blockkit.AccessLabel(r.ReadOnly)),
		blockkit.Plain("Requested: " + blockkit.When(r.CreatedAt)),
		blockkit.Plain("Reason: " + r.Reason),
	}
	if r.Lifetime > 0 {
		fields = append(fields, blockkit.Plain("Lifetime: "+blockkit.Lifetime(r.Lifetime)))
	}
	if !r.ExpiresAt.IsZero() {
		fields = append(fields, blockkit.Plain("Expires: "+blockkit.When(r.ExpiresAt)))
	}
	blocks := []slack.Block{
		blockkit.Section(fmt.Sprintf("*Request* `%s` from <@%s>", r.ID, r.Requester)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if c := r.CertificateInfo; c != nil {
		blocks = append(blocks, slack.NewSectionBlock(blockkit.Plain(blockkit.CertificateFacts(*c)), nil, nil))
	}
	blocks = append(blocks, blockkit.Note(blockkit.StatusLine(r, q)))
	if r.State == approval.StateDenied && r.DenyReason != "" {
		blocks = append(blocks, blockkit.DenyReasonBlock(r))
	}
	return blocks
}

func (s *Server) why(ctx context.Context, o origin, id string) {
	if s.cfg.Policy == nil {
		s.reply(ctx, o, ":warning: explanations are not available here")
		return
	}
	r, err := s.life.Status(ctx, id)
	if err == nil && !s.involved(ctx, o.user, r) {
		err = errNotInvolved
	}
	if err != nil {
		s.warn(ctx, o, err, "why")
		return
	}
	p := s.cfg.Policy
	act := r.Action // a rotation is decided by rotate, with its own quorum
	if act == "" {
		act = approval.ActionCreate
	}
	quorum := p.Quorum
	if aq, ok := p.(approval.ActionQuorum); ok {
		quorum = func(ctx context.Context, scope approval.Scope, approvers []string) (approval.QuorumStatus, error) {
			return aq.QuorumFor(ctx, act, scope, approvers)
		}
	}
	var parts []string
	asked, who := act, "*Who may request here* — <@"+r.Requester+">'s request"
	if r.Breakglass {
		asked, who = approval.ActionBreakglass, "*Who may break glass here* — <@"+r.Requester+">'s break-glass"
	}
	if x, err := p.Explain(ctx, r.Requester, asked, r.Scope, ""); err == nil {
		parts = append(parts, who+":\n```"+blockkit.Escape(x.String())+"```")
	} else {
		s.log.WarnContext(ctx, "explain", "request_id", id, "error", err)
	}
	if r.State != approval.StatePending {
		// Decided or ended: what happened first, not a quorum that no longer matters.
		parts = append([]string{whyOutcome(r)}, parts...)
	} else if q, err := quorum(ctx, r.Scope, approvalUsers(r)); err == nil {
		line := fmt.Sprintf("*Approval* — %s approval(s) under %s", blockkit.Progress(q, len(r.Approvals)), blockkit.Escape(q.Rule))
		if len(q.Waiting) > 0 {
			line += "; still needs " + blockkit.Escape(strings.Join(q.Waiting, " and "))
		}
		for _, u := range q.Uncounted {
			line += "\n• " + blockkit.UncountedLine(u)
		}
		parts = append(parts, line)
	}
	if r.Breakglass {
		if rs, ok := p.(slackapi.ReviewerSource); ok {
			if names, err := rs.Reviewers(ctx, r.Scope); err == nil {
				parts = append(parts, "*Who may review here*: "+s.subjects(ctx, names))
			}
		}
	} else if names, err := p.Approvers(ctx, r.Scope); err == nil {
		parts = append(parts, "*Who may approve here*: "+s.subjects(ctx, names))
	}
	if r.ApprovalChannel != "" {
		line := "*Posted in* <#" + r.ApprovalChannel + ">"
		if rp, ok := p.(slackapi.ApprovalRouter); ok {
			if rt := rp.ApprovalRoute(r.Scope); rt.Channel != "" {
				line += " (routes.yaml now sends this scope's requests to <#" + rt.Channel + ">, by route " + blockkit.Escape(rt.Rule) + ")"
			}
		}
		if n := len(r.ApprovalDMs); n > 0 {
			line += fmt.Sprintf(", and sent to %d approver(s) by DM", n)
		}
		parts = append(parts, line)
	}
	if o.user != r.Requester {
		act := approval.ActionApprove
		if r.Breakglass {
			act = approval.ActionReview
		}
		if x, err := p.Explain(ctx, o.user, act, r.Scope, r.Requester); err == nil {
			parts = append(parts, "*You*:\n```"+blockkit.Escape(x.String())+"```")
		}
	}
	blocks := []slack.Block{blockkit.Section(fmt.Sprintf("*Why* `%s` (%s in %s) is %s", r.ID, blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), strings.ToLower(string(r.State))))}
	for i, part := range parts {
		for _, c := range blockkit.Chunks(part, blockkit.MaxSectionText-200) {
			if len(blocks) < blockkit.MaxMessageBlocks {
				blocks = append(blocks, blockkit.Section(c))
			}
		}
		if i == 0 && r.State == approval.StateDenied && r.DenyReason != "" {
			blocks = append(blocks, blockkit.DenyReasonBlock(r)) // user text: plain_text, inert
		}
	}
	s.reply(ctx, o, "Why "+r.ID, blocks...)
}

func (s *Server) listApprovers(ctx context.Context, o origin, scope approval.Scope) {
	if s.cfg.Policy == nil {
		s.reply(ctx, o, ":warning: approver lists are not available here")
		return
	}
	// Who approves where tells an attacker whom to phish or impersonate:
	// answer only those who may request or look up credentials here.
	may, err := s.mayAskApprovers(ctx, o.user, scope)
	if err != nil {
		s.warn(ctx, o, err, "approvers")
		return
	}
	if !may {
		s.reply(ctx, o, ":warning: you can see who approves in "+blockkit.Escape(blockkit.ScopeLabel(scope))+" only if you may request or look up credentials there")
		return
	}
	names, err := s.cfg.Policy.Approvers(ctx, scope)
	if err != nil {
		s.warn(ctx, o, err, "approvers")
		return
	}
	text := fmt.Sprintf("*Approvers in %s*: ", blockkit.Escape(blockkit.ScopeLabel(scope)))
	if len(names) == 0 {
		text += "nobody — no request here can be approved."
	} else {
		text += s.subjects(ctx, names)
	}
	if q, err := s.cfg.Policy.Quorum(ctx, scope, nil); err == nil {
		text += fmt.Sprintf("\nA request here needs %d approval(s)", max(q.Need, 1))
		if len(q.Waiting) > 0 {
			text += ": " + blockkit.Escape(strings.Join(q.Waiting, " and "))
		}
		text += "."
	}
	s.reply(ctx, o, "Approvers in "+blockkit.ScopeLabel(scope), blockkit.Section(text))
}

// mayAskApprovers reports whether user may create or get in scope, the
// people an approver list is for.
func (s *Server) mayAskApprovers(ctx context.Context, user string, scope approval.Scope) (bool, error) {
	for _, act := range []approval.Action{approval.ActionCreate, approval.ActionGet} {
		d, err := s.cfg.Policy.Authorize(ctx, user, act, scope, "")
		if err != nil {
			return false, err
		}
		if d.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// subjects renders policy subjects for an ephemeral answer (where a mention
// notifies nobody).
func (s *Server) subjects(ctx context.Context, names []string) string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		switch {
		case s.cfg.Directory != nil:
			out = append(out, s.cfg.Directory.Mention(ctx, n))
		case slackapi.IsSlackID(n, 'U') || slackapi.IsSlackID(n, 'W'):
			out = append(out, "<@"+n+">")
		default:
			out = append(out, blockkit.Escape(n))
		}
	}
	return strings.Join(out, ", ")
}

func approvalUsers(r *approval.Request) []string {
	out := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		out = append(out, a.User)
	}
	return out
}
