package cassette

import (
	"path/filepath"
	"testing"

	"github.com/credbot/credbot/internal/vendored"
)

// TestVendoredRecordingsAreTheCopiedFiles holds the vendored copy to the
// checksums written when it was copied, and checks that every recording
// still parses: the replay and conformance tests run on all of it.
func TestVendoredRecordingsAreTheCopiedFiles(t *testing.T) {
	dir := Require(t)
	all, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := filepath.Glob(filepath.Join(dir, "role-collection", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 15 || len(rc) != 8 {
		t.Fatalf("%d recordings and %d role-collection recordings, want 15 and 8", len(all), len(rc))
	}
	for _, p := range append(all, rc...) {
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Interactions) == 0 {
			t.Errorf("%s holds no interaction", c.Name)
		}
	}
	api, err := APICredential(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(api) != 12 {
		t.Errorf("%d api-credential recordings, want 12 (secret, certificate, read-only and invalid certificate in three scopes)", len(api))
	}
}

// TestVendoredRecordingsEqualShared compares the vendored copy with its
// source, shared/fixtures/btp-cli-server, where CI lays it beside the
// repository: a re-recorded upstream file must be copied in (with a new
// checksum and a PROVENANCE.md entry), not silently drift apart.
func TestVendoredRecordingsEqualShared(t *testing.T) {
	shared := SharedDir()
	if shared == "" {
		t.Skip("no <repo>/../shared/fixtures/btp-cli-server to compare the vendored copy with (the vendored copy itself is checked by TestVendoredRecordingsAreTheCopiedFiles)")
	}
	if err := vendored.Same(Dir(), shared); err != nil {
		t.Fatal(err)
	}
}

func TestAPICredentialFailsOnADirectoryWithoutRecordings(t *testing.T) {
	if _, err := APICredential(t.TempDir()); err == nil {
		t.Fatal("APICredential of an empty directory returned no error")
	}
}
