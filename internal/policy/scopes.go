package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/credbot/credbot/internal/approval"
)

// HierarchyScopes returns the scopes hierarchy.yaml in dir names, each after
// its parent (none without the file): local mode's emulator knows them all.
func HierarchyScopes(dir string) ([]approval.Scope, error) {
	b, err := os.ReadFile(filepath.Join(dir, hierarchyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := &snapshot{paths: map[string][]string{}}
	var errs errorList
	s.parseHierarchy(b, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return s.scopes(), nil
}

func (s *snapshot) scopes() []approval.Scope {
	type entry struct {
		path  string
		scope approval.Scope
	}
	all := make([]entry, 0, len(s.paths))
	for key, path := range s.paths {
		sc, err := approval.ParseScope(key)
		if err != nil {
			continue
		}
		all = append(all, entry{strings.Join(path, "/"), sc})
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	out := make([]approval.Scope, len(all))
	for i, e := range all {
		out[i] = e.scope
	}
	return out
}
