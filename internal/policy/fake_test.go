package policy

import (
	"context"
	"errors"
	"sync"
)

// fakeDirectory is a Slack directory in memory, counting calls so tests can
// see what the cache saves.
type fakeDirectory struct {
	mu         sync.Mutex
	users      map[string]Identity
	groups     map[string][]string
	err        error
	userCalls  int
	groupCalls int
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{users: map[string]Identity{}, groups: map[string][]string{}}
}

func (f *fakeDirectory) active(id, email string) *fakeDirectory {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = Identity{ID: id, Email: email, Active: true}
	return f
}

func (f *fakeDirectory) set(id Identity) *fakeDirectory {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id.ID] = id
	return f
}

func (f *fakeDirectory) group(name string, members ...string) *fakeDirectory {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[name] = members
	return f
}

func (f *fakeDirectory) User(ctx context.Context, id string) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userCalls++
	if f.err != nil {
		return Identity{}, f.err
	}
	if u, ok := f.users[id]; ok {
		return u, nil
	}
	// Unknown users are active members without an email: the common case.
	return Identity{ID: id, Active: true}, nil
}

func (f *fakeDirectory) GroupMembers(ctx context.Context, group string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groupCalls++
	if f.err != nil {
		return nil, f.err
	}
	return f.groups[group], nil
}

var errSlackDown = errors.New("slack is down")
