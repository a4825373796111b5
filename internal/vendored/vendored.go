// Package vendored checks third-party test data copied into the repository
// (the recorded btp CLI server traffic, Slack's manifest schema) against the
// SHA-256 sums written down when it was copied. Tests that replay or validate
// against that data call Check first, so that a missing, truncated or edited
// copy fails the test with a reason instead of passing on fewer files or
// skipping.
package vendored

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Check holds dir to sums, a file in sha256sum(1) format ("<hex>  <path>",
// paths relative to dir, slash-separated). Every listed file must exist with
// that digest, and dir must hold no file that is not listed: the copy is the
// upstream files, unmodified and complete. All differences are reported at
// once.
func Check(dir, sums string) error {
	want, err := readSums(sums)
	if err != nil {
		return err
	}
	if len(want) == 0 {
		return fmt.Errorf("%s lists no files", sums)
	}
	got, err := digests(dir)
	if err != nil {
		return fmt.Errorf("the vendored copy %s cannot be read (restore it with git checkout -- %s): %w", dir, dir, err)
	}
	var problems []string
	for name, sum := range want {
		g, ok := got[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is missing", name))
		case g != sum:
			problems = append(problems, fmt.Sprintf("%s differs from the copied file (sha256 %s, recorded %s)", name, g, sum))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s is not in %s (vendored data holds upstream files only; record a new copy in the sums and PROVENANCE.md)", name, filepath.Base(sums)))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("the vendored copy %s does not match %s:\n  %s", dir, sums, strings.Join(problems, "\n  "))
	}
	return nil
}

// Same reports whether the files of a and b are byte-for-byte the same, with
// the same names. It is how a test holds the vendored copy to its source when
// the source is at hand.
func Same(a, b string) error {
	da, err := digests(a)
	if err != nil {
		return err
	}
	db, err := digests(b)
	if err != nil {
		return err
	}
	var problems []string
	for name, s := range da {
		t, ok := db[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is only in %s", name, a))
		case s != t:
			problems = append(problems, fmt.Sprintf("%s differs", name))
		}
	}
	for name := range db {
		if _, ok := da[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s is only in %s", name, b))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%s and %s differ:\n  %s", a, b, strings.Join(problems, "\n  "))
	}
	return nil
}

func readSums(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if _, err := hex.DecodeString(sum); !ok || err != nil || len(sum) != 64 || name == "" {
			return nil, fmt.Errorf("%s:%d: want \"<sha256 hex>  <path>\", got %q", path, n, line)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: %s is listed twice", path, n, name)
		}
		out[name] = sum
	}
	return out, sc.Err()
}

// digests maps every regular file under dir (slash-separated relative path)
// to its SHA-256.
func digests(dir string) (map[string]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	out := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return errors.New(p + " is not a regular file")
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h[:])
		return nil
	})
	return out, err
}
