package handlers

import (
	"context"
	"fmt"

	"github.com/credbot/credbot/internal/approval"
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
		req.ID, escape(req.Assignment.RoleCollection), escape(scopeLabel(req.Scope)), escape(in.BTPUser.Name), escape(origin), lifetime(req.Lifetime))+s.btpNote())
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
	blocks := []slack.Block{section(fmt.Sprintf("*%s* (%d)", title, len(reqs)))}
	if len(reqs) == 0 {
		blocks = append(blocks, section("None waiting or active. `/credbot assign` asks for one."))
	}
	for i, r := range reqs {
		if len(blocks) >= maxMessageBlocks-2 {
			blocks = append(blocks, note(fmt.Sprintf("and %d more", len(reqs)-i)))
			break
		}
		line := requestLine(r)
		if r.Requester != o.user {
			line += " — for " + mention(r.Requester)
		}
		if r.State == approval.StateAssigned && !r.Revoking {
			line += fmt.Sprintf("\nEnd it now: `/credbot unassign %s`", r.ID)
		}
		blocks = append(blocks, section(line))
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
		r.ID, escape(r.Assignment.RoleCollection), escape(scopeLabel(r.Scope)), escape(r.Assignment.User.Name))
	if r.Assignment.PreExisting {
		msg = fmt.Sprintf("Assignment `%s` ended. Role collection *%s* stays: it was assigned outside credbot, and credbot never removes access it did not grant.",
			r.ID, escape(r.Assignment.RoleCollection))
	}
	s.reply(ctx, o, msg)
}
