package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// pauseUsage is printed for --help and after a bad argument.
const pauseUsage = `usage: credbot pause DURATION

Waits DURATION (a Go duration: 5s, 1m, 1500ms), then exits 0; a signal ends
the wait early, also with 0. It exists for the Helm chart's preStop hook: the
image is distroless, with no shell and no sleep(1) to exec. While the hook
waits, Kubernetes takes the terminating pod out of its Service's endpoints;
only when it returns does the bot get SIGTERM and drain, so no request is
routed to a replica that has stopped taking work.`

// pause runs `credbot pause` and returns the process's exit status: 0 after
// the wait (or --help), 2 for a missing or bad duration.
func pause(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d, help, err := parsePause(args)
	switch {
	case help:
		fmt.Fprintln(stdout, pauseUsage)
		return 0
	case err != nil:
		usage, _, _ := strings.Cut(pauseUsage, "\n")
		fmt.Fprintf(stderr, "credbot pause: %v\n%s (more: credbot pause --help)\n", err, usage)
		return 2
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return 0
}

// parsePause reads pause's one argument.
func parsePause(args []string) (d time.Duration, help bool, err error) {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		return 0, true, nil
	}
	if len(args) != 1 {
		return 0, false, fmt.Errorf("want exactly one DURATION, got %d arguments", len(args))
	}
	d, err = time.ParseDuration(args[0])
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a duration like 5s or 1m", args[0])
	}
	if d < 0 {
		return 0, false, fmt.Errorf("%q is negative", args[0])
	}
	return d, false, nil
}
