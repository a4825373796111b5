package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/credbot/credbot/internal/approval"
)

const extraRow = "\np, U0LATE, **, list, allow\n"

func TestReloadPicksUpAGoodChange(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	reg := prometheus.NewRegistry()
	e, err := Load(context.Background(), Options{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	before := e.Hash()
	if d, _ := e.Authorize(context.Background(), "U0LATE", "list", sub(gS1), ""); d.Allowed {
		t.Fatal("allowed before the change")
	}
	appendFile(t, dir, "policy.csv", extraRow)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Hash() == before {
		t.Fatal("hash unchanged")
	}
	d, _ := e.Authorize(context.Background(), "U0LATE", "list", sub(gS1), "")
	if !d.Allowed || d.PolicyHash != e.Hash() {
		t.Errorf("after reload: %+v, want allowed under %s", d, e.Hash())
	}
	if got := counter(t, reg, "credbot_policy_reloads_total", "success"); got != 2 {
		t.Errorf("successful reloads = %v, want 2", got)
	}
	// Nothing changed: no reload.
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "credbot_policy_reloads_total", "success"); got != 2 {
		t.Errorf("reloads after no change = %v, want 2", got)
	}
}

func TestReloadKeepsPolicyWhenBroken(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	reg := prometheus.NewRegistry()
	e, err := Load(context.Background(), Options{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	good := e.Hash()
	appendFile(t, dir, "policy.csv", "\np, U0LATE, globalaccount:acme*, list, allow\n")
	err = e.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "policy.csv:") {
		t.Fatalf("Reload = %v, want an error naming the line", err)
	}
	if e.Hash() != good {
		t.Error("broken policy replaced the good one")
	}
	if d, _ := e.Authorize(context.Background(), "U0READER", "list", sub(gS1), ""); !d.Allowed || d.PolicyHash != good {
		t.Errorf("old policy not in force: %+v", d)
	}
	ok, detail := e.Health()
	if ok || !strings.Contains(detail, "whole identifier") || !strings.Contains(detail, good[:12]) {
		t.Errorf("Health = %v %q", ok, detail)
	}
	if got := gauge(t, reg, "credbot_policy_healthy"); got != 0 {
		t.Errorf("healthy gauge = %v", got)
	}
	// The same broken files are reported once, not at every poll.
	_ = e.Reload(context.Background())
	if got := counter(t, reg, "credbot_policy_reloads_total", "failure"); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
	// Fixing the file recovers.
	writeFile(t, dir, "policy.csv", readFile(t, "testdata/golden/policy.csv")+extraRow)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, detail := e.Health(); !ok {
		t.Errorf("Health after fix = %v %q", ok, detail)
	}
	if got := gauge(t, reg, "credbot_policy_healthy"); got != 1 {
		t.Errorf("healthy gauge = %v", got)
	}
}

func TestReloadRevertToPolicyInForceRecovers(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	e := loadGolden(t, dir, nil)
	orig := readFile(t, dir+"/quorum.yaml")
	writeFile(t, dir, "quorum.yaml", "default: -1\n")
	if e.Reload(context.Background()) == nil {
		t.Fatal("broken quorum loaded")
	}
	writeFile(t, dir, "quorum.yaml", orig)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, d := e.Health(); !ok {
		t.Errorf("Health = %q", d)
	}
}

// configMap lays out dir as a Kubernetes ConfigMap volume: the visible names
// are symlinks into "..data", itself a symlink to a timestamped directory,
// and an update swaps "..data" atomically with a rename.
type configMap struct {
	t   *testing.T
	dir string
	gen int
}

func newConfigMap(t *testing.T, files map[string]string) *configMap {
	c := &configMap{t: t, dir: t.TempDir()}
	c.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(c.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *configMap) update(files map[string]string) {
	c.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", c.gen, c.gen)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, content := range files {
		writeFile(c.t, filepath.Join(c.dir, ts), name, content)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

func goldenFiles(t *testing.T) map[string]string {
	files := map[string]string{}
	for _, n := range []string{"model.conf", "policy.csv", "hierarchy.yaml", "quorum.yaml"} {
		files[n] = readFile(t, "testdata/golden/"+n)
	}
	return files
}

// TestRunFollowsConfigMapSwap runs the poll loop against a ConfigMap-shaped
// directory: an atomic ..data swap is picked up within a few intervals, a
// broken swap keeps the previous policy, a fixed one is taken.
func TestRunFollowsConfigMapSwap(t *testing.T) {
	files := goldenFiles(t)
	cm := newConfigMap(t, files)
	e, err := Load(context.Background(), Options{Dir: cm.dir, ReloadInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	first := e.Hash()
	files["policy.csv"] += extraRow
	cm.update(files)
	second := waitFor(t, func() bool { return e.Hash() != first }, e.Hash)
	if d, _ := e.Authorize(ctx, "U0LATE", "list", sub(gS1), ""); !d.Allowed {
		t.Errorf("new row not in force: %+v", d)
	}

	broken := map[string]string{}
	for k, v := range files {
		broken[k] = v
	}
	broken["hierarchy.yaml"] = "globalaccount: [oops\n"
	cm.update(broken)
	waitFor(t, func() bool { ok, _ := e.Health(); return !ok }, func() string { _, d := e.Health(); return d })
	if e.Hash() != second {
		t.Error("broken ConfigMap replaced the policy")
	}

	files["policy.csv"] += "p, U0LATER, **, get, allow\n"
	cm.update(files)
	waitFor(t, func() bool { ok, _ := e.Health(); return ok && e.Hash() != second }, e.Hash)
}

func waitFor(t *testing.T, cond func() bool, state func() string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; state %s", state())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return state()
}

// TestReloadInvalidatesIndex: decisions come from an index built per policy,
// so after a reload no answer of the old policy survives, in either direction.
func TestReloadInvalidatesIndex(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	e := loadGolden(t, dir, goldenDirectory())
	ctx := context.Background()
	ask := func(user string, act approval.Action, scope approval.Scope) bool {
		d, err := e.Authorize(ctx, user, act, scope, "")
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	if !ask("U0READER", "list", sub(gS1)) || ask("U0READER", "list", sub(gS4)) {
		t.Fatal("unexpected starting point")
	}
	if got, _ := e.Approvers(ctx, sub(gS1)); !contains(got, "U0APR") {
		t.Fatalf("approvers %v", got)
	}
	// Move S4 into the hierarchy, revoke the reader role and U0APR's approval.
	writeFile(t, dir, "hierarchy.yaml", readFile(t, dir+"/hierarchy.yaml")+"  - subaccount: "+gS4+"\n")
	csv := strings.Replace(readFile(t, dir+"/policy.csv"), "g, U0READER, role:reader, globalaccount:acme\n", "", 1)
	csv = strings.Replace(csv, "g, U0APR, role:approver, globalaccount:acme\n", "", 1)
	writeFile(t, dir, "policy.csv", csv+"p, U0ANY, subaccount:"+gS4+", create, allow\n")
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ask("U0READER", "list", sub(gS1)) {
		t.Error("revoked role still allows")
	}
	if !ask("U0ANY", "create", sub(gS4)) {
		t.Error("new row not in force")
	}
	if got, _ := e.Approvers(ctx, sub(gS1)); contains(got, "U0APR") {
		t.Errorf("approvers still list U0APR: %v", got)
	}
	if q, _ := e.Quorum(ctx, sub(gS3), []string{"U0APR"}); q.Have != 0 {
		t.Errorf("revoked approver still counts: %+v", q)
	}
}

// TestIdentityCacheTTL: Slack answers are reused until the TTL, then asked
// again, so a user removed from a group loses its rights within the TTL.
func TestIdentityCacheTTL(t *testing.T) {
	d := goldenDirectory()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, err := Load(context.Background(), Options{Dir: "testdata/golden", Directory: d, DirectoryTTL: time.Minute, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if dec, _ := e.Authorize(ctx, "U0AUD", "get", sub(gS1), ""); !dec.Allowed {
			t.Fatal("auditor denied")
		}
	}
	groups := len(e.snap.Load().groups)
	if d.userCalls != 1 || d.groupCalls != groups {
		t.Errorf("calls: users %d groups %d, want 1 and %d", d.userCalls, d.groupCalls, groups)
	}
	d.group("auditors") // removed from the group
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	if dec, _ := e.Authorize(ctx, "U0AUD", "get", sub(gS1), ""); !dec.Allowed {
		t.Error("cache expired early")
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if dec, _ := e.Authorize(ctx, "U0AUD", "get", sub(gS1), ""); dec.Allowed {
		t.Error("removed member still allowed after the TTL")
	}
}

func TestConcurrentDecisionsDuringReload(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	e := loadGolden(t, dir, goldenDirectory())
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := e.Authorize(ctx, "U0AUD", "get", sub(gS1), "")
				if err != nil || !d.Allowed || d.PolicyHash == "" {
					t.Errorf("decision %+v %v", d, err)
					return
				}
				_, _ = e.Quorum(ctx, sub(gS3), []string{"U0APR", "U0AUD"})
			}
		}()
	}
	for i := range 20 {
		appendFile(t, dir, "policy.csv", fmt.Sprintf("p, U0X%d, **, list, allow\n", i))
		if err := e.Reload(ctx); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestMetricsNeedOwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := Load(context.Background(), Options{Dir: "testdata/golden", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), Options{Dir: "testdata/golden", Registerer: reg}); err == nil {
		t.Error("second engine registered the same metrics")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func appendFile(t *testing.T, dir, name, s string) {
	t.Helper()
	writeFile(t, dir, name, readFile(t, filepath.Join(dir, name))+s)
}

func metric(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	for _, m := range metric(t, reg, name) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return metric(t, reg, name)[0].GetGauge().GetValue()
}

// TestReloadResolvesNewGroupsAtOnce: resolved names are cached per policy, so
// a group that a new policy mentions counts at once, not after the TTL.
func TestReloadResolvesNewGroupsAtOnce(t *testing.T) {
	dir := copyPolicy(t, "testdata/golden")
	d := goldenDirectory().group("newcomers", "U0NEW")
	e, err := Load(context.Background(), Options{Dir: dir, Directory: d, DirectoryTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if dec, _ := e.Authorize(ctx, "U0NEW", "list", sub(gS1), ""); dec.Allowed {
		t.Fatal("allowed before the change")
	}
	appendFile(t, dir, "policy.csv", "p, group:newcomers, **, list, allow\n")
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if dec, _ := e.Authorize(ctx, "U0NEW", "list", sub(gS1), ""); !dec.Allowed {
		t.Errorf("new group row not applied: %s", dec.Reason)
	}
}
