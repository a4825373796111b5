package handlers

import (
	"context"
	"fmt"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// Assigner is what /credbot assign, assignments and unassign need from the
// approval service (just-in-time role collections). Implemented by
// *approval.Service; a Lifecycle without it answers that the feature is off.
type Assigner interface {
	SubmitAssignment(ctx context.Context, in approval.AssignmentSubmission) (*approval.Request, error)
	Assignments(ctx context.Context, user string, all bool) ([]*approval.Request, error)
	EndAssignment(ctx context.Context, id, user string) (*approval.Request, error)
}

var errNoAssign = &approval.UserError{Msg: "just-in-time role collections are not available in this credbot", Err: approval.ErrInvalid}

func (s *Server) assigner() (Assigner, bool) {
	a, ok := s.life.(Assigner)
	return a, ok
}

// assign submits a role collection request for the requester's own BTP user:
// their Slack profile e-mail under the configured origin. Nobody can name
// anyone else: the command has no such flag, and the e-mail comes from
// Slack's users.info for the user Slack vouched for.
func (s *Server) assign(ctx context.Context, o origin, in approval.AssignmentSubmission) {
	a, ok := s.assigner()
	if !ok {
		s.warn(ctx, o, errNoAssign, "assign")
		return
	}
	if s.cfg.Directory == nil {
		s.warn(ctx, o, &approval.UserError{Msg: "credbot cannot read Slack profiles here, so it cannot tell your BTP user", Err: approval.ErrInvalid}, "assign")
		return
	}
	p, err := s.cfg.Directory.Profile(ctx, o.user)
	if err != nil {
		s.warn(ctx, o, err, "assign")
		return
	}
	if p.Email == "" {
		s.warn(ctx, o, &approval.UserError{Msg: "your Slack profile has no e-mail credbot can read, and your BTP user is your e-mail: " +
			"ask a Slack admin to show e-mails to apps (credbot needs the users:read.email scope)", Err: approval.ErrInvalid}, "assign")
		return
	}
	origin := s.cfg.UserOrigin
	if origin == "" {
		origin = approval.DefaultUserOrigin
	}
	in.BTPUser = approval.BTPUser{Origin: origin, Name: p.Email}
	req, err := a.SubmitAssignment(ctx, in)
	if err != nil {
		s.warn(ctx, o, err, "assign")
		return
	}
	s.reply(ctx, o, fmt.Sprintf("Request `%s` for role collection *%s* in %s, for your BTP user %s (origin %s), for %s, is waiting for approval. You will get a DM when it is decided.",
		req.ID, blockkit.Escape(req.Assignment.RoleCollection), blockkit.Escape(blockkit.ScopeLabel(req.Scope)), blockkit.Escape(in.BTPUser.Name), blockkit.Escape(origin), blockkit.Lifetime(req.Lifetime))+s.btpNote())
}

// assignments lists the user's role collection requests that are waiting or
// active; with all, every one in the scopes where the user is an admin
// (delete), plus their own.
func (s *Server) assignments(ctx context.Context, o origin, all bool) {
	a, ok := s.assigner()
	if !ok {
		s.warn(ctx, o, errNoAssign, "assignments")
		return
	}
	reqs, err := a.Assignments(ctx, o.user, all)
	if err != nil {
		s.warn(ctx, o, err, "assignments")
		return
	}
	title := "Your role collections"
	if all {
		title = "Role collections credbot tracks (the scopes you administer, and yours)"
		shown := reqs[:0]
		for _, r := range reqs {
			if r.Requester == o.user || s.mayAdminister(ctx, o.user, r.Scope) {
				shown = append(shown, r)
			}
		}
		reqs = shown
	}
	blocks := []slack.Block{blockkit.Section(fmt.Sprintf("*%s* (%d)", title, len(reqs)))}
	if len(reqs) == 0 {
		blocks = append(blocks, blockkit.Section("None waiting or active. `/credbot assign` asks for one."))
	}
	for i, r := range reqs {
		if len(blocks) >= blockkit.MaxMessageBlocks-2 {
			blocks = append(blocks, blockkit.Note(fmt.Sprintf("and %d more", len(reqs)-i)))
			break
		}
		line := blockkit.RequestLine(r)
		if r.Requester != o.user {
			line += " — for " + blockkit.Mention(r.Requester)
		}
		if r.State == approval.StateAssigned && !r.Revoking {
			line += fmt.Sprintf("\nEnd it now: `/credbot unassign %s`", r.ID)
		}
		blocks = append(blocks, blockkit.Section(line))
	}
	s.reply(ctx, o, fmt.Sprintf("%s (%d)", title, len(reqs)), blocks...)
}

func (s *Server) mayAdminister(ctx context.Context, user string, scope approval.Scope) bool {
	if s.cfg.Policy == nil {
		return false
	}
	d, err := s.cfg.Policy.Authorize(ctx, user, approval.ActionDelete, scope, "")
	return err == nil && d.Allowed
}

// unassign ends an assignment now: its requester's, or anyone's for an admin
// of its scope (the service checks).
func (s *Server) unassign(ctx context.Context, o origin, id string) {
	a, ok := s.assigner()
	if !ok {
		s.warn(ctx, o, errNoAssign, "unassign")
		return
	}
	r, err := a.EndAssignment(ctx, id, o.user)
	if err != nil {
		s.warn(ctx, o, err, "unassign")
		return
	}
	msg := fmt.Sprintf("Assignment `%s` ended: role collection *%s* in %s was unassigned from %s, and BTP confirms it.",
		r.ID, blockkit.Escape(r.Assignment.RoleCollection), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), blockkit.Escape(r.Assignment.User.Name))
	if r.Assignment.PreExisting {
		msg = fmt.Sprintf("Assignment `%s` ended. Role collection *%s* stays: it was assigned outside credbot, and credbot never removes access it did not grant.",
			r.ID, blockkit.Escape(r.Assignment.RoleCollection))
	}
	s.reply(ctx, o, msg)
}

// Input block ids of the assign modal (scope kind and id, reason as in the
// create modal).
const (
	blockRoleCollection = "role_collection"
	blockFor            = "for"
)

// CallbackAssign is the assign modal's callback id.
const CallbackAssign = "credbot_assign"

// assignModal is the form behind a bare "/credbot assign": the same fields as
// the flags, validated by the same rules.
func assignModal() slack.ModalViewRequest {
	opt := func(v, text string) *slack.OptionBlockObject {
		return slack.NewOptionBlockObject(v, blockkit.Plain(text), nil)
	}
	kinds := []*slack.OptionBlockObject{
		opt(string(approval.ScopeSubaccount), "Subaccount"),
		opt(string(approval.ScopeDirectory), "Directory"),
		opt(string(approval.ScopeGlobalAccount), "Global account"),
	}
	kind := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, blockkit.Plain("Choose a level"), inputAction, kinds...)
	kind.InitialOption = kinds[0]
	text := func(placeholder string, maxLen int) *slack.PlainTextInputBlockElement {
		return slack.NewPlainTextInputBlockElement(blockkit.Plain(placeholder), inputAction).WithMaxLength(maxLen)
	}
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: CallbackAssign,
		Title:      blockkit.Plain("Request role collection"),
		Submit:     blockkit.Plain("Submit"),
		Close:      blockkit.Plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			blockkit.Section("Ask for a SAP BTP role collection for your own BTP user (your Slack profile e-mail), for a while. The approvers the policy names for the scope decide; credbot assigns it, DMs you, and takes it away at the end."),
			input(blockScopeKind, "Level", "", kind),
			input(blockScopeID, "Subaccount or directory GUID, or global account subdomain", "", text("11111111-2222-4333-8444-555555555555", 64)),
			input(blockRoleCollection, "Role collection", "Exactly as BTP shows it, e.g. Subaccount Viewer.", text("Subaccount Viewer", 128)),
			input(blockFor, "For how long", "e.g. 4h, 90m or 45s.", text("4h", 16)),
			input(blockReason, "Reason", "Shown to the approvers.", text("Why do you need it?", maxReason).WithMultiline(true)),
		}},
	}
}

// parseAssignForm reads the assign modal's state; errors are keyed by input
// block id.
func parseAssignForm(values map[string]map[string]slack.BlockAction) (approval.AssignmentSubmission, map[string]string) {
	get := func(block string) slack.BlockAction { return values[block][inputAction] }
	errs := map[string]string{}
	var in approval.AssignmentSubmission
	kind := approval.ScopeKind(get(blockScopeKind).SelectedOption.Value)
	in.Scope = approval.Scope{Kind: kind, ID: strings.TrimSpace(get(blockScopeID).Value)}
	switch kind {
	case approval.ScopeSubaccount, approval.ScopeDirectory, approval.ScopeGlobalAccount:
		if err := in.Scope.Validate(); err != nil {
			errs[blockScopeID] = userText(err)
		}
	default:
		errs[blockScopeKind] = "Choose subaccount, directory or global account."
	}
	in.RoleCollection = strings.TrimSpace(get(blockRoleCollection).Value)
	if err := approval.ValidateRoleCollection(in.RoleCollection); err != nil {
		errs[blockRoleCollection] = userText(err)
	}
	d, err := ParseLifetime(get(blockFor).Value)
	if err != nil {
		errs[blockFor] = err.Error()
	}
	in.For = d
	in.Reason = strings.TrimSpace(get(blockReason).Value)
	switch {
	case in.Reason == "":
		errs[blockReason] = "Say why you need it; the approvers read this."
	case len(in.Reason) > maxReason:
		errs[blockReason] = "Keep it under 500 characters."
	case strings.ContainsFunc(in.Reason, func(r rune) bool { return r < ' ' && r != '\n' && r != '\t' }):
		errs[blockReason] = "Control characters are not allowed."
	}
	return in, errs
}

func (s *Server) openAssignModal(ctx context.Context, trigger string) any {
	return s.openModal(ctx, trigger, "assign", assignModal())
}

// submitAssignModal validates the form; a valid one is recorded and submitted
// after the ack exactly as the slash command would.
func (s *Server) submitAssignModal(ctx context.Context, cb slack.InteractionCallback) any {
	var values map[string]map[string]slack.BlockAction
	if cb.View.State != nil {
		values = cb.View.State.Values
	}
	in, errs := parseAssignForm(values)
	if len(errs) > 0 {
		return slack.NewErrorsViewSubmissionResponse(errs)
	}
	in.User, in.Team = submitter(cb)
	in.Key = cb.View.ID // idempotent if its job runs twice
	return s.acceptForm(ctx, cb, job{Kind: jobModal, User: cb.User.ID, Assignment: &in})
}
