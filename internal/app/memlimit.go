package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// A burst of Slack deliveries (1,000 in flight) grows the heap, and Go's
// collector lets the process grow to about twice its live heap before it
// collects: in a container with a memory limit that can be the OOM killer's
// cue. Unless GOMEMLIMIT says otherwise, serve gives the runtime a soft limit
// of 90% of the container's memory limit (its cgroup's), so that the
// collector works harder near the limit instead. Measured with `load -burst`
// (20,000 commands, 1,000 in flight, the sender in a process of its own):
// peak RSS 126-128 MB without a limit, 113 MB with GOMEMLIMIT=100MiB, every
// command still acked within Slack's 3 s.

// memoryLimitShare is the part of the container's limit given to the runtime;
// the rest is for what the runtime does not count (the binary, C stacks).
const memoryLimitShare = 0.9

// cgroupMemoryLimit reads the memory limit of the cgroup this process runs
// in, below root ("/" in production): cgroup v2's memory.max, else cgroup v1's
// memory.limit_in_bytes. ok is false when there is none (or it is unlimited).
func cgroupMemoryLimit(root string) (limit int64, ok bool) {
	for _, f := range []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		// cgroup v1 says "unlimited" with a number near the largest page-aligned int64.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// ApplyMemoryLimit sets the runtime's soft memory limit from the container's,
// unless GOMEMLIMIT is set (the runtime has read it already). It says what it
// did, for whoever wonders why the collector runs more often near the limit.
func ApplyMemoryLimit(getenv func(string) string, root string, log *slog.Logger) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "gomemlimit", v)
		return
	}
	limit, ok := cgroupMemoryLimit(root)
	if !ok {
		return
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("memory limit set to 90% of the container's", "container_limit_bytes", limit, "soft_limit_bytes", soft,
		"fix", "set GOMEMLIMIT to choose another (e.g. GOMEMLIMIT=200MiB)")
}
