// Package doccheck holds the tests that keep the repository's Markdown honest:
// every relative link points at a file (and heading) that exists in the
// repository, and no link points at this repository's own files on
// github.com, which would show another branch's version or break on a fork.
// It has no code of its own; `go test ./...` runs its tests.
package doccheck
