package handlers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// listPage is how many credentials one list message shows: one block each,
// plus a header, a footer and the More button, within Slack's 50 blocks.
const listPage = 40

func (s *Server) list(ctx context.Context, o origin, scope approval.Scope, offset int) {
	views, err := s.life.ListCredentials(ctx, o.user, scope)
	if err != nil {
		s.warn(ctx, o, err, "list")
		return
	}
	// BTP's order is not promised: sort, so that pages do not overlap.
	slices.SortFunc(views, func(a, b approval.CredentialView) int { return strings.Compare(a.Credential.Name, b.Credential.Name) })
	blocks := listBlocks(scope, views, offset)
	s.reply(ctx, o, fmt.Sprintf("API credentials in %s (%d)", blockkit.ScopeLabel(scope), len(views)), blocks...)
}

// listBlocks renders one page of a scope's credentials, with a More button
// when there are more.
func listBlocks(scope approval.Scope, views []approval.CredentialView, offset int) []slack.Block {
	offset = min(offset, len(views))
	end := min(offset+listPage, len(views))
	head := fmt.Sprintf("*API credentials in %s* (%d)", blockkit.Escape(blockkit.ScopeLabel(scope)), len(views))
	if offset > 0 || end < len(views) {
		head += fmt.Sprintf(", showing %d–%d", offset+1, end)
	}
	blocks := []slack.Block{blockkit.Section(head)}
	if len(views) == 0 {
		blocks = append(blocks, blockkit.Section("There are none."))
	}
	for _, v := range views[offset:end] {
		blocks = append(blocks, credentialSection(v))
	}
	if end < len(views) {
		blocks = append(blocks, slack.NewActionBlock("more:"+strconv.Itoa(end),
			blockkit.Button(blockkit.ActionMore, scope.String()+"|"+strconv.Itoa(end), fmt.Sprintf("More (%d left)", len(views)-end))))
	}
	return blocks
}

// credentialSection is one credential as a section of plain_text fields: the
// name at BTP may have been typed by anyone, so nothing of it is mrkdwn.
func credentialSection(v approval.CredentialView) *slack.SectionBlock {
	c := v.Credential
	fields := []*slack.TextBlockObject{
		blockkit.Plain("Name: " + c.Name),
		blockkit.Plain("Access: " + blockkit.AccessLabel(c.ReadOnly)),
		blockkit.Plain("Type: " + or(c.Type, "—")),
	}
	if v.Managed {
		fields = append(fields, blockkit.Mrkdwn("Owner: <@"+v.Owner+">"), blockkit.Plain("Expires: "+blockkit.When(v.ExpiresAt)))
		if v.Request != nil {
			fields = append(fields, blockkit.Plain("Request: "+v.Request.ID))
		}
	} else if v.Held != nil {
		fields = append(fields, blockkit.Plain("⏳ not issued yet: request "+v.Held.ID+" ("+strings.ToLower(string(v.Held.State))+") holds this name"))
	} else {
		fields = append(fields, blockkit.Plain("⚠ not issued by credbot: no owner or expiry known"))
	}
	return slack.NewSectionBlock(nil, fields, nil)
}

func (s *Server) get(ctx context.Context, o origin, scope approval.Scope, name string) {
	v, err := s.life.GetCredential(ctx, o.user, scope, name)
	if err != nil {
		s.warn(ctx, o, err, "get")
		return
	}
	s.reply(ctx, o, "API credential "+name, credentialBlocks(v)...)
}

// credentialBlocks renders one credential in full (never a secret: BTP has none
// to give after creation).
func credentialBlocks(v approval.CredentialView) []slack.Block {
	c := v.Credential
	fields := []*slack.TextBlockObject{
		blockkit.Plain("Scope: " + blockkit.ScopeLabel(c.Scope)),
		blockkit.Plain("Access: " + blockkit.AccessLabel(c.ReadOnly)),
		blockkit.Plain("Type: " + or(c.Type, "—")),
		blockkit.Plain("Client ID: " + or(c.ClientID, "—")),
		blockkit.Plain("Token URL: " + or(c.TokenURL, "—")),
	}
	if c.APIURL != "" {
		fields = append(fields, blockkit.Plain("API URL: "+c.APIURL))
	}
	if v.Managed {
		fields = append(fields, blockkit.Mrkdwn("Owner: <@"+v.Owner+">"), blockkit.Plain("Expires: "+blockkit.When(v.ExpiresAt)))
		if v.Request != nil {
			fields = append(fields, blockkit.Plain("Request: "+v.Request.ID))
		}
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(blockkit.Plain("API credential "+c.Name), nil, nil),
		slack.NewSectionBlock(nil, fields[:min(len(fields), blockkit.MaxFields)], nil),
	}
	switch {
	case v.Held != nil:
		blocks = append(blocks, blockkit.Note(fmt.Sprintf(":hourglass: Not issued yet: request %s (%s) holds this name, and credbot may be creating this credential right now.",
			v.Held.ID, blockkit.Escape(strings.ToLower(string(v.Held.State))))))
	case !v.Managed:
		blocks = append(blocks, blockkit.Note(":warning: Not issued by credbot: nobody owns it here and it has no expiry."))
	}
	return blocks
}

// confirmDelete shows the credential and a Delete button behind Slack's
// confirm dialog. Nothing is deleted until that button is pressed.
func (s *Server) confirmDelete(ctx context.Context, o origin, scope approval.Scope, name string) {
	// Refuse now rather than offer a button that would be refused: someone
	// who may not delete here, or a name a request of credbot holds and has
	// not issued (the refusal names the request). Either is recorded.
	if err := s.life.CheckDelete(ctx, o.user, scope, name); err != nil {
		s.warn(ctx, o, err, "check delete")
		return
	}
	v, err := s.life.GetCredential(ctx, o.user, scope, name)
	if err != nil {
		s.warn(ctx, o, err, "get")
		return
	}
	if v.Held != nil {
		// Taken between the check and the lookup: the click would be refused.
		s.reply(ctx, o, ":warning: "+blockkit.Escape(approval.UnissuedRefusal(v.Held)))
		return
	}
	what := "the API credential " + name + " in " + blockkit.ScopeLabel(scope)
	consequence := " Anything using it stops working at once."
	if v.Managed {
		consequence += " Its owner will be told."
	}
	del := blockkit.Button(blockkit.ActionDelete, scope.String()+"|"+name, "Delete "+name).WithStyle(slack.StyleDanger).
		WithConfirm(blockkit.Confirm("Delete at BTP?", "Delete "+what+"? This cannot be undone."+consequence, "Delete", "Keep it", true))
	blocks := append(credentialBlocks(v), slack.NewActionBlock("delete:"+name, del),
		blockkit.Note("Nothing has been deleted. Press the button and confirm to delete it at BTP."))
	s.reply(ctx, o, "Delete "+what+"?", blocks...)
}

func (s *Server) delete(ctx context.Context, o origin, scope approval.Scope, name string) {
	if err := s.life.DeleteCredential(ctx, o.user, scope, name); err != nil {
		s.warn(ctx, o, err, "delete")
		return
	}
	s.reply(ctx, o, fmt.Sprintf(":wastebasket: Deleted the API credential *%s* in %s at BTP.", blockkit.Escape(name), blockkit.Escape(blockkit.ScopeLabel(scope))))
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// adopt puts an unmanaged credential under management and tells the admin
// what that means: credbot now deletes it when its lifetime ends.
func (s *Server) adopt(ctx context.Context, o origin, in approval.Adoption) {
	r, err := s.life.Adopt(ctx, in)
	if err != nil {
		s.warn(ctx, o, err, "adopt")
		return
	}
	s.reply(ctx, o, fmt.Sprintf(":inbox_tray: *%s* in %s is now managed by credbot as request `%s`, owned by <@%s>. "+
		"credbot never had its secret and did not touch it. By your decision it is credbot's now: "+
		"credbot warns <@%s> before it expires and *deletes it at BTP* on %s, at the end of its lifetime.",
		blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), r.ID, r.Requester, r.Requester, blockkit.When(r.ExpiresAt)))
}
