package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestLinesLoggedWithAContextCarryItsAttributes(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&out, nil)))
	ctx := With(context.Background(), "user", "U1", "trigger", "")
	ctx = With(ctx, "request_id", "r0123456789ab")
	log.InfoContext(ctx, "approved", "request_id", "r0123456789ab")
	log.With("replica", "a").WarnContext(ctx, "again")
	log.Info("no context")
	var lines []map[string]any
	for _, b := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if lines[0]["user"] != "U1" || lines[0]["request_id"] != "r0123456789ab" || lines[0]["trigger"] != nil {
		t.Errorf("first line %v: want user and request_id once, no empty trigger", lines[0])
	}
	if bytes.Count(out.Bytes(), []byte(`"request_id"`)) != 2 {
		t.Errorf("a key the line has itself was repeated: %s", out.String())
	}
	if lines[1]["replica"] != "a" || lines[1]["user"] != "U1" {
		t.Errorf("second line %v", lines[1])
	}
	if lines[2]["user"] != nil {
		t.Errorf("a line without the context got its attributes: %v", lines[2])
	}
}
