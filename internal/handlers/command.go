package handlers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/credbot/credbot/internal/approval"
)

// MaxCommandText caps slash-command text; Slack documents no limit.
const MaxCommandText = 2000

// Command is one parsed slash command, in the btp CLI's own grammar:
//
//	create --subaccount <guid> --name <name> [--read-only] --reason "<text>"
type Command struct {
	Verb     string
	Scope    approval.Scope
	HasScope bool
	Name     string
	ReadOnly bool
	Reason   string
	Args     []string // positional arguments after the verb (e.g. a request id)
}

// verbs lists every verb and the flags it takes.
var verbs = map[string][]string{
	"help":   nil,
	"create": {"subaccount", "directory", "global-account", "name", "read-only", "reason"},
	"status": nil,
}

var errUsage = errors.New("usage")

// ParseCommand parses slash-command text. Errors are meant for the user.
func ParseCommand(text string) (Command, error) {
	if len(text) > MaxCommandText {
		return Command{}, fmt.Errorf("%w: the command is longer than %d characters", errUsage, MaxCommandText)
	}
	toks, err := tokenize(text)
	if err != nil {
		return Command{}, err
	}
	if len(toks) == 0 {
		return Command{Verb: "help"}, nil
	}
	c := Command{Verb: strings.ToLower(toks[0])}
	allowed, ok := verbs[c.Verb]
	if !ok {
		return Command{}, fmt.Errorf("%w: unknown command %q", errUsage, toks[0])
	}
	seen := map[string]bool{}
	for i := 1; i < len(toks); i++ {
		tok := normaliseDashes(toks[i])
		if !strings.HasPrefix(tok, "--") {
			c.Args = append(c.Args, toks[i])
			continue
		}
		name, val, hasVal := strings.Cut(tok[2:], "=")
		name = strings.ToLower(name)
		if !slices.Contains(allowed, name) {
			return Command{}, fmt.Errorf("%w: %s does not take --%s", errUsage, c.Verb, name)
		}
		if seen[name] {
			return Command{}, fmt.Errorf("%w: --%s given twice", errUsage, name)
		}
		seen[name] = true
		if name == "read-only" {
			switch {
			case !hasVal:
				c.ReadOnly = true
			case strings.EqualFold(val, "true"):
				c.ReadOnly = true
			case strings.EqualFold(val, "false"):
			default:
				return Command{}, fmt.Errorf("%w: --read-only takes true or false", errUsage)
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(toks) || strings.HasPrefix(normaliseDashes(toks[i+1]), "--") {
				return Command{}, fmt.Errorf("%w: --%s needs a value", errUsage, name)
			}
			i++
			val = toks[i]
		}
		switch name {
		case "subaccount", "directory", "global-account":
			if c.HasScope {
				return Command{}, fmt.Errorf("%w: give exactly one of --subaccount, --directory, --global-account", errUsage)
			}
			kind := map[string]approval.ScopeKind{"subaccount": approval.ScopeSubaccount, "directory": approval.ScopeDirectory, "global-account": approval.ScopeGlobalAccount}[name]
			c.Scope, c.HasScope = approval.Scope{Kind: kind, ID: strings.TrimSpace(val)}, true
			if err := c.Scope.Validate(); err != nil {
				return Command{}, fmt.Errorf("%w: %v", errUsage, err)
			}
		case "name":
			if err := approval.ValidateName(val); err != nil {
				return Command{}, fmt.Errorf("%w: %v", errUsage, err)
			}
			c.Name = val
		case "reason":
			c.Reason = strings.TrimSpace(val)
		}
	}
	if c.Verb == "create" {
		switch {
		case !c.HasScope:
			return Command{}, fmt.Errorf("%w: create needs one of --subaccount, --directory, --global-account", errUsage)
		case c.Name == "":
			return Command{}, fmt.Errorf("%w: create needs --name", errUsage)
		case c.Reason == "":
			return Command{}, fmt.Errorf("%w: create needs --reason \"why you need it\"", errUsage)
		case len(c.Args) > 0:
			return Command{}, fmt.Errorf("%w: unexpected %q (quote a reason with spaces)", errUsage, c.Args[0])
		}
	}
	return c, nil
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
			return nil, fmt.Errorf("%w: control characters are not allowed", errUsage)
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
		return nil, fmt.Errorf("%w: unbalanced quote", errUsage)
	}
	if inTok {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

// Usage is the help text.
const Usage = "*credbot* hands out SAP BTP API credentials (XSUAA) after approval.\n" +
	"```\n" +
	"/credbot create --subaccount <guid> --name <name> [--read-only] --reason \"<why>\"\n" +
	"/credbot create --directory <guid> --name <name> [--read-only] --reason \"<why>\"\n" +
	"/credbot create --global-account <subdomain> --name <name> [--read-only] --reason \"<why>\"\n" +
	"/credbot status <request-id>\n" +
	"/credbot help\n" +
	"```\n" +
	"Approvers get Approve/Deny buttons; once approved you get a DM with a Reveal button. " +
	"The secret is shown once, only to you."
