// Package cassette reads the go-vcr (version 2) recordings of real btp CLI
// server traffic vendored in testdata/btp-cli-server (copied unmodified from
// shared/fixtures/btp-cli-server; see testdata/PROVENANCE.md), for the replay
// test of the client and the conformance test of the emulator. It is imported
// by tests only.
package cassette

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/credbot/credbot/internal/vendored"
)

// Redacted is the value the recorder put in place of secrets, session ids,
// client ids and certificates.
const Redacted = "redacted"

// Cassette is one recording file.
type Cassette struct {
	Name         string // file name without .yaml
	Interactions []Interaction
}

// Interaction is one request and its response.
type Interaction struct {
	ID       int      `yaml:"id"`
	Request  Request  `yaml:"request"`
	Response Response `yaml:"response"`
}

type Request struct {
	Body    string              `yaml:"body"`
	Headers map[string][]string `yaml:"headers"`
	URL     string              `yaml:"url"`
	Method  string              `yaml:"method"`
}

type Response struct {
	Body    string              `yaml:"body"`
	Headers map[string][]string `yaml:"headers"`
	Code    int                 `yaml:"code"`
}

// Path is the request URL's path, e.g. /command/v2.106.1/security/api-credential.
func (r Request) Path() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	return u.Path
}

// Action is the bare query word of a command, e.g. "create".
func (r Request) Action() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	return u.RawQuery
}

// IsLogin reports a POST /login/<version>.
func (r Request) IsLogin() bool { return strings.HasPrefix(r.Path(), "/login/") }

// IsAPICredential reports a security/api-credential command.
func (r Request) IsAPICredential() bool {
	return strings.HasSuffix(r.Path(), "/security/api-credential")
}

// Params decodes the paramValues of a command body.
func (r Request) Params() (map[string]string, error) {
	var b struct {
		ParamValues map[string]string `json:"paramValues"`
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		return nil, err
	}
	return b.ParamValues, nil
}

// Header returns the first value of a header, canonical name or not.
func Header(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Keys returns the sorted top-level keys of a JSON object body.
func Keys(body string) ([]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// Load reads one cassette.
func Load(path string) (*Cassette, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c struct {
		Version      int           `yaml:"version"`
		Interactions []Interaction `yaml:"interactions"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Version != 2 {
		return nil, fmt.Errorf("%s: cassette version %d, want 2", path, c.Version)
	}
	return &Cassette{Name: strings.TrimSuffix(filepath.Base(path), ".yaml"), Interactions: c.Interactions}, nil
}

// Dir is the copy of the recorded traffic vendored into this package's
// testdata (see testdata/PROVENANCE.md), found from the module root above the
// working directory, so that it works from any package's test. It does not
// check that the copy is there: call Require from a test.
func Dir() string {
	root, err := moduleRoot()
	if err != nil {
		return filepath.Join("testdata", "btp-cli-server")
	}
	return filepath.Join(root, filepath.FromSlash(vendoredDir))
}

// vendoredDir is the vendored copy's path in the module; its checksums sit
// beside it, in btp-cli-server.sha256.
const vendoredDir = "internal/btp/internal/cassette/testdata/btp-cli-server"

// Require returns Dir after checking the vendored copy file by file against
// the checksums recorded when it was copied; a missing, truncated or edited
// copy fails the test (it never skips: the replay and conformance tests are
// worth nothing on fewer files than were recorded).
func Require(tb testing.TB) string {
	tb.Helper()
	dir := Dir()
	if err := vendored.Check(dir, dir+".sha256"); err != nil {
		tb.Fatalf("recorded btp CLI server traffic: %v", err)
	}
	return dir
}

// SharedDir is shared/fixtures/btp-cli-server beside the repository
// (<repo>/../shared, as CI lays it out), the source the vendored copy was
// taken from, or "" when there is none.
func SharedDir() string {
	root, err := moduleRoot()
	if err != nil {
		return ""
	}
	dir := filepath.Join(root, "..", "shared", "fixtures", "btp-cli-server")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return ""
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// APICredential loads every api-credential recording in dir, sorted by name.
func APICredential(dir string) ([]*Cassette, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "resource_*_api_credential.*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no resource_*_api_credential.*.yaml recording in %s", dir)
	}
	slices.Sort(paths)
	var out []*Cassette
	for _, p := range paths {
		c, err := Load(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
