package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// A local bot that cannot start says why; it used to panic closing a nil
// Local and lose the real error.
func TestStartLocalReportsItsStartupError(t *testing.T) {
	env := map[string]string{"CREDBOT_POLICY_DIR": t.TempDir() + "/missing"}
	l, err := StartLocal(context.Background(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler), Deps{})
	if err == nil {
		l.Close()
		t.Fatal("a local bot started without a policy")
	}
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("the error does not say what is wrong: %v", err)
	}
}
