package handlers

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// How much of each list the Home tab shows, within Slack's 100 blocks a view.
const (
	homeAwaiting    = 15 // two blocks each
	homePending     = 10
	homeCredentials = 15
	homeRecent      = 8 // lines of one section
)

// publishHome renders the user's App Home tab: what waits for their approval
// (with working buttons), their pending requests, and their credentials.
func (s *Server) publishHome(ctx context.Context, user string) {
	s.publishHomePage(ctx, user, 0)
}

// publishHomePage is publishHome with the credentials listed from offset on
// (the Next page / Previous page buttons).
func (s *Server) publishHomePage(ctx context.Context, user string, offset int) {
	if s.cfg.API == nil {
		return
	}
	var blocks []slack.Block
	if err := s.admit(ctx, user); err != nil {
		blocks = []slack.Block{blockkit.Section(":no_entry: " + s.userMessage(ctx, err, "admit"))}
	} else if mine, awaiting, err := s.life.Requests(ctx, user); err != nil {
		s.log.WarnContext(ctx, "home: requests", "user", user, "error", err)
		blocks = []slack.Block{blockkit.Section(":warning: credbot could not load your requests just now. Open the tab again in a moment.")}
	} else if creds, total, err := s.life.Credentials(ctx, user, offset, homeCredentials); err != nil {
		s.log.WarnContext(ctx, "home: credentials", "user", user, "error", err)
		blocks = []slack.Block{blockkit.Section(":warning: credbot could not load your credentials just now. Open the tab again in a moment.")}
	} else {
		if offset > 0 && len(creds) == 0 && total > 0 {
			// The page emptied (credentials ended meanwhile): show the last one.
			offset = (total - 1) / homeCredentials * homeCredentials
			creds, total, _ = s.life.Credentials(ctx, user, offset, homeCredentials)
		}
		blocks = homeBlocks(mine, awaiting, credentialPage{creds: creds, total: total, offset: offset})
		blocks = append(blocks, s.unmanagedBlocks(ctx, user)...)
	}
	err := s.cfg.API.PublishHome(ctx, user, slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: blocks}})
	if err != nil {
		s.log.WarnContext(ctx, "publish home", "user", user, "error", err)
	}
}

// credentialPage is one page of a person's live credentials, from their
// index: all of them, not only those among their newest requests.
type credentialPage struct {
	creds         []*approval.Request
	total, offset int
}

// maxHomeOffset bounds the offset a page button may carry.
const maxHomeOffset = 100_000

func homeBlocks(mine, awaiting []*approval.Request, page credentialPage) []slack.Block {
	blocks := []slack.Block{
		slack.NewHeaderBlock(blockkit.Plain("credbot")),
		slack.NewSectionBlock(blockkit.Mrkdwn("SAP BTP API credentials after approval. `/credbot create` asks for one; `/credbot help` lists every command."),
			nil, slack.NewAccessory(blockkit.Button(blockkit.ActionHome, "refresh", "Refresh"))),
		slack.NewDividerBlock(),
		blockkit.Section(fmt.Sprintf("*Waiting for your approval* (%d)", len(awaiting))),
	}
	if len(awaiting) == 0 {
		blocks = append(blocks, blockkit.Note("Nothing waits for you."))
	}
	for i, r := range awaiting {
		if i == homeAwaiting {
			blocks = append(blocks, blockkit.Note(fmt.Sprintf("and %d more in the approval channel", len(awaiting)-i)))
			break
		}
		blocks = append(blocks,
			slack.NewSectionBlock(blockkit.Mrkdwn(fmt.Sprintf("`%s` from <@%s>", r.ID, r.Requester)), []*slack.TextBlockObject{
				blockkit.Plain("Scope: " + blockkit.ScopeLabel(r.Scope)), blockkit.Plain("Name: " + r.Name),
				blockkit.Plain("Access: " + blockkit.AccessLabel(r.ReadOnly)), blockkit.Plain("Reason: " + r.Reason),
			}, nil),
			slack.NewActionBlock(fmt.Sprintf("home-decide:%s:%d", r.ID, r.Version),
				blockkit.Button(blockkit.ActionApprove, r.ID, "Approve").WithStyle(slack.StylePrimary),
				blockkit.Button(blockkit.ActionDeny, r.ID, "Deny").WithStyle(slack.StyleDanger)),
		)
	}

	var pending, recent []*approval.Request
	for _, r := range mine {
		switch r.State {
		case approval.StatePending, approval.StateApproved, approval.StateMinting:
			pending = append(pending, r)
		case approval.StateIssued, approval.StateDelivered:
			// Listed from the index of live credentials (page), below.
		default:
			recent = append(recent, r)
		}
	}
	blocks = append(blocks, slack.NewDividerBlock(), blockkit.Section(fmt.Sprintf("*Your open requests* (%d)", len(pending))))
	if len(pending) == 0 {
		blocks = append(blocks, blockkit.Note("None."))
	}
	for i, r := range pending {
		if i == homePending {
			blocks = append(blocks, blockkit.Note(fmt.Sprintf("and %d more: `/credbot status`", len(pending)-i)))
			break
		}
		blocks = append(blocks, requestSection(r, blockkit.ActionCancel))
	}

	blocks = append(blocks, slack.NewDividerBlock(), blockkit.Section(fmt.Sprintf("*Your credentials* (%d)", page.total)))
	if page.total == 0 {
		blocks = append(blocks, blockkit.Note("None issued through credbot."))
	}
	for _, r := range page.creds {
		line := fmt.Sprintf("*%s* in %s, %s — expires %s", blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), blockkit.AccessLabel(r.ReadOnly), blockkit.When(r.ExpiresAt))
		if r.State == approval.StateIssued {
			line = fmt.Sprintf("*%s* in %s, %s — :key: ready: reveal it from your DM with credbot by %s", blockkit.Escape(r.Name), blockkit.Escape(blockkit.ScopeLabel(r.Scope)), blockkit.AccessLabel(r.ReadOnly), blockkit.When(r.ClaimUntil))
		}
		if r.State == approval.StateDelivered && !r.Revoking {
			// Rotate, without leaving the Home tab: the DM brings the new one.
			blocks = append(blocks, slack.NewSectionBlock(blockkit.Mrkdwn(blockkit.Truncate(line, blockkit.MaxSectionText)), nil, slack.NewAccessory(blockkit.Button(blockkit.ActionRotate, r.ID, "Rotate"))))
			continue
		}
		blocks = append(blocks, blockkit.Section(line))
	}
	if page.total > len(page.creds) {
		from := min(page.offset+1, page.total)
		to := page.offset + len(page.creds)
		var nav []slack.BlockElement
		if page.offset > 0 {
			nav = append(nav, blockkit.Button(blockkit.ActionHomePage, strconv.Itoa(max(page.offset-homeCredentials, 0)), "Previous page"))
		}
		if to < page.total && to < maxHomeOffset {
			nav = append(nav, blockkit.Button(blockkit.ActionHomePage, strconv.Itoa(to), "Next page"))
		}
		blocks = append(blocks, blockkit.Note(fmt.Sprintf("%d–%d of %d, newest first", from, to, page.total)))
		if len(nav) > 0 {
			blocks = append(blocks, slack.NewActionBlock(fmt.Sprintf("home-creds:%d", page.offset), nav...))
		}
	}

	if len(recent) > 0 {
		var lines []string
		for i, r := range recent {
			if i == homeRecent {
				break
			}
			lines = append(lines, "• "+blockkit.RequestLine(r))
		}
		blocks = append(blocks, slack.NewDividerBlock(), blockkit.Section("*Recently closed*\n"+strings.Join(lines, "\n")))
	}
	return blocks
}

// homeUnmanaged is how many unmanaged credentials the Home tab lists.
const homeUnmanaged = 10

// unmanagedBlocks lists, for admins, the credentials the inventory found at
// BTP that credbot did not issue, in the scopes where they may adopt them.
// Others see nothing.
func (s *Server) unmanagedBlocks(ctx context.Context, user string) []slack.Block {
	if s.cfg.Inventory == nil {
		return nil
	}
	found, err := s.cfg.Inventory.Unmanaged(ctx, user)
	if err != nil {
		s.log.WarnContext(ctx, "home: unmanaged credentials", "user", user, "error", err)
		return nil
	}
	if len(found) == 0 {
		return nil
	}
	var lines []string
	size := 0
	for i, u := range found {
		// Names at BTP may have been typed by anyone: escaped, in code spans,
		// and only a name credbot takes gets the command that adopts it.
		line := fmt.Sprintf("• `%s` in %s, %s, found %s — ", codeSafe(blockkit.Truncate(u.Name, 80)), blockkit.Escape(blockkit.ScopeLabel(u.Scope)), blockkit.AccessLabel(u.ReadOnly), blockkit.When(u.FirstSeen))
		if approval.ValidateName(u.Name) == nil {
			line += fmt.Sprintf("`/credbot adopt --%s %s --name %s --owner @someone`", scopeFlagOf(u.Scope.Kind), u.Scope.ID, u.Name)
		} else {
			line += "a name credbot cannot take: delete it"
		}
		if i == homeUnmanaged || size+len(line) > blockkit.MaxSectionText-200 {
			lines = append(lines, fmt.Sprintf("…and %d more: `/credbot list` in each scope", len(found)-i))
			break
		}
		lines, size = append(lines, line), size+len(line)+1
	}
	return []slack.Block{
		slack.NewDividerBlock(),
		blockkit.Section(fmt.Sprintf("*Unmanaged credentials* (%d): found at BTP, not issued by credbot. Adopt them (an owner and an expiry; credbot then deletes them when it ends) or delete them.", len(found))),
		blockkit.Section(strings.Join(lines, "\n")),
	}
}

// codeSafe keeps a value inside a code span: no backticks, and escaped.
func codeSafe(v string) string { return blockkit.Escape(strings.ReplaceAll(v, "`", "'")) }

// scopeFlagOf is the command flag that names a scope of kind k.
func scopeFlagOf(k approval.ScopeKind) string {
	for flag, kind := range scopeKinds {
		if kind == k {
			return flag
		}
	}
	return "subaccount"
}
