package approval

import (
	"strings"
	"testing"
)

func TestRotatedName(t *testing.T) {
	long := strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"ci":              "ci-r2",
		"ci-r2":           "ci-r3",
		"ci-r9":           "ci-r10",
		"ci-r1":           "ci-r1-r2", // -r1 is not one of ours: rotations start at -r2
		"ci-rx":           "ci-rx-r2",
		long:              strings.Repeat("a", 61) + "-r2",
		long[:61] + "-r9": long[:60] + "-r10",
	} {
		got := RotatedName(in)
		if got != want {
			t.Errorf("RotatedName(%q) = %q, want %q", in, got, want)
		}
		if err := ValidateName(got); err != nil {
			t.Errorf("RotatedName(%q) = %q is not a valid name: %v", in, got, err)
		}
	}
}
