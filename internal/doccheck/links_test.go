package doccheck

import (
	"bufio"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestMarkdownLinksPointIntoTheRepository walks every Markdown file of the
// repository (git is not available under `go test`, so the tree is walked
// from the module root, leaving out .git, hidden directories such as tool
// caches, testdata and vendored code) and checks each link.
func TestMarkdownLinksPointIntoTheRepository(t *testing.T) {
	root := moduleRoot(t)
	own := ownRepository(t, root)
	problems, files, err := checkTree(os.DirFS(root), own)
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no Markdown file found under %s", root)
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d Markdown files checked", files)
}

// TestCheckerFindsWhatItShould keeps the checker itself honest: each kind of
// broken link in a made-up tree is reported, and nothing else.
func TestCheckerFindsWhatItShould(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", strings.Join([]string{
		"# Title",
		"## Two commands",
		"## `internal/btp` — the bot's hands",
		"## Two commands",
		"[ok](#two-commands) [ok](#two-commands-1) [ok](#internalbtp--the-bots-hands)",
		"[ok](docs/a.md#section-b) [ok](docs) [ok](./docs/a.md) [ok](/docs/a.md)",
		"[ok](https://api.slack.com/apps) <https://example.com/x> [ok](mailto:x@example.com)",
		"[ok](main.go#L3) [ok](docs/a.md \"title\") [ok](<docs/a.md>)",
		"[bad anchor](#nowhere)",
		"[bad file](docs/missing.md)",
		"[bad anchor in file](docs/a.md#nowhere)",
		"[outside](../elsewhere/x.md)",
		"[own blob](https://github.com/acme/bot/blob/main/README.md)",
		"see https://github.com/acme/bot/tree/main/docs for more",
		"[ok, not a file of ours](https://github.com/acme/bot/issues/11)",
		"[ok, another repo](https://github.com/acme/other/blob/main/x.md)",
		"[bad go anchor](main.go#func)",
		"`[in code](nowhere.md)` and",
		"```",
		"[in a fence](nowhere.md)",
		"# not a heading",
		"```",
		"[bad ref]: nowhere.md",
		"",
		"Section",
		"-------",
		"[ok](#section)",
	}, "\n"))
	write("docs/a.md", "# A\n\nSection B\n=========\n\n[up](../README.md#title)\n")
	write("main.go", "package main\n")
	write(".cache/x.md", "[skipped](nowhere.md)\n")
	write("testdata/x.md", "[skipped](nowhere.md)\n")

	problems, files, err := checkTree(os.DirFS(dir), "acme/bot")
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 {
		t.Errorf("checked %d files, want 2 (README.md, docs/a.md)", files)
	}
	want := []string{
		`README.md:9: link "#nowhere": no heading with that anchor in README.md`,
		`README.md:10: link "docs/missing.md": docs/missing.md does not exist`,
		`README.md:11: link "docs/a.md#nowhere": no heading with that anchor in docs/a.md`,
		`README.md:12: link "../elsewhere/x.md": points outside the repository`,
		`README.md:13: "https://github.com/acme/bot/blob/main/README.md" points at this repository's own file on github.com: use a relative link`,
		`README.md:14: "https://github.com/acme/bot/tree/main/docs" points at this repository's own file on github.com: use a relative link`,
		`README.md:17: link "main.go#func": an anchor into a file that is not Markdown can only be a line (#L10 or #L10-L20)`,
		`README.md:23: link "nowhere.md": nowhere.md does not exist`,
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

func TestSlugIsGitHubs(t *testing.T) {
	for heading, want := range map[string]string{
		"From zero to the first request":                        "from-zero-to-the-first-request",
		"The lifecycle (for operators)":                         "the-lifecycle-for-operators",
		"HTTPS (Request URLs)":                                  "https-request-urls",
		"`internal/btp` — the bot's hands at SAP":               "internalbtp--the-bots-hands-at-sap",
		"Policy rows (`*.csv`)":                                 "policy-rows-csv",
		"One person, two accounts (`distinct_people_by_email`)": "one-person-two-accounts-distinct_people_by_email",
		"See [Audit](#audit) **now**":                           "see-audit-now",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// ownRepository is "owner/name" of the repository on github.com, from the
// module path (github.com/owner/name).
func ownRepository(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			parts := strings.Split(strings.TrimSpace(mod), "/")
			if len(parts) < 3 || parts[0] != "github.com" {
				t.Fatalf("module path %q is not github.com/owner/name", mod)
			}
			return parts[1] + "/" + parts[2]
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// skipDir leaves out what is not the repository's own documentation: git's
// store, hidden directories (tool and build caches), test fixtures and
// vendored or installed code.
func skipDir(name string) bool {
	switch name {
	case ".git", "testdata", "vendor", "node_modules":
		return true
	}
	return strings.HasPrefix(name, ".") && name != ".github" && name != ".ci"
}

// checkTree checks every *.md file in fsys and returns one line per problem.
func checkTree(fsys fs.FS, own string) (problems []string, files int, err error) {
	docs := map[string]*doc{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && skipDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if strings.EqualFold(path.Ext(p), ".md") {
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			docs[p] = parse(string(b))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	ownFile := regexp.MustCompile(`(?i)https?://(?:(?:www\.)?github\.com/` + regexp.QuoteMeta(own) +
		`/(?:blob|tree|raw|edit|blame)/|raw\.githubusercontent\.com/` + regexp.QuoteMeta(own) + `/)[^\s)>\]"']*`)
	names := make([]string, 0, len(docs))
	for p := range docs {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		d := docs[p]
		var found []problem
		for _, l := range d.links {
			if msg := checkLink(fsys, docs, p, l.target); msg != "" {
				found = append(found, problem{l.line, fmt.Sprintf("link %q: %s", l.target, msg)})
			}
		}
		for _, u := range d.text {
			for _, m := range ownFile.FindAllString(u.target, -1) {
				found = append(found, problem{u.line, fmt.Sprintf("%q points at this repository's own file on github.com: use a relative link", m)})
			}
		}
		slices.SortStableFunc(found, func(a, b problem) int { return a.line - b.line })
		for _, f := range found {
			problems = append(problems, fmt.Sprintf("%s:%d: %s", p, f.line, f.msg))
		}
	}
	return problems, len(docs), nil
}

var lineAnchor = regexp.MustCompile(`^L\d+(?:-L\d+)?$`)

// checkLink returns what is wrong with target, a link in the file at from, or "".
func checkLink(fsys fs.FS, docs map[string]*doc, from, target string) string {
	if scheme := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`).FindString(target); scheme != "" {
		return "" // http(s), mailto: … — other sites are fine; our own files are checked in the text
	}
	if strings.HasPrefix(target, "//") {
		return "a protocol-relative URL: write https:// or a relative path"
	}
	file, anchor, _ := strings.Cut(target, "#")
	if i := strings.IndexByte(file, '?'); i >= 0 {
		file = file[:i]
	}
	file, err := url.PathUnescape(file)
	if err != nil {
		return "does not unescape: " + err.Error()
	}
	var p string
	switch {
	case file == "":
		p = from
	case strings.HasPrefix(file, "/"):
		p = path.Clean(strings.TrimPrefix(file, "/")) // GitHub: from the repository root
	default:
		p = path.Join(path.Dir(from), file)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "points outside the repository"
	}
	if p == "" {
		p = "."
	}
	if _, err := fs.Stat(fsys, p); err != nil {
		return p + " does not exist"
	}
	if anchor == "" {
		return ""
	}
	d, ok := docs[p]
	if !ok {
		if strings.EqualFold(path.Ext(p), ".md") {
			return "cannot check the anchor: " + p + " was not read"
		}
		if !lineAnchor.MatchString(anchor) {
			return "an anchor into a file that is not Markdown can only be a line (#L10 or #L10-L20)"
		}
		return ""
	}
	if unescaped, err := url.PathUnescape(anchor); err == nil {
		anchor = unescaped
	}
	if !d.anchors[anchor] {
		return "no heading with that anchor in " + p
	}
	return ""
}

type problem struct {
	line int
	msg  string
}

type ref struct {
	line   int
	target string
}

type doc struct {
	links   []ref           // link targets: [text](target), [ref]: target
	text    []ref           // each line outside code, to search for URLs
	anchors map[string]bool // heading slugs (with GitHub's -1, -2 for repeats) and HTML ids
}

var (
	fence      = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	atx        = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setext     = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	inlineLink = regexp.MustCompile(`\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	refDef     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	htmlID     = regexp.MustCompile(`<a\s[^>]*(?:name|id)\s*=\s*["']([^"']+)["']`)
	listOrQuot = regexp.MustCompile(`^\s*(?:[-*+]|\d+[.)]|>)\s`)
)

func parse(text string) *doc {
	d := &doc{anchors: map[string]bool{}}
	seen := map[string]int{}
	addHeading := func(h string) {
		s := slug(h)
		if n := seen[s]; n > 0 {
			d.anchors[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			d.anchors[s] = true
		}
		seen[s]++
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var inFence string
	prev := "" // the previous line outside fences, if it can be a setext heading's text
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if inFence != "" {
			if m := fence.FindStringSubmatch(line); m != nil && m[1][0] == inFence[0] && len(m[1]) >= len(inFence) &&
				strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), m[1][:1])) == "" {
				inFence = ""
			}
			continue
		}
		if m := fence.FindStringSubmatch(line); m != nil {
			inFence, prev = m[1], ""
			continue
		}
		if setext.MatchString(line) && prev != "" {
			addHeading(prev)
			prev = ""
			continue
		}
		if m := atx.FindStringSubmatch(line); m != nil {
			addHeading(m[1])
			prev = ""
		} else if strings.TrimSpace(line) == "" || listOrQuot.MatchString(line) || strings.HasPrefix(line, "    ") || strings.Contains(line, "|") {
			prev = ""
		} else if prev == "" {
			prev = strings.TrimSpace(line)
		} else {
			prev = "" // a paragraph of several lines: not checked as a heading
		}
		visible := withoutCode(line)
		for _, m := range htmlID.FindAllStringSubmatch(visible, -1) {
			d.anchors[m[1]] = true
		}
		d.text = append(d.text, ref{n, visible})
		if m := refDef.FindStringSubmatch(visible); m != nil {
			d.links = append(d.links, ref{n, strings.Trim(m[1], "<>")})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(visible, -1) {
			d.links = append(d.links, ref{n, strings.Trim(m[2], "<>")})
			for _, inner := range inlineLink.FindAllStringSubmatch(m[1], -1) { // [![badge](img)](url)
				d.links = append(d.links, ref{n, strings.Trim(inner[2], "<>")})
			}
		}
	}
	return d
}

// withoutCode blanks out code spans (`…`, “…“), which hold no links.
func withoutCode(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		run := line[i:j]
		end := strings.Index(line[j:], run)
		if end < 0 {
			b.WriteString(run) // an unclosed run is literal text
			i = j
			continue
		}
		b.WriteString(strings.Repeat(" ", len(run)*2+end))
		i = j + end + len(run)
	}
	return b.String()
}

var (
	linkInHeading = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	tagInHeading  = regexp.MustCompile(`<[^>]+>`)
)

// slug is GitHub's anchor for a heading: its text as rendered (no code
// ticks, emphasis marks, link targets or tags), lower case, without
// punctuation but for - and _, spaces turned into -.
func slug(heading string) string {
	h := linkInHeading.ReplaceAllString(heading, "$1")
	h = tagInHeading.ReplaceAllString(h, "")
	h = strings.NewReplacer("`", "", "*", "", "~", "").Replace(h)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
