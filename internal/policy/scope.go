package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/credbot/credbot/internal/approval"
)

// A scope path names a BTP scope together with its ancestors, root first:
//
//	globalaccount:acme-ga/directory:<guid>/subaccount:<guid>
//
// Policy domains are patterns over such paths. Each '/'-separated segment of a
// pattern is one of
//
//	kind:id   that scope (kind is globalaccount, directory or subaccount)
//	kind:*    any scope of that kind
//	*         any one scope
//	**        any run of scopes, including none
//
// A pattern matches a path when it matches any contiguous run of the path's
// segments; in glob terms, the path matches "**/<pattern>/**". So a rule on a
// directory covers the directory and everything below it, while a wildcard
// stands for whole identifiers only: "globalaccount:acme*" is rejected when
// loaded, so it can never match "globalaccount:acme-evil".

var (
	guidRE      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	subdomainRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
)

type segKind uint8

const (
	segLiteral segKind = iota // kind:id
	segKindAny                // kind:*
	segOne                    // *
	segMany                   // **
)

type segment struct {
	kind segKind
	text string // the literal segment, or the scope kind for segKindAny
}

// scopePattern is a parsed policy domain.
type scopePattern struct {
	src     string    // normalised source, as shown in explanations
	segs    []segment // with leading and trailing ** implied, not stored
	literal string    // set when the pattern is one literal segment: the index key
}

// parseScopePattern parses and normalises (lowercases identifiers) a domain
// pattern, rejecting partial wildcards and malformed identifiers.
func parseScopePattern(s string) (scopePattern, error) {
	if s == "" {
		return scopePattern{}, fmt.Errorf("empty scope pattern")
	}
	parts := strings.Split(s, "/")
	p := scopePattern{segs: make([]segment, 0, len(parts))}
	norm := make([]string, 0, len(parts))
	for _, part := range parts {
		seg, err := parseSegment(part)
		if err != nil {
			return scopePattern{}, fmt.Errorf("scope pattern %q: %w", s, err)
		}
		// Collapse "**/**" so matching stays linear.
		if seg.kind == segMany && len(p.segs) > 0 && p.segs[len(p.segs)-1].kind == segMany {
			continue
		}
		p.segs = append(p.segs, seg)
		norm = append(norm, seg.String())
	}
	p.src = strings.Join(norm, "/")
	if len(p.segs) == 1 && p.segs[0].kind == segLiteral {
		p.literal = p.segs[0].text
	}
	return p, nil
}

func parseSegment(s string) (segment, error) {
	switch s {
	case "":
		return segment{}, fmt.Errorf("empty segment")
	case "*":
		return segment{kind: segOne}, nil
	case "**":
		return segment{kind: segMany}, nil
	}
	kind, id, ok := strings.Cut(s, ":")
	if !ok {
		return segment{}, fmt.Errorf("segment %q: want kind:id, kind:*, * or **", s)
	}
	switch approval.ScopeKind(kind) {
	case approval.ScopeSubaccount, approval.ScopeDirectory, approval.ScopeGlobalAccount:
	default:
		return segment{}, fmt.Errorf("segment %q: unknown scope kind %q (want subaccount, directory or globalaccount)", s, kind)
	}
	if id == "*" {
		return segment{kind: segKindAny, text: kind}, nil
	}
	if strings.Contains(id, "*") {
		return segment{}, fmt.Errorf("segment %q: a wildcard must stand for a whole identifier (write %s:* or add a /** after the scope)", s, kind)
	}
	id = strings.ToLower(id)
	if err := validateScopeID(approval.ScopeKind(kind), id); err != nil {
		return segment{}, fmt.Errorf("segment %q: %w", s, err)
	}
	return segment{kind: segLiteral, text: kind + ":" + id}, nil
}

func validateScopeID(kind approval.ScopeKind, id string) error {
	switch kind {
	case approval.ScopeGlobalAccount:
		if !subdomainRE.MatchString(id) {
			return fmt.Errorf("global account %q is not a subdomain (lowercase letters, digits, '-')", id)
		}
	default:
		if !guidRE.MatchString(id) {
			return fmt.Errorf("%s %q is not a GUID", kind, id)
		}
	}
	return nil
}

func (s segment) String() string {
	switch s.kind {
	case segOne:
		return "*"
	case segMany:
		return "**"
	case segKindAny:
		return s.text + ":*"
	}
	return s.text
}

func (s segment) matches(pathSeg string) bool {
	switch s.kind {
	case segLiteral:
		return s.text == pathSeg
	case segKindAny:
		return len(pathSeg) > len(s.text) && pathSeg[len(s.text)] == ':' && strings.HasPrefix(pathSeg, s.text)
	}
	return true // segOne; segMany is handled by the caller
}

// match reports whether the pattern matches a contiguous run of path, that is,
// whether path matches "**/<pattern>/**".
func (p *scopePattern) match(path []string) bool {
	if p.literal != "" {
		for _, s := range path {
			if s == p.literal {
				return true
			}
		}
		return false
	}
	return globSegments(p.segs, path)
}

// globSegments is the classic wildcard matcher over segments, with "**" as the
// star and an implicit "**" at both ends of the pattern.
func globSegments(pat []segment, path []string) bool {
	pi, si := 0, 0
	starPi, starSi := 0, 0 // the implicit leading "**"
	for si < len(path) {
		switch {
		case pi == len(pat):
			return true // the implicit trailing "**" takes the rest
		case pat[pi].kind == segMany:
			starPi, starSi = pi+1, si
			pi++
		case pat[pi].matches(path[si]):
			pi++
			si++
		default:
			starSi++
			pi, si = starPi, starSi
		}
	}
	for pi < len(pat) && pat[pi].kind == segMany {
		pi++
	}
	return pi == len(pat)
}

// scopeMatch is the Casbin function behind the model's scopeMatch(r.dom, p.dom)
// and the domain matcher of g: it is how Casbin sees our patterns, and tests
// hold it to util.GlobMatch(path, "**/"+pattern+"/**").
func scopeMatch(path, pattern string) bool {
	p, err := parseScopePattern(pattern)
	if err != nil {
		return false
	}
	return p.match(strings.Split(path, "/"))
}
