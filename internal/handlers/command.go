package handlers

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
)

// MaxCommandText caps slash-command text; Slack documents no limit.
const MaxCommandText = 2000

// Command is one parsed slash command, in the btp CLI's own grammar:
//
//	create [security/api-credential] --subaccount <guid> --name <name> [--read-only] --reason "<text>" [--expires-in 30d]
//	create ... --certificate   (opens the form, to paste the PEM)
//	breakglass --subaccount <guid> --name <name> [--read-only] --reason "INC-1234: <text>" [--expires-in 2h]
//	list   [security/api-credential] --subaccount <guid>
//	get    [security/api-credential] --subaccount <guid> --name <name>
//	delete [security/api-credential] --subaccount <guid> --name <name>
//	adopt  --subaccount <guid> --name <name> --owner @someone [--expires-in 30d]
//	rotate [security/api-credential] --subaccount <guid> --name <name>
//	extend <request-id> --by 30d
//	status [<request-id>]  cancel <request-id>  why <request-id>
//	approvers --subaccount <guid>
//	assign --role-collection "<name>" --subaccount <guid> --for 4h --reason "<text>"
//	assignments [--all]   unassign <request-id>
//	help [<verb>]
//
// --directory <guid> or --global-account <subdomain> may stand for --subaccount.
type Command struct {
	Verb      string
	Scope     approval.Scope
	HasScope  bool
	Name      string
	ReadOnly  bool
	Reason    string
	ExpiresIn time.Duration
	Owner     string        // adopt: the owner's Slack user id, from a mention
	By        time.Duration // extend --by
	// Modal is set for a bare "create": the form asks for everything; and
	// for "create --certificate", whose PEM does not fit a slash command: the
	// form opens with the flags given filled in.
	Modal bool
	// Certificate asks for a certificate credential (--certificate).
	Certificate bool
	// RoleCollection and For: assign (a role collection, for a while).
	RoleCollection string
	For            time.Duration
	All            bool     // assignments --all (admins)
	Args           []string // positional arguments after the verb (a request id, a help topic)
}

// verb describes one verb: its flags, what it needs, and its help.
type verb struct {
	flags   []string
	usage   []string // one line per form
	summary string
	detail  string
}

var scopeFlags = []string{"subaccount", "directory", "global-account"}

// verbs lists every verb, in the order help shows them.
var verbs = []struct {
	name string
	verb
}{
	{"create", verb{
		flags: append(slices.Clone(scopeFlags), "name", "read-only", "reason", "expires-in", "certificate"),
		usage: []string{
			`/credbot create --subaccount <guid> --name <name> [--read-only] --reason "<why>" [--expires-in 30d]`,
			`/credbot create --directory <guid> --name <name> [--read-only] --reason "<why>" [--expires-in 72h]`,
			`/credbot create --global-account <subdomain> --name <name> [--read-only] --reason "<why>"`,
			`/credbot create [--subaccount <guid> --name <name> ...] --certificate   (opens a form to paste your X.509 certificate)`,
			`/credbot create   (no arguments: opens a form)`,
		},
		summary: "ask for a new API credential",
		detail: "Your request goes to the approvers the policy names for that scope. Once approved, credbot creates the credential " +
			"and DMs you a Reveal button; the secret is shown once, only to you. --expires-in (e.g. 30d, 72h) sets how long the " +
			"credential lives; without it, the longest the policy allows. --certificate makes a certificate credential: the form takes " +
			"your X.509 client certificate (PEM), never its private key, which stays with you.",
	}},
	{"breakglass", verb{
		flags: append(slices.Clone(scopeFlags), "name", "read-only", "reason", "expires-in"),
		usage: []string{
			`/credbot breakglass --subaccount <guid> --name <name> [--read-only] --reason "INC-1234: <what is broken>" [--expires-in 2h]`,
			`/credbot breakglass --directory <guid> --name <name> --reason "INC-1234: …"`,
			`/credbot breakglass --global-account <subdomain> --name <name> --reason "INC-1234: …"`,
		},
		summary: "emergency: a credential at once, without approval (alerts security)",
		detail: "Only for those the policy allows to break glass in that scope. The reason must name the incident or ticket. " +
			"The credential is created at once and you get the usual one-time Reveal button in your DM; security is alerted " +
			"at once and reviews it afterwards (it may be revoked). It lives at most the break-glass lifetime, and you can " +
			"hold one break-glass credential at a time.",
	}},
	{"list", verb{
		flags:   scopeFlags,
		usage:   []string{"/credbot list --subaccount <guid>   (or --directory <guid>, --global-account <subdomain>)"},
		summary: "list the API credentials of a scope",
		detail:  "Shows every API credential at BTP in the scope, including ones credbot did not issue, if the policy lets you list there.",
	}},
	{"get", verb{
		flags:   append(slices.Clone(scopeFlags), "name"),
		usage:   []string{"/credbot get --subaccount <guid> --name <name>"},
		summary: "show one API credential (never its secret)",
		detail:  "Shows the credential's metadata, owner and expiry. BTP never shows a secret again after creation, and neither does credbot.",
	}},
	{"delete", verb{
		flags:   append(slices.Clone(scopeFlags), "name"),
		usage:   []string{"/credbot delete --subaccount <guid> --name <name>"},
		summary: "delete an API credential (asks for confirmation)",
		detail:  "Shows the credential and a Delete button; nothing is deleted at BTP until you press it and confirm. One credbot issued is deleted through its request (its owner is told); a name held by a request that has not issued yet is refused, naming the request.",
	}},
	{"adopt", verb{
		flags:   append(slices.Clone(scopeFlags), "name", "owner", "expires-in"),
		usage:   []string{"/credbot adopt --subaccount <guid> --name <name> --owner @someone [--expires-in 30d]"},
		summary: "put a credential credbot did not create under its management",
		detail: "For admins (whoever may delete in the scope): an existing API credential — one the inventory reported, or one made in the cockpit or by Terraform — " +
			"gets an owner and an expiry (--expires-in, at most the longest lifetime, which is also the default). Its secret is not touched: credbot never had it. " +
			"From then on credbot warns the owner before it expires and deletes it at BTP when its lifetime ends.",
	}},
	{"rotate", verb{
		flags: append(slices.Clone(scopeFlags), "name"),
		usage: []string{
			"/credbot rotate --subaccount <guid> --name <name>",
			"/credbot rotate --directory <guid> --name <name>",
			"/credbot rotate --global-account <subdomain> --name <name>",
		},
		summary: "replace your credential with a new one under a new name",
		detail: "credbot creates a new credential named like the old one with -r2 (then -r3, …) and DMs you a Reveal button, " +
			"after approval if the policy asks for one. Once you have revealed it, the old one lives on for a grace period " +
			"(CREDBOT_ROTATION_GRACE, 24h by default) so you can switch over, then credbot deletes it at BTP; " +
			"\"Retire the old one\" deletes it sooner. Only the owner of a credential credbot issued can rotate it.",
	}},
	{"extend", verb{
		flags:   []string{"by"},
		usage:   []string{"/credbot extend <request-id> --by 30d"},
		summary: "push the expiry of your credential out",
		detail: "Extends your delivered credential by --by (e.g. 30d, 72h), at once or after approval, as the policy says. " +
			"The new expiry is never more than CREDBOT_MAX_LIFETIME from now; the reply says so when it was capped. " +
			"Find the request id with /credbot status.",
	}},
	{"assign", verb{
		flags: append(slices.Clone(scopeFlags), "role-collection", "for", "reason"),
		usage: []string{
			`/credbot assign --role-collection "Subaccount Viewer" --subaccount <guid> --for 4h --reason "<why>"`,
			`/credbot assign --role-collection "Directory Viewer" --directory <guid> --for 90m --reason "<why>"`,
			`/credbot assign --role-collection "Global Account Viewer" --global-account <subdomain> --for 30m --reason "<why>"`,
			`/credbot assign   (no arguments: opens a form)`,
		},
		summary: "ask for a BTP role collection for yourself, for a while",
		detail: "Quote a role collection name that has spaces, exactly as BTP shows it. Once approved, credbot assigns it to your own BTP user " +
			"(your Slack profile e-mail) and DMs you what you have, where and until when; --for (e.g. 4h, 90m, 45s) says how long, up to the longest the " +
			"configuration allows. credbot warns you before the end and unassigns it then. If you already hold it, credbot says so and never removes it.",
	}},
	{"assignments", verb{
		flags:   []string{"all"},
		usage:   []string{"/credbot assignments", "/credbot assignments --all   (admins: everyone's)"},
		summary: "your role collection requests and assignments",
	}},
	{"unassign", verb{
		usage:   []string{"/credbot unassign <request-id>"},
		summary: "end a role collection assignment now (yours, or anyone's for admins)",
	}},
	{"status", verb{
		usage:   []string{"/credbot status", "/credbot status <request-id>"},
		summary: "your requests, or one request",
	}},
	{"cancel", verb{
		usage:   []string{"/credbot cancel <request-id>"},
		summary: "withdraw a request that is still waiting for approval",
	}},
	{"why", verb{
		usage:   []string{"/credbot why <request-id>"},
		summary: "explain a request: the policy rules that apply and who can approve it",
	}},
	{"approvers", verb{
		flags:   scopeFlags,
		usage:   []string{"/credbot approvers --subaccount <guid>   (or --directory, --global-account)"},
		summary: "who may approve requests in a scope",
	}},
	{"help", verb{
		usage:   []string{"/credbot help", "/credbot help <command>"},
		summary: "this help",
	}},
}

func lookupVerb(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v.verb, true
		}
	}
	return verb{}, false
}

// btpObject is the btp CLI's object name for API credentials; users who paste a
// btp command line may keep it.
const btpObject = "security/api-credential"

var errUsage = errors.New("usage")

// UsageError is a command the grammar rejects; Verb names the verb whose help
// should follow the message, if it is known.
type UsageError struct {
	Verb string
	Msg  string
}

func (e *UsageError) Error() string { return "usage: " + e.Msg }
func (e *UsageError) Unwrap() error { return errUsage }

// ParseCommand parses slash-command text. Errors are *UsageError, meant for the user.
func ParseCommand(text string) (Command, error) {
	// A key or certificate pasted into a command is refused before anything
	// else looks at the text, and never repeated back.
	if strings.Contains(strings.ToUpper(text), "PRIVATE KEY") {
		return Command{}, &UsageError{Msg: "that command holds a private key. credbot never takes a private key, and nothing was recorded. " +
			"It has passed through Slack, so treat it as exposed: make a new key pair. For a certificate credential use " +
			"/credbot create --certificate, which opens a form for the certificate alone"}
	}
	if strings.Contains(text, "-----BEGIN") {
		return Command{}, &UsageError{Verb: "create", Msg: "a PEM does not fit a slash command: use /credbot create --certificate, which opens a form to paste it"}
	}
	if len(text) > MaxCommandText {
		return Command{}, &UsageError{Msg: fmt.Sprintf("the command is longer than %d characters", MaxCommandText)}
	}
	toks, err := tokenize(text)
	if err != nil {
		return Command{}, err
	}
	if len(toks) == 0 {
		return Command{Verb: "help"}, nil
	}
	c := Command{Verb: strings.ToLower(toks[0])}
	v, ok := lookupVerb(c.Verb)
	if !ok {
		return Command{}, &UsageError{Msg: fmt.Sprintf("unknown command %q", toks[0])}
	}
	fail := func(format string, a ...any) (Command, error) {
		return Command{}, &UsageError{Verb: c.Verb, Msg: fmt.Sprintf(format, a...)}
	}
	toks = toks[1:]
	if len(toks) > 0 && strings.EqualFold(toks[0], btpObject) && len(v.flags) > 0 {
		toks = toks[1:]
	}
	seen := map[string]bool{}
	for i := 0; i < len(toks); i++ {
		tok := normaliseDashes(toks[i])
		if !strings.HasPrefix(tok, "--") {
			c.Args = append(c.Args, toks[i])
			continue
		}
		name, val, hasVal := strings.Cut(tok[2:], "=")
		name = strings.ToLower(name)
		if !slices.Contains(v.flags, name) {
			return fail("%s does not take --%s", c.Verb, name)
		}
		if seen[name] {
			return fail("--%s given twice", name)
		}
		seen[name] = true
		if name == "certificate" {
			if hasVal {
				return fail("--certificate takes no value: it opens a form where you paste the certificate")
			}
			c.Certificate = true
			continue
		}
		if name == "all" {
			if hasVal {
				return fail("--all takes no value")
			}
			c.All = true
			continue
		}
		if name == "read-only" {
			switch {
			case !hasVal, strings.EqualFold(val, "true"):
				c.ReadOnly = true
			case strings.EqualFold(val, "false"):
			default:
				return fail("--read-only takes true or false")
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(toks) || strings.HasPrefix(normaliseDashes(toks[i+1]), "--") {
				return fail("--%s needs a value", name)
			}
			i++
			val = toks[i]
		}
		switch name {
		case "subaccount", "directory", "global-account":
			if c.HasScope {
				return fail("give exactly one of --subaccount, --directory, --global-account")
			}
			c.Scope, c.HasScope = approval.Scope{Kind: scopeKinds[name], ID: strings.TrimSpace(val)}, true
			if err := c.Scope.Validate(); err != nil {
				return fail("%s", strings.TrimPrefix(err.Error(), approval.ErrInvalid.Error()+": "))
			}
		case "name":
			if err := approval.ValidateName(val); err != nil {
				return fail("%s", strings.TrimPrefix(err.Error(), approval.ErrInvalid.Error()+": "))
			}
			c.Name = val
		case "reason":
			c.Reason = strings.TrimSpace(val)
			if c.Reason == "" {
				return fail("--reason must not be empty")
			}
		case "owner":
			if c.Owner, err = parseMention(val); err != nil {
				return fail("--owner: %v", err)
			}
		case "expires-in":
			if c.ExpiresIn, err = ParseLifetime(val); err != nil {
				return fail("--expires-in: %v", err)
			}
		case "by":
			if c.By, err = ParseLifetime(val); err != nil {
				return fail("--by: %v", err)
			}
		case "for":
			if c.For, err = ParseLifetime(val); err != nil {
				return fail("--for: %v (e.g. 4h, 90m, 45s)", err)
			}
		case "role-collection":
			v := strings.TrimSpace(val)
			if err := approval.ValidateRoleCollection(v); err != nil {
				return fail("--role-collection: %s", strings.TrimPrefix(err.Error(), approval.ErrInvalid.Error()+": "))
			}
			c.RoleCollection = v
		}
	}
	needScope := func() error {
		if !c.HasScope {
			return &UsageError{Verb: c.Verb, Msg: c.Verb + " needs one of --subaccount, --directory, --global-account"}
		}
		return nil
	}
	noArgs := func() error {
		if len(c.Args) > 0 {
			return &UsageError{Verb: c.Verb, Msg: fmt.Sprintf("unexpected %q (quote values with spaces)", c.Args[0])}
		}
		return nil
	}
	oneID := func() error {
		if len(c.Args) != 1 || !requestIDRE.MatchString(c.Args[0]) {
			return &UsageError{Verb: c.Verb, Msg: c.Verb + " needs one request id, like r0123456789ab"}
		}
		return nil
	}
	var perr error
	switch c.Verb {
	case "create":
		if len(seen) == 0 && len(c.Args) == 0 {
			c.Modal = true
			break
		}
		if c.Certificate {
			// The form asks for whatever is missing; the flags given fill it in.
			if len(c.Args) > 0 {
				perr = &UsageError{Verb: c.Verb, Msg: "--certificate takes no value: paste the certificate in the form it opens, not in the command"}
			}
			c.Modal = true
			break
		}
		switch {
		case !c.HasScope:
			perr = needScope()
		case c.Name == "":
			perr = &UsageError{Verb: c.Verb, Msg: "create needs --name"}
		case c.Reason == "":
			perr = &UsageError{Verb: c.Verb, Msg: `create needs --reason "why you need it"`}
		default:
			perr = noArgs()
		}
	case "breakglass":
		switch {
		case !c.HasScope:
			perr = needScope()
		case c.Name == "":
			perr = &UsageError{Verb: c.Verb, Msg: "breakglass needs --name"}
		case c.Reason == "":
			perr = &UsageError{Verb: c.Verb, Msg: `breakglass needs --reason "INC-1234: what is broken"`}
		default:
			perr = noArgs()
		}
	case "list", "approvers":
		if perr = needScope(); perr == nil {
			perr = noArgs()
		}
	case "get", "delete", "rotate":
		if perr = needScope(); perr == nil {
			if c.Name == "" {
				perr = &UsageError{Verb: c.Verb, Msg: c.Verb + " needs --name"}
			} else {
				perr = noArgs()
			}
		}
	case "adopt":
		switch {
		case !c.HasScope:
			perr = needScope()
		case c.Name == "":
			perr = &UsageError{Verb: c.Verb, Msg: "adopt needs --name"}
		case c.Owner == "":
			perr = &UsageError{Verb: c.Verb, Msg: "adopt needs --owner @someone: who owns the credential from now on"}
		default:
			perr = noArgs()
		}
	case "assign":
		if len(seen) == 0 && len(c.Args) == 0 {
			c.Modal = true // a bare assign opens the form
			break
		}
		switch {
		case !c.HasScope:
			perr = needScope()
		case c.RoleCollection == "":
			perr = &UsageError{Verb: c.Verb, Msg: `assign needs --role-collection "<name, as BTP shows it>"`}
		case c.For == 0:
			perr = &UsageError{Verb: c.Verb, Msg: "assign needs --for, how long you need it (e.g. 4h, 90m)"}
		case c.Reason == "":
			perr = &UsageError{Verb: c.Verb, Msg: `assign needs --reason "why you need it"`}
		default:
			perr = noArgs()
		}
	case "assignments":
		perr = noArgs()
	case "unassign":
		perr = oneID()
	case "status":
		if len(c.Args) > 0 {
			perr = oneID()
		}
	case "cancel", "why":
		perr = oneID()
	case "extend":
		if perr = oneID(); perr == nil && c.By == 0 {
			perr = &UsageError{Verb: c.Verb, Msg: "extend needs --by, e.g. --by 30d"}
		}
	case "help":
		if len(c.Args) > 1 {
			perr = &UsageError{Verb: "help", Msg: "help takes at most one command name"}
		} else if len(c.Args) == 1 {
			c.Args[0] = strings.ToLower(c.Args[0])
			if _, ok := lookupVerb(c.Args[0]); !ok {
				perr = &UsageError{Verb: "help", Msg: fmt.Sprintf("there is no command %q", c.Args[0])}
			}
		}
	}
	if perr != nil {
		return Command{}, perr
	}
	return c, nil
}

var scopeKinds = map[string]approval.ScopeKind{
	"subaccount": approval.ScopeSubaccount, "directory": approval.ScopeDirectory, "global-account": approval.ScopeGlobalAccount,
}

// MaxLifetimeText bounds what ParseLifetime accepts; the policy's own maximum
// is enforced by the lifecycle service.
const MaxLifetimeText = 10 * 365 * 24 * time.Hour

// ParseLifetime reads a credential lifetime: a whole number of days ("30d"),
// weeks ("2w"), hours ("72h") or minutes ("90m"), or a Go duration ("1h30m").
func ParseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0, errors.New("give a lifetime like 30d or 72h")
	}
	var d time.Duration
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit != 0 {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("%q is not a lifetime like 30d or 72h", s)
		}
		d = time.Duration(n) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a lifetime like 30d or 72h", s)
		}
	}
	if d <= 0 || d > MaxLifetimeText {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return d, nil
}

// parseMention reads a person: a mention as Slack sends it (<@U123> or
// <@U123|name>; the manifests ask Slack to escape them) or a member ID.
func parseMention(v string) (string, error) {
	v = strings.TrimSpace(v)
	if inner, ok := strings.CutPrefix(v, "<@"); ok && strings.HasSuffix(inner, ">") {
		v, _, _ = strings.Cut(strings.TrimSuffix(inner, ">"), "|")
	}
	if blockkit.UserID.MatchString(v) {
		return v, nil
	}
	if strings.HasPrefix(v, "@") {
		return "", fmt.Errorf("%q is a name Slack did not turn into a mention: pick the person from the list Slack shows as you type @, or give their member ID (U…, from their profile)", v)
	}
	return "", fmt.Errorf("%q is not a person: mention them (@…) or give their member ID (U…)", v)
}

// normaliseDashes accepts the em and en dashes that chat clients substitute for "--".
func normaliseDashes(s string) string {
	for _, d := range []string{"\u2014", "\u2013"} {
		if strings.HasPrefix(s, d) {
			return "--" + strings.TrimLeft(s[len(d):], "-")
		}
	}
	return s
}

// tokenize splits on white space, keeping "double", 'single' and “curly” quoted
// runs together.
func tokenize(s string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inTok := false
	var quote rune
	for _, r := range s {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return nil, &UsageError{Msg: "control characters are not allowed"}
		}
		switch {
		case quote != 0:
			if r == quote || (quote == '“' && r == '”') || (quote == '‘' && r == '’') {
				quote = 0
				continue
			}
			cur.WriteRune(r)
		case r == '"' || r == '\'' || r == '“' || r == '‘' || r == '”':
			quote, inTok = r, true
			if r == '”' {
				quote = '“'
			}
		case unicode.IsSpace(r):
			if inTok {
				toks = append(toks, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, &UsageError{Msg: "unbalanced quote"}
	}
	if inTok {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

// Help is the help text: every verb, or one verb in detail.
func Help(topic string) string {
	var b strings.Builder
	if v, ok := lookupVerb(topic); ok && topic != "" && topic != "help" {
		fmt.Fprintf(&b, "*/credbot %s* — %s\n```\n%s\n```\n", topic, v.summary, strings.Join(v.usage, "\n"))
		if v.detail != "" {
			b.WriteString(v.detail + "\n")
		}
		if slices.Contains(v.flags, "subaccount") {
			b.WriteString("Scopes: --subaccount and --directory take a GUID, --global-account the global account's subdomain.")
		}
		return strings.TrimSpace(b.String())
	}
	b.WriteString("*credbot* hands out SAP BTP API credentials after approval. Commands follow the btp CLI:\n```\n")
	for _, v := range verbs {
		fmt.Fprintf(&b, "%-10s %s\n", v.name, v.summary)
	}
	b.WriteString("```\n`/credbot help <command>` explains one command, e.g. `/credbot help create`. ")
	b.WriteString("Approvers get Approve/Deny buttons; once approved you get a DM with a Reveal button. The secret is shown once, only to you.")
	return b.String()
}
