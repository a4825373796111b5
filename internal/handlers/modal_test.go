package handlers

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/slack-go/slack"
)

// form builds modal state the way Slack reports it.
func form(v map[string]string) map[string]map[string]slack.BlockAction {
	out := map[string]map[string]slack.BlockAction{}
	for block, val := range v {
		a := slack.BlockAction{Value: val}
		if block == blockScopeKind || block == blockAccess {
			a = slack.BlockAction{SelectedOption: slack.OptionBlockObject{Value: val}}
		}
		out[block] = map[string]slack.BlockAction{inputAction: a}
	}
	return out
}

func TestCreateFormValidatesLikeTheCommand(t *testing.T) {
	good := map[string]string{blockScopeKind: "directory", blockScopeID: " 22222222-3333-4444-8555-666666666666 ",
		blockName: "nightly", blockAccess: "read-only", blockReason: " export ", blockExpiresIn: "72h"}
	sub, errs := parseCreateForm(form(good), false, time.Now())
	want := approval.Submission{Scope: approval.Scope{Kind: approval.ScopeDirectory, ID: "22222222-3333-4444-8555-666666666666"},
		Name: "nightly", ReadOnly: true, Reason: "export", ExpiresIn: 72 * time.Hour}
	if len(errs) != 0 || sub != want {
		t.Fatalf("good form: %+v %v", sub, errs)
	}
	// Optional fields may stay empty: a generated name, the longest lifetime.
	sub, errs = parseCreateForm(form(map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: "audit"}), false, time.Now())
	if len(errs) != 0 || sub.Name != "" || sub.ExpiresIn != 0 || sub.ReadOnly {
		t.Fatalf("minimal form: %+v %v", sub, errs)
	}

	for _, c := range []struct {
		in   map[string]string
		want []string // input block ids with an error
	}{
		{map[string]string{}, []string{blockScopeKind, blockReason}},
		{map[string]string{blockScopeKind: "subaccount", blockReason: "x"}, []string{blockScopeID}},
		{map[string]string{blockScopeKind: "subaccount", blockScopeID: "acme-ga", blockReason: "x"}, []string{blockScopeID}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "ACME..GA", blockReason: "x"}, []string{blockScopeID}},
		{map[string]string{blockScopeKind: "tenant", blockScopeID: "x", blockReason: "x"}, []string{blockScopeKind}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockName: "no spaces", blockReason: "x"}, []string{blockName}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: string(make([]byte, 501))}, []string{blockReason}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: "a\x00b"}, []string{blockReason}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: "x", blockAccess: "root"}, []string{blockAccess}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: "x", blockExpiresIn: "forever"}, []string{blockExpiresIn}},
		{map[string]string{blockScopeKind: "globalaccount", blockScopeID: "acme-ga", blockReason: "x", blockExpiresIn: "-3d"}, []string{blockExpiresIn}},
	} {
		_, errs := parseCreateForm(form(c.in), false, time.Now())
		if got := slices.Sorted(maps.Keys(errs)); !slices.Equal(got, slices.Sorted(slices.Values(c.want))) {
			t.Errorf("%v: errors on %v, want on %v (%v)", c.in, got, c.want, errs)
		}
	}
}

func TestCreateFormErrorsAreKeyedByInputBlocks(t *testing.T) {
	inputs := map[string]bool{}
	for _, b := range createModal(Command{}).Blocks.BlockSet {
		if in, ok := b.(*slack.InputBlock); ok {
			inputs[in.BlockID] = true
		}
	}
	_, errs := parseCreateForm(form(map[string]string{blockScopeKind: "subaccount", blockScopeID: "x", blockName: "a b", blockAccess: "x", blockExpiresIn: "x"}), false, time.Now())
	for k := range errs {
		if !inputs[k] {
			t.Errorf("error keyed by %q, which is not an input block of the modal: Slack would show a generic error", k)
		}
	}
}
