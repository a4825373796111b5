package tools

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// prometheusRule is the part of prometheus-operator's PrometheusRule the
// chart uses; its CRD types are not in client-go's scheme. Decoding is strict,
// so a misspelt field fails here rather than being pruned by the API server.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec ruleSpec `json:"spec"`
}

// ruleSpec is also the format of a Prometheus rule file.
type ruleSpec struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// alertValues maps each alert to its key under metrics.prometheusRule, and
// the severities its rules carry.
var alertValues = []struct {
	alert, key string
	severities []string
}{
	{"CredbotDown", "down", []string{"critical"}},
	{"CredbotDependencyDown", "dependencyDown", []string{"critical", "warning"}},
	{"CredbotQueueStuck", "queueStuck", []string{"critical"}},
	{"CredbotMintFailures", "mintFailures", []string{"warning"}},
	{"CredbotPolicyBroken", "policyBroken", []string{"warning"}},
	{"CredbotBTPRateLimited", "btpRateLimited", []string{"warning"}},
	{"CredbotUnrevealedSecretsRevoked", "unrevealedSecretsRevoked", []string{"info"}},
	{"CredbotUnmanagedCredentials", "unmanagedCredentials", []string{"info"}},
}

// checkPrometheusRule: the PrometheusRule is rendered exactly when asked for
// and served, every expression is scoped to this release's series (by
// default the job and namespace labels the ServiceMonitor's scrape gives
// them: job is the Service's name), and every alert has what on-call needs.
func checkPrometheusRule(t *testing.T, r *rendered, svc *corev1.Service, withOperator bool) {
	t.Helper()
	v := r.values
	want := withOperator && lookup(v, "metrics", "prometheusRule", "enabled") == true
	if (r.rule != nil) != want {
		t.Errorf("PrometheusRule rendered = %v, want %v", r.rule != nil, want)
	}
	pr := r.rule
	if pr == nil {
		return
	}
	if pr.Metadata.Namespace != namespace || pr.Metadata.Labels["app.kubernetes.io/instance"] != releaseName {
		t.Errorf("PrometheusRule metadata %+v", pr.Metadata)
	}
	extra, _ := lookup(v, "metrics", "prometheusRule", "labels").(map[string]any)
	for k, val := range extra {
		if pr.Metadata.Labels[k] != val {
			t.Errorf("PrometheusRule label %s = %q, want %q", k, pr.Metadata.Labels[k], val)
		}
	}

	sel := map[string]string{"job": svc.Name, "namespace": namespace}
	if custom, _ := lookup(v, "metrics", "prometheusRule", "selector").(map[string]any); len(custom) > 0 {
		sel = map[string]string{}
		for k, val := range custom {
			sel[k] = val.(string)
		}
	}
	alertLabels, _ := lookup(v, "metrics", "prometheusRule", "alertLabels").(map[string]any)
	runbook := str(v, "metrics", "prometheusRule", "runbookUrl")
	severities := map[string][]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			for k, val := range sel {
				if m := fmt.Sprintf("%s=%q", k, val); !strings.Contains(rule.Expr, m) {
					t.Errorf("%s: %s is not scoped by %s", rule.Alert, rule.Expr, m)
				}
			}
			sev := rule.Labels["severity"]
			if !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("%s: severity %q", rule.Alert, sev)
			}
			severities[rule.Alert] = append(severities[rule.Alert], sev)
			for k, val := range alertLabels {
				if rule.Labels[k] != val {
					t.Errorf("%s: label %s = %q, want %q", rule.Alert, k, rule.Labels[k], val)
				}
			}
			for _, a := range []string{"summary", "description"} {
				text := rule.Annotations[a]
				if len(text) < 20 || strings.Contains(text, "<no value>") || strings.Contains(text, "%!") {
					t.Errorf("%s: %s %q", rule.Alert, a, text)
				}
			}
			if wantURL := runbook + "#" + strings.ToLower(rule.Alert); runbook != "" && rule.Annotations["runbook_url"] != wantURL {
				t.Errorf("%s: runbook_url %q, want %q", rule.Alert, rule.Annotations["runbook_url"], wantURL)
			} else if _, has := rule.Annotations["runbook_url"]; runbook == "" && has {
				t.Errorf("%s: a runbook_url without metrics.prometheusRule.runbookUrl", rule.Alert)
			}
		}
	}
	for _, a := range alertValues {
		wantSev := a.severities
		if lookup(v, "metrics", "prometheusRule", a.key, "enabled") != true {
			wantSev = nil
		}
		got := severities[a.alert]
		slices.Sort(got)
		if !slices.Equal(got, wantSev) {
			t.Errorf("%s: rules with severities %v, want %v", a.alert, got, wantSev)
		}
	}
}

// TestPrometheusRuleAlertsFire runs testdata/prometheusrule-alerts.yaml,
// promtool's unit tests of the rendered alerts against made-up series: each
// alert fires when it should, for this release's series only. promtool is in
// Debian's prometheus package; without it the test is skipped.
func TestPrometheusRuleAlertsFire(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus): the alerts' expressions are not evaluated")
	}
	r, err := render(t, "1.31.0", []string{prometheusRuleAPI}, []string{filepath.Join(chartDir, "ci", "http-values.yaml")},
		map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.rule == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("promtool %s:\n%s", strings.Join(args, " "), out)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, v any) {
		t.Helper()
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The rules as rendered: syntax, and the annotations' templates.
	write("rules.yaml", r.rule.Spec)
	run("check", "rules", "rules.yaml")

	// The unit tests compare labels only: the annotations' wording belongs
	// to the helm-unittest suite.
	spec := r.rule.Spec
	for _, g := range spec.Groups {
		for i := range g.Rules {
			g.Rules[i].Annotations = nil
		}
	}
	write("rules.yaml", spec)
	tests, err := os.ReadFile(filepath.Join("testdata", "prometheusrule-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	run("test", "rules", "tests.yaml")
}

// TestNotesOnPrometheusRuleSelector: when the chart's ServiceMonitor is off
// and no selector is set, NOTES.txt says which labels the alerts expect.
func TestNotesOnPrometheusRuleSelector(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metrics  map[string]any
		wantNote bool
	}{
		{"own scrape, default selector", map[string]any{"prometheusRule": map[string]any{"enabled": true}}, true},
		{"own scrape, own selector", map[string]any{"prometheusRule": map[string]any{"enabled": true, "selector": map[string]any{"app": "credbot"}}}, false},
		{"chart's ServiceMonitor", map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, "1.31.0", []string{serviceMonitorAPI, prometheusRuleAPI}, []string{filepath.Join(chartDir, "ci", "http-values.yaml")},
				map[string]any{"metrics": tc.metrics})
			if err != nil {
				t.Fatal(err)
			}
			note := `NOTE: the alerts select job="rel-credbot", namespace="bots"`
			if got := strings.Contains(r.notes, note); got != tc.wantNote {
				t.Errorf("NOTES has %q = %v, want %v:\n%s", note, got, tc.wantNote, r.notes)
			}
			if strings.Contains(r.notes, "WARNING: metrics.prometheusRule") {
				t.Errorf("NOTES warn although the CRD is served:\n%s", r.notes)
			}
		})
	}
}
