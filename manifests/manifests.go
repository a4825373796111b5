// Package manifests holds credbot's Slack app manifests, one per transport:
// http.yaml (Request URLs, signed HTTP) and socket.yaml (Socket Mode). Create
// the Slack app from one of them; README.md says how.
package manifests

import "embed"

// The manifests in FS.
const (
	HTTP   = "http.yaml"
	Socket = "socket.yaml"
)

// FS holds the manifests.
//
//go:embed http.yaml socket.yaml
var FS embed.FS
