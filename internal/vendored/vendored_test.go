package vendored

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sums of "a\n" and "b\n".
const sums = "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7  a.yaml\n" +
	"0263829989b6fd954f72baaf2fc64bc2e2f01d692d4de72986ea808f6e99813f  sub/b.yaml\n"

func tree(t *testing.T) (dir, sumsFile string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "data")
	write(t, filepath.Join(dir, "a.yaml"), "a\n")
	write(t, filepath.Join(dir, "sub", "b.yaml"), "b\n")
	sumsFile = filepath.Join(root, "data.sha256")
	write(t, sumsFile, sums)
	return dir, sumsFile
}

func TestCheckAcceptsTheCopiedFiles(t *testing.T) {
	dir, s := tree(t)
	if err := Check(dir, s); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReportsMissingEditedAndExtraFiles(t *testing.T) {
	dir, s := tree(t)
	if err := os.Remove(filepath.Join(dir, "sub", "b.yaml")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.yaml"), "a, edited\n")
	write(t, filepath.Join(dir, "c.yaml"), "c\n")
	err := Check(dir, s)
	if err == nil {
		t.Fatal("Check passed a copy with a missing, an edited and an extra file")
	}
	for _, want := range []string{"sub/b.yaml is missing", "a.yaml differs", "c.yaml is not in data.sha256"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestCheckFailsWhenTheCopyIsGone(t *testing.T) {
	dir, s := tree(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, s); err == nil || !strings.Contains(err.Error(), "git checkout") {
		t.Fatalf("Check of a missing directory: %v, want an error that says how to restore it", err)
	}
}

func TestCheckRejectsAMalformedOrEmptySumsFile(t *testing.T) {
	dir, s := tree(t)
	for _, body := range []string{"", "\n", "nothex  a.yaml\n", sums + sums} {
		write(t, s, body)
		if err := Check(dir, s); err == nil {
			t.Errorf("Check accepted the sums file %q", body)
		}
	}
}

func TestSameComparesNamesAndBytes(t *testing.T) {
	a, _ := tree(t)
	b, _ := tree(t)
	if err := Same(a, b); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(b, "sub", "b.yaml"), "B\n")
	write(t, filepath.Join(b, "extra"), "x")
	err := Same(a, b)
	if err == nil || !strings.Contains(err.Error(), "sub/b.yaml differs") || !strings.Contains(err.Error(), "extra is only in") {
		t.Fatalf("Same: %v", err)
	}
}
