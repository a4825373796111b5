package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// --help names every command and every variable of README's configuration
// table: the two cannot drift apart.
func TestHelpListsEveryCommandAndEveryDocumentedVariable(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \\|")
	name := regexp.MustCompile("`([A-Z_]+)`")
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		for _, v := range name.FindAllStringSubmatch(m[1], -1) {
			n++
			if !strings.Contains(out.String(), " "+v[1]+" ") {
				t.Errorf("--help does not mention %s", v[1])
			}
		}
	}
	if n < 30 {
		t.Fatalf("found only %d variables in README's configuration table", n)
	}
	for _, c := range []string{"serve", "local", "doctor", "policy test", "audit verify", "load", "pause", "version"} {
		if !strings.Contains(out.String(), "  "+c+" ") {
			t.Errorf("--help does not list %q", c)
		}
	}
}

// Conventions of a well-kept Go tool: --help and --version work everywhere
// and exit 0; unknown commands and stray arguments are usage errors (exit 2),
// never served as if they were not there.
func TestTheCommandLineFollowsConventions(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}, {"help", "doctor"}, {"--version"}, {"version"},
		{"local", "--help"}, {"serve", "-h"}, {"policy", "test", "--help"}, {"doctor", "--help"}} {
		if err := run(ctx, args); err != nil {
			t.Errorf("%v: %v, want nil", args, err)
		}
	}
	if err := run(ctx, []string{"load", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("load -h: %v, want flag.ErrHelp (exit 0)", err)
	}
	for _, args := range [][]string{{"frobnicate"}, {"serve", "audit", "verify"}, {"local", "extra"}, {"doctor", "x"}, {"policy"}, {"policy", "test", "a", "b"}} {
		var ue usageError
		if err := run(ctx, args); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
	if v := version(); !strings.HasPrefix(v, "credbot ") || !strings.Contains(v, "revision ") {
		t.Errorf("version %q", v)
	}
}
