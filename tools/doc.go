// Package tools pins the chart tooling (helm, helm-unittest) in a module of
// its own, so the bot's go.mod never sees Kubernetes dependencies, and holds
// the tests that check the chart and the Dockerfile against the Kubernetes API
// types.
//
// Run from this directory:
//
//	go tool helm lint --strict --kube-version 1.31.0 ../helm/credbot -f ../helm/credbot/ci/http-values.yaml
//	go tool helm-unittest ../helm/credbot
//	go test ./...
//
// or everything at once, from the repository root: bash tools/chart-check.sh
package tools
