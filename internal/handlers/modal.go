package handlers

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/slack-go/slack"
)

// Input block ids of the create modal; field errors are keyed by them.
const (
	blockScopeKind = "scope_kind"
	blockScopeID   = "scope_id"
	blockName      = "name"
	blockAccess    = "access"
	blockReason    = "reason"
	blockExpiresIn = "expires_in"
	blockCert      = "certificate"
	inputAction    = "value"
	// metaCertificate, as the view's private_metadata, marks a form opened
	// with --certificate: there the certificate is required.
	metaCertificate = "certificate"
)

const maxReason = 500

// createModal is the form behind a bare "/credbot create", and behind
// "/credbot create ... --certificate" with the flags given filled in: the same
// fields as the flags, validated by the same rules, plus the certificate.
func createModal(pre Command) slack.ModalViewRequest {
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
	for _, k := range kinds {
		if pre.HasScope && k.Value == string(pre.Scope.Kind) {
			kind.InitialOption = k
		}
	}
	access := []*slack.OptionBlockObject{opt("full", "Full access"), opt("read-only", "Read-only")}
	radio := slack.NewRadioButtonsBlockElement(inputAction, access...)
	radio.InitialOption = access[0]
	if pre.ReadOnly {
		radio.InitialOption = access[1]
	}
	text := func(placeholder string, maxLen int, initial string) *slack.PlainTextInputBlockElement {
		el := slack.NewPlainTextInputBlockElement(blockkit.Plain(placeholder), inputAction).WithMaxLength(maxLen)
		el.InitialValue = initial
		return el
	}
	var scopeID, expires string
	if pre.HasScope {
		scopeID = pre.Scope.ID
	}
	if pre.ExpiresIn > 0 {
		expires = blockkit.Lifetime(pre.ExpiresIn)
	}
	cert := input(blockCert, "X.509 client certificate (PEM)",
		"Only for a certificate credential: your client certificate, -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----. "+
			"Never its private key, which stays with you.",
		text("-----BEGIN CERTIFICATE-----", approval.MaxCertificateText, "").WithMultiline(true)).WithOptional(!pre.Certificate)
	meta := ""
	if pre.Certificate {
		meta = metaCertificate
	}
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: blockkit.CallbackCreate,
		Title:      blockkit.Plain("Request API credential"),
		Submit:     blockkit.Plain("Submit"),
		Close:      blockkit.Plain("Cancel"),
		// Not a secret, and not authority: it only says whether the form
		// was opened to ask for a certificate.
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			blockkit.Section("Ask for a SAP BTP API credential. The approvers the policy names for the scope decide; once approved you get a DM with a one-time Reveal button."),
			input(blockScopeKind, "Level", "", kind),
			input(blockScopeID, "Subaccount or directory GUID, or global account subdomain", "", text("11111111-2222-4333-8444-555555555555", 64, scopeID)),
			input(blockName, "Credential name", "Letters, digits and '-'. Leave empty for a generated name.", text("ci-payments", 64, pre.Name)).WithOptional(true),
			input(blockAccess, "Access", "", radio),
			cert,
			input(blockReason, "Reason", "Shown to the approvers.", text("Why do you need it?", maxReason, pre.Reason).WithMultiline(true)),
			input(blockExpiresIn, "Lifetime", "e.g. 30d or 72h. Leave empty for the longest the policy allows.", text("30d", 16, expires)).WithOptional(true),
		}},
	}
}

func input(id, label, hint string, el slack.BlockElement) *slack.InputBlock {
	var h *slack.TextBlockObject
	if hint != "" {
		h = blockkit.Plain(hint)
	}
	return slack.NewInputBlock(id, blockkit.Plain(label), h, el)
}

// openCreateModal opens the form with the command's trigger. It runs inside
// the ack: the trigger is valid for 3 seconds and only once.
func (s *Server) openCreateModal(ctx context.Context, trigger string, pre Command) any {
	return s.openModal(ctx, trigger, "create", createModal(pre))
}

// openModal opens the form of verb within the ack's budget; without a Web
// API or a trigger, or when Slack does not open it, the ack says to give the
// flags instead.
func (s *Server) openModal(ctx context.Context, trigger, verb string, view slack.ModalViewRequest) any {
	if s.cfg.API == nil || trigger == "" {
		return ackText(":warning: the form is not available here; give the flags instead.\n\n" + Help(verb))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckBudget)
	defer cancel()
	if err := s.cfg.API.OpenView(ctx, trigger, view); err != nil {
		s.log.WarnContext(ctx, "open "+verb+" modal", "error", err)
		return ackText(":warning: Slack did not open the form; please try again, or give the flags instead.\n\n" + Help(verb))
	}
	return nil
}

// submitCreateModal validates the form. Invalid fields go back to Slack as
// inline errors and keep the form open; a valid form closes, and the request is
// submitted after the ack exactly as the slash command would.
func (s *Server) submitCreateModal(ctx context.Context, cb slack.InteractionCallback) any {
	var values map[string]map[string]slack.BlockAction
	if cb.View.State != nil {
		values = cb.View.State.Values
	}
	sub, errs := parseCreateForm(values, cb.View.PrivateMetadata == metaCertificate, s.cfg.Now())
	if len(errs) > 0 {
		return slack.NewErrorsViewSubmissionResponse(errs)
	}
	sub.User, sub.Team = submitter(cb)
	// The view id makes the submission idempotent if its job runs twice.
	sub.Key = cb.View.ID
	return s.acceptForm(ctx, cb, job{Kind: jobModal, User: cb.User.ID, Submission: &sub})
}

// submitter is who submitted a form, and from which team.
func submitter(cb slack.InteractionCallback) (user, team string) {
	user, team = cb.User.ID, cb.User.TeamID
	if team == "" {
		team = cb.Team.ID
	}
	return user, team
}

// acceptForm records a valid form's job before the ack. When it cannot be
// recorded the form stays open and says why, rather than a bare error.
func (s *Server) acceptForm(ctx context.Context, cb slack.InteractionCallback, j job) any {
	ack := s.accept(ctx, cb.TriggerID, j, nil)
	if _, failed := ack.(unrecordedAck); failed {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: Unrecorded})
	}
	return ack
}

// parseCreateForm reads the modal's state; errors are keyed by input block id.
// A private key pasted as the certificate is refused here, before anything
// is recorded, and its text goes nowhere: not into the error, a log or Redis.
func parseCreateForm(values map[string]map[string]slack.BlockAction, wantCert bool, now time.Time) (approval.Submission, map[string]string) {
	get := func(block string) slack.BlockAction { return values[block][inputAction] }
	errs := map[string]string{}
	var sub approval.Submission

	kind := approval.ScopeKind(get(blockScopeKind).SelectedOption.Value)
	sub.Scope = approval.Scope{Kind: kind, ID: strings.TrimSpace(get(blockScopeID).Value)}
	switch kind {
	case approval.ScopeSubaccount, approval.ScopeDirectory, approval.ScopeGlobalAccount:
		if sub.Scope.ID == "" {
			errs[blockScopeID] = "Give the " + string(kind) + "'s GUID."
			if kind == approval.ScopeGlobalAccount {
				errs[blockScopeID] = "Give the global account's subdomain."
			}
		} else if err := sub.Scope.Validate(); err != nil {
			errs[blockScopeID] = userText(err)
		}
	default:
		errs[blockScopeKind] = "Choose subaccount, directory or global account."
	}
	if name := strings.TrimSpace(get(blockName).Value); name != "" {
		if err := approval.ValidateName(name); err != nil {
			errs[blockName] = userText(err)
		}
		sub.Name = name
	}
	switch get(blockAccess).SelectedOption.Value {
	case "read-only":
		sub.ReadOnly = true
	case "full", "":
	default:
		errs[blockAccess] = "Choose full access or read-only."
	}
	if v := get(blockCert).Value; strings.TrimSpace(v) != "" {
		pemText, _, err := approval.CheckCertificate(v, now)
		if err != nil {
			if errors.Is(err, approval.ErrPrivateKey) {
				// Nothing of this form may be kept: refuse it whole.
				return approval.Submission{}, map[string]string{blockCert: userText(err)}
			}
			errs[blockCert] = userText(err)
		}
		sub.Certificate = pemText
	} else if wantCert {
		errs[blockCert] = "Paste your X.509 client certificate (PEM), or ask without --certificate for a client secret."
	}
	sub.Reason = strings.TrimSpace(get(blockReason).Value)
	switch {
	case sub.Reason == "":
		errs[blockReason] = "Say why you need it; the approvers read this."
	case len(sub.Reason) > maxReason:
		errs[blockReason] = "Keep it under 500 characters."
	case strings.ContainsFunc(sub.Reason, func(r rune) bool { return r < ' ' && r != '\n' && r != '\t' }):
		errs[blockReason] = "Control characters are not allowed."
	}
	if v := strings.TrimSpace(get(blockExpiresIn).Value); v != "" {
		d, err := ParseLifetime(v)
		if err != nil {
			errs[blockExpiresIn] = err.Error()
		}
		sub.ExpiresIn = d
	}
	return sub, errs
}

// userText is an approval error's message without its kind prefix.
func userText(err error) string {
	return strings.TrimPrefix(err.Error(), approval.ErrInvalid.Error()+": ")
}
