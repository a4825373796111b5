package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimitComesFromTheContainersCgroup(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                int64
		ok                  bool
	}{
		{"cgroup v2 limit", "sys/fs/cgroup/memory.max", "268435456\n", 268435456, true},
		{"cgroup v2 unlimited", "sys/fs/cgroup/memory.max", "max\n", 0, false},
		{"cgroup v1 limit", "sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728\n", 134217728, true},
		{"cgroup v1 unlimited", "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n", 0, false},
		{"garbage", "sys/fs/cgroup/memory.max", "lots\n", 0, false},
		{"no cgroup", "", "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.file != "" {
				p := filepath.Join(root, c.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := cgroupMemoryLimit(root)
			if got != c.want || ok != c.ok {
				t.Fatalf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestServeSetsTheSoftMemoryLimitUnlessGOMEMLIMITIsSet(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	root := t.TempDir()
	p := filepath.Join(root, "sys/fs/cgroup/memory.max")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("268435456\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	ApplyMemoryLimit(func(string) string { return "" }, root, log)
	container := int64(268435456)
	if got, want := debug.SetMemoryLimit(-1), int64(float64(container)*memoryLimitShare); got != want {
		t.Fatalf("soft memory limit %d, want %d (90%% of the container's 256 MiB)", got, want)
	}
	if !strings.Contains(logs.String(), "soft_limit_bytes=") {
		t.Fatalf("no log line says what was set: %s", logs.String())
	}

	debug.SetMemoryLimit(before)
	ApplyMemoryLimit(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	}, root, log)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("with GOMEMLIMIT set the limit moved to %d", got)
	}
}
