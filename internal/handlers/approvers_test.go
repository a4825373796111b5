package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/policy"
)

// grants is a Policy that allows exactly the listed user/action pairs.
type grants struct {
	allow map[string]bool // "U…/action"
	err   error
}

func (g *grants) Authorize(_ context.Context, user string, act approval.Action, _ approval.Scope, _ string) (approval.Decision, error) {
	if g.err != nil {
		return approval.Decision{}, g.err
	}
	return approval.Decision{Allowed: g.allow[user+"/"+string(act)]}, nil
}

func (g *grants) Explain(context.Context, string, approval.Action, approval.Scope, string) (policy.Explanation, error) {
	return policy.Explanation{}, nil
}

func (g *grants) Approvers(context.Context, approval.Scope) ([]string, error) {
	return []string{"U0SECRETAPPROVER"}, nil
}

func (g *grants) Quorum(context.Context, approval.Scope, []string) (approval.QuorumStatus, error) {
	return approval.QuorumStatus{Need: 1}, nil
}

// TestApproversOnlyForThoseWhoMayRequestOrGet: who approves where is a
// phishing list; /credbot approvers answers only those who may create or get
// credentials in the scope.
func TestApproversOnlyForThoseWhoMayRequestOrGet(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	p := &grants{allow: map[string]bool{"U0REQ/create": true, "U0READER/get": true}}
	s := NewServer(refuser{}, Config{Policy: p, ResponseHosts: []string{mustHost(t, hook.URL)}})
	defer s.Close()
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	ask := func(user string) string {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		s.listApprovers(context.Background(), origin{user: user, responseURL: hook.URL + "/commands/1"}, scope)
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 1 {
			t.Fatalf("%s: %d replies", user, len(bodies))
		}
		return bodies[0]
	}
	for user, listed := range map[string]bool{"U0REQ": true, "U0READER": true, "U0OUT": false, "U0APPROVERONLY": false} {
		got := ask(user)
		if strings.Contains(got, "U0SECRETAPPROVER") != listed {
			t.Errorf("%s: listed=%v, want %v: %s", user, !listed, listed, got)
		}
		if !listed && !strings.Contains(got, "only if you may request or look up credentials there") {
			t.Errorf("%s: refusal does not say why: %s", user, got)
		}
	}
	p.err = errors.New("slack is down")
	if got := ask("U0REQ"); strings.Contains(got, "U0SECRETAPPROVER") || !strings.Contains(got, ":warning:") {
		t.Errorf("policy error: %s", got)
	}
}
