package app

import (
	"io"
	"testing"
)

// The bot's calls out keep their connections: with Go's default transport
// (two idle connections per host) 30 loops at a time had the bot dial and
// close connections to Slack by the hundred, a TLS handshake each in
// production.
func TestOutboundCallsReuseTheirConnections(t *testing.T) {
	h := start(t, nil)
	const loops = 90
	if err := h.Load(ctxT(t), loops, 30, io.Discard); err != nil {
		t.Fatal(err)
	}
	// Every worker, and a few more callers, may hold a connection of its own.
	limit := int64(h.App.cfg.Workers + h.App.cfg.MintWorkers + 8)
	if got := h.Slack.Connections(); got > limit {
		t.Fatalf("the bot opened %d connections to Slack for %d loops, want at most %d (one per concurrent caller)", got, loops, limit)
	}
}
