package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../helm/credbot"
	releaseName = "rel"
	namespace   = "bots"
	// The oldest Kubernetes the chart promises (Chart.yaml kubeVersion) and a
	// current one.
	serviceMonitorAPI = "monitoring.coreos.com/v1/ServiceMonitor"
	prometheusRuleAPI = "monitoring.coreos.com/v1/PrometheusRule"
)

var kubeVersions = []string{"1.27.0", "1.31.0"}

// rendered is one release as `helm template` prints it, decoded strictly
// into the Kubernetes API types.
type rendered struct {
	values map[string]any
	notes  string
	// objects by "Kind/name"; raw keeps each document's text.
	objects map[string]runtime.Object
	raw     map[string]string
	monitor *serviceMonitor
	rule    *prometheusRule
}

// serviceMonitor is the part of prometheus-operator's type the chart uses;
// its CRD types are not in client-go's scheme.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector          struct{ MatchLabels map[string]string } `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// render runs what `helm template` runs, in process.
func render(t *testing.T, kubeVersion string, apiVersions []string, valueFiles []string, override map[string]any) (*rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	opts := values.Options{ValueFiles: valueFiles}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range override {
		vals[k] = v
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &action.Configuration{Releases: storage.Init(driver.NewMemory()), Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun, install.DryRunOption, install.ClientOnly, install.Replace = true, "true", true, true
	install.ReleaseName, install.Namespace = releaseName, namespace
	install.KubeVersion, install.APIVersions = kv, chartutil.VersionSet(apiVersions)
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{values: mergedValues(t, chrt.Values, vals), notes: rel.Info.Notes, objects: map[string]runtime.Object{}, raw: map[string]string{}}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var typeMeta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &typeMeta); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if typeMeta.APIVersion+"/"+typeMeta.Kind == serviceMonitorAPI {
			var sm serviceMonitor
			if err := yaml.UnmarshalStrict([]byte(doc), &sm); err != nil {
				t.Fatalf("ServiceMonitor: %v\n%s", err, doc)
			}
			r.monitor = &sm
			continue
		}
		if typeMeta.APIVersion+"/"+typeMeta.Kind == prometheusRuleAPI {
			var pr prometheusRule
			if err := yaml.UnmarshalStrict([]byte(doc), &pr); err != nil {
				t.Fatalf("PrometheusRule: %v\n%s", err, doc)
			}
			r.rule = &pr
			continue
		}
		obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("strict decoding: %v\n%.1500s", err, doc)
		}
		name := obj.(interface{ GetName() string }).GetName()
		key := gvk.Kind + "/" + name
		if _, dup := r.objects[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		r.objects[key], r.raw[key] = obj, doc
	}
	return r, nil
}

// mergedValues is what the templates saw: the chart's defaults under the
// user's values.
func mergedValues(t *testing.T, defaults, user map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(user)
	if err != nil {
		t.Fatal(err)
	}
	var copied map[string]any
	if err := json.Unmarshal(b, &copied); err != nil {
		t.Fatal(err)
	}
	return chartutil.CoalesceTables(copied, defaults)
}

func get[T runtime.Object](t *testing.T, r *rendered, key string) T {
	t.Helper()
	obj, ok := r.objects[key]
	if !ok {
		t.Fatalf("%s not rendered; have %v", key, keys(r.objects))
	}
	typed, ok := obj.(T)
	if !ok {
		t.Fatalf("%s is %T", key, obj)
	}
	return typed
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func str(m map[string]any, path ...string) string {
	s, _ := lookup(m, path...).(string)
	return s
}

type scenario struct {
	name     string
	files    []string
	override func(t *testing.T) map[string]any
}

func scenarios() []scenario {
	ci, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	var out []scenario
	for _, f := range ci {
		out = append(out, scenario{name: filepath.Base(f), files: []string{f}})
	}
	// The policy the repository ships, inline: real file names and content
	// must survive the ConfigMap byte for byte.
	out = append(out, scenario{name: "shipped-policy", files: []string{filepath.Join(chartDir, "ci", "http-values.yaml")},
		override: func(t *testing.T) map[string]any {
			return map[string]any{"policies": map[string]any{"files": shippedPolicy(t)}}
		}})
	// A slow drain: the grace period must add up compound durations and
	// round milliseconds up.
	out = append(out, scenario{name: "slow-drain", files: []string{filepath.Join(chartDir, "ci", "socket-values.yaml")},
		override: func(t *testing.T) map[string]any {
			return map[string]any{"drain": map[string]any{"preStopDelay": "1500ms", "timeout": "1m30s"}}
		}})
	return out
}

// shippedPolicy reads ../policies as the bot reads it: every file it loads
// (model.conf, hierarchy.yaml, quorum.yaml, *.csv) plus the policy tests.
func shippedPolicy(t *testing.T) map[string]any {
	t.Helper()
	ents, err := os.ReadDir("../policies")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]any{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("../policies", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	if files["model.conf"] == nil {
		t.Fatal("../policies has no model.conf")
	}
	return files
}

// TestChartRendersValidKubernetesObjects renders every example release on the
// oldest and a current Kubernetes, with and without prometheus-operator, and
// holds each to the API types and to the chart's promises.
func TestChartRendersValidKubernetesObjects(t *testing.T) {
	for _, sc := range scenarios() {
		for _, kv := range kubeVersions {
			for _, withMonitor := range []bool{false, true} {
				name := fmt.Sprintf("%s/k8s-%s/prometheus-operator=%v", sc.name, kv, withMonitor)
				t.Run(name, func(t *testing.T) {
					var apis []string
					if withMonitor {
						apis = []string{serviceMonitorAPI, prometheusRuleAPI}
					}
					var override map[string]any
					if sc.override != nil {
						override = sc.override(t)
					}
					r, err := render(t, kv, apis, sc.files, override)
					if err != nil {
						t.Fatal(err)
					}
					checkRelease(t, r, withMonitor)
				})
			}
		}
	}
}

func checkRelease(t *testing.T, r *rendered, withMonitor bool) {
	full := releaseName + "-credbot"
	v := r.values
	dep := get[*appsv1.Deployment](t, r, "Deployment/"+full)
	pod := dep.Spec.Template
	podLabels := labels.Set(pod.Labels)

	for key, obj := range r.objects {
		meta := obj.(interface {
			GetLabels() map[string]string
			GetNamespace() string
		})
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if meta.GetLabels()[l] == "" {
				t.Errorf("%s: no label %s", key, l)
			}
		}
		if meta.GetNamespace() != namespace {
			t.Errorf("%s: namespace %q", key, meta.GetNamespace())
		}
	}

	// The pod's security posture (restricted Pod Security Standard).
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v", psc)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext = %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes are not /healthz (liveness) and /readyz (readiness)")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory request or limit")
	}

	// Mounts: /tmp writable, no subPath anywhere, every volume used.
	volumes := map[string]corev1.Volume{}
	for _, vol := range pod.Spec.Volumes {
		volumes[vol.Name] = vol
	}
	mounted := map[string]string{}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volumeMount %s uses subPath: it would never see updates", m.Name)
		}
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volumeMount %s has no volume", m.Name)
		}
		mounted[m.MountPath] = m.Name
	}
	if tmp := volumes[mounted["/tmp"]]; tmp.EmptyDir == nil {
		t.Error("/tmp is not an emptyDir")
	}

	// Environment: no duplicates, secrets only by reference, every reference
	// resolvable.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		env[e.Name] = e
	}
	chartSecret, hasChartSecret := r.objects["Secret/"+full].(*corev1.Secret)
	existing := map[string]bool{}
	for _, group := range []string{"slack", "btp", "secretKey", "redis"} {
		if n := str(v, group, "existingSecret"); n != "" {
			existing[n] = true
		}
	}
	checkRef := func(what, secret, key string) {
		switch {
		case secret == full:
			if !hasChartSecret {
				t.Errorf("%s refers to the chart's Secret, which is not rendered", what)
			} else if _, ok := chartSecret.Data[key]; !ok {
				t.Errorf("%s refers to key %s, not in the chart's Secret (%v)", what, key, keys(chartSecret.Data))
			}
		case !existing[secret]:
			t.Errorf("%s refers to Secret %s, neither rendered nor named in values", what, secret)
		}
	}
	for _, name := range []string{"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "CREDBOT_SECRET_KEY", "REDIS_URL", "BTP_PASSWORD", "BTP_ASSERTION"} {
		e, ok := env[name]
		if !ok {
			continue
		}
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s is not taken from a Secret", name)
			continue
		}
		checkRef(name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
	}
	for _, vol := range volumes {
		if vol.Secret != nil {
			for _, item := range vol.Secret.Items {
				checkRef("volume "+vol.Name, vol.Secret.SecretName, item.Key)
			}
		}
	}

	// Shutdown: the preStop hook execs the image's binary (no shell, no
	// sleep), and the grace period, counted from the deletion, outlasts the
	// pause and the drain with time to exit.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop exec hook")
	}
	hook := c.Lifecycle.PreStop.Exec.Command
	if len(hook) != 3 || hook[0] != imageBinary(t) || hook[1] != "pause" {
		t.Fatalf("preStop runs %q, want [%s pause DURATION]", hook, imageBinary(t))
	}
	pauseFor, err := time.ParseDuration(hook[2])
	if err != nil || pauseFor != mustDuration(t, str(v, "drain", "preStopDelay")) {
		t.Errorf("preStop pauses %q, want drain.preStopDelay %q", hook[2], str(v, "drain", "preStopDelay"))
	}
	drain := mustDuration(t, env["CREDBOT_DRAIN_TIMEOUT"].Value)
	if env["CREDBOT_DRAIN_TIMEOUT"].Value != str(v, "drain", "timeout") {
		t.Errorf("CREDBOT_DRAIN_TIMEOUT = %q, want drain.timeout %q", env["CREDBOT_DRAIN_TIMEOUT"].Value, str(v, "drain", "timeout"))
	}
	if pod.Spec.TerminationGracePeriodSeconds == nil {
		t.Error("no terminationGracePeriodSeconds")
	} else if grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second; grace < pauseFor+drain+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v does not cover the pause (%v), the drain (%v) and 10 s to exit", grace, pauseFor, drain)
	}

	mode := str(v, "mode")
	_, app := env["SLACK_APP_TOKEN"]
	_, signing := env["SLACK_SIGNING_SECRET"]
	if mode == "socket" && (!app || signing) || mode == "http" && (app || !signing) {
		t.Errorf("mode %s with SLACK_APP_TOKEN=%v SLACK_SIGNING_SECRET=%v", mode, app, signing)
	}
	if mode == "socket" {
		surge := dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue()
		if int(*dep.Spec.Replicas)+surge > 10 {
			t.Errorf("Socket Mode rollout may open %d connections; Slack allows 10", int(*dep.Spec.Replicas)+surge)
		}
	}

	// The policy directory.
	policyVol := volumes[mounted[env["CREDBOT_POLICY_DIR"].Value]]
	if policyVol.ConfigMap == nil {
		t.Fatalf("CREDBOT_POLICY_DIR %q is not a mounted ConfigMap", env["CREDBOT_POLICY_DIR"].Value)
	}
	if cmName := str(v, "policies", "existingConfigMap"); cmName != "" {
		if policyVol.ConfigMap.Name != cmName {
			t.Errorf("policy volume is %s, want %s", policyVol.ConfigMap.Name, cmName)
		}
	} else {
		cm := get[*corev1.ConfigMap](t, r, "ConfigMap/"+policyVol.ConfigMap.Name)
		if cm.Immutable == nil || !*cm.Immutable {
			t.Error("the inline policy ConfigMap is not immutable")
		}
		want, _ := lookup(v, "policies", "files").(map[string]any)
		if len(cm.Data) != len(want) {
			t.Errorf("ConfigMap has %v, want %v", keys(cm.Data), keys(want))
		}
		size := 0
		for name, content := range want {
			if cm.Data[name] != content {
				t.Errorf("ConfigMap changed %s: %.300q…, want %.300q…", name, cm.Data[name], content)
			}
			size += len(name) + len(content.(string))
		}
		if size > 1<<20 {
			t.Errorf("policy is %d bytes; a ConfigMap holds 1 MiB", size)
		}
		if pod.Annotations["checksum/policies"] == "" {
			t.Error("no checksum/policies annotation for an inline policy")
		}
	}

	// Selectors find the pods.
	svc := get[*corev1.Service](t, r, "Service/"+full)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Error("the Service does not select the pods")
	}
	if svc.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name {
		t.Error("the Service does not target the container port")
	}
	if pdb, ok := r.objects["PodDisruptionBudget/"+full].(*policyv1.PodDisruptionBudget); ok {
		if *dep.Spec.Replicas < 2 {
			t.Error("a PDB on a single replica blocks node drains")
		}
		if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
			t.Error("the PDB does not select the pods")
		}
	} else if *dep.Spec.Replicas > 1 && lookup(v, "podDisruptionBudget", "enabled") == true {
		t.Error("no PDB for several replicas")
	}
	if np, ok := r.objects["NetworkPolicy/"+full].(*networkingv1.NetworkPolicy); ok {
		if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(podLabels) {
			t.Error("the NetworkPolicy does not select the pods")
		}
		var egressPorts []int
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				egressPorts = append(egressPorts, p.Port.IntValue())
			}
		}
		for _, want := range []int{53, 6379, 443} {
			if !slices.Contains(egressPorts, want) {
				t.Errorf("the NetworkPolicy does not let port %d out (%v)", want, egressPorts)
			}
		}
	}
	if ing, ok := r.objects["Ingress/"+full].(*networkingv1.Ingress); ok {
		if mode != "http" {
			t.Error("an Ingress in Socket Mode")
		}
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service.Name != svc.Name || p.Backend.Service.Port.Name != svc.Spec.Ports[0].Name {
					t.Errorf("Ingress path %s does not reach the Service", p.Path)
				}
				if !strings.HasPrefix(p.Path, "/slack") {
					t.Errorf("Ingress exposes %s, not only Slack's Request URLs", p.Path)
				}
			}
		}
	}
	wantMonitor := withMonitor && lookup(v, "metrics", "serviceMonitor", "enabled") == true
	if (r.monitor != nil) != wantMonitor {
		t.Errorf("ServiceMonitor rendered = %v, want %v", r.monitor != nil, wantMonitor)
	}
	if r.monitor != nil {
		if !labels.SelectorFromSet(r.monitor.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
			t.Error("the ServiceMonitor does not select the Service")
		}
		if r.monitor.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
			t.Error("the ServiceMonitor scrapes another port")
		}
	}
	checkPrometheusRule(t, r, svc, withMonitor)
	if sa := str(v, "serviceAccount", "name"); lookup(v, "serviceAccount", "create") == true {
		acct := get[*corev1.ServiceAccount](t, r, "ServiceAccount/"+pod.Spec.ServiceAccountName)
		if acct.AutomountServiceAccountToken == nil || *acct.AutomountServiceAccountToken {
			t.Error("the ServiceAccount mounts its token")
		}
	} else if pod.Spec.ServiceAccountName != sa {
		t.Errorf("serviceAccountName %s, want %s", pod.Spec.ServiceAccountName, sa)
	}

	// Inline secrets appear in the Secret and nowhere else.
	for _, path := range [][]string{{"slack", "botToken"}, {"slack", "signingSecret"}, {"slack", "appToken"}, {"secretKey", "value"},
		{"redis", "url"}, {"btp", "password"}, {"btp", "assertion"}, {"btp", "tlsClientCertificate"}, {"btp", "tlsClientKey"}} {
		secret := str(v, path...)
		if secret == "" {
			continue
		}
		probe := strings.TrimSpace(secret)
		if lines := strings.Split(probe, "\n"); len(lines) > 2 { // PEM: look for the body
			probe = strings.TrimSpace(lines[1])
		}
		for key, doc := range r.raw {
			if strings.HasPrefix(key, "Secret/") {
				continue
			}
			if strings.Contains(doc, probe) {
				t.Errorf("%s (%s) appears in %s", strings.Join(path, "."), probe, key)
			}
		}
		if strings.Contains(r.notes, probe) {
			t.Errorf("%s appears in NOTES.txt", strings.Join(path, "."))
		}
	}
}

// TestChartRefusesImpossibleReleases: the chart fails rather than deploy a
// bot that cannot start or does something else than its values say.
func TestChartRefusesImpossibleReleases(t *testing.T) {
	socket := filepath.Join(chartDir, "ci", "socket-values.yaml")
	http := filepath.Join(chartDir, "ci", "http-values.yaml")
	for _, tc := range []struct {
		name     string
		files    []string
		override map[string]any
		want     string
	}{
		{"defaults", nil, nil, "slack: set slack.botToken"},
		{"socket without app token", []string{http}, map[string]any{"mode": "socket", "ingress": map[string]any{"enabled": false}, "slack": map[string]any{"botToken": "xoxb-1"}}, "mode socket needs an app-level token"},
		{"eleven socket replicas", []string{socket}, map[string]any{"replicaCount": 11}, "at most 10 Socket Mode connections"},
		{"unknown key", []string{http}, map[string]any{"replicas": 2}, "additional properties 'replicas' not allowed"},
		{"wrong type", []string{http}, map[string]any{"replicaCount": "two"}, "/replicaCount"},
		{"no time to drain", []string{http}, map[string]any{"drain": map[string]any{"timeout": "0s"}}, "drain.timeout (CREDBOT_DRAIN_TIMEOUT) must be longer than 0"},
		{"drain without unit", []string{http}, map[string]any{"drain": map[string]any{"timeout": "20"}}, "/drain/timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, "1.31.0", nil, tc.files, tc.override)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// imageBinary is the binary the Dockerfile's ENTRYPOINT runs: the path a
// preStop exec hook must name.
func imageBinary(t *testing.T) string {
	t.Helper()
	_, rest := finalStage(parseDockerfile(t))
	for _, in := range rest {
		if in.cmd == "ENTRYPOINT" {
			var argv []string
			if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
				t.Fatalf("ENTRYPOINT %s is not in exec form", in.args)
			}
			return argv[0]
		}
	}
	t.Fatal("the Dockerfile has no ENTRYPOINT")
	return ""
}

// TestChartRefusesOldKubernetes: Chart.yaml's kubeVersion is enforced.
func TestChartRefusesOldKubernetes(t *testing.T) {
	_, err := render(t, "1.26.0", nil, []string{filepath.Join(chartDir, "ci", "http-values.yaml")}, nil)
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Fatalf("err = %v, want a kubeVersion refusal", err)
	}
}

// TestValuesSchemaIsStrictAndSelfContained walks values.schema.json: every
// object schema forbids unknown keys (or is a typed map), and every $ref is
// local, so installs work air-gapped and typos fail.
func TestValuesSchemaIsStrictAndSelfContained(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&schema); err != nil {
		t.Fatal(err)
	}
	// Kubernetes types passed through unchanged, and umbrella charts' globals.
	passthrough := map[string]bool{
		"/properties/global":                              true,
		"/properties/affinity/properties/nodeAffinity":    true,
		"/properties/affinity/properties/podAffinity":     true,
		"/properties/affinity/properties/podAntiAffinity": true,
	}
	objects := 0
	var walk func(ptr string, node any)
	walk = func(ptr string, node any) {
		switch n := node.(type) {
		case []any:
			for i, item := range n {
				walk(fmt.Sprintf("%s/%d", ptr, i), item)
			}
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok && !strings.HasPrefix(ref, "#/") {
				t.Errorf("%s: remote $ref %s", ptr, ref)
			}
			isObject := n["type"] == "object" || n["properties"] != nil
			if isObject && !passthrough[ptr] && ptr != "/properties/policies/properties/files" {
				objects++
				switch ap := n["additionalProperties"].(type) {
				case bool:
					if ap {
						t.Errorf("%s allows any key", ptr)
					}
				case map[string]any:
					if n["properties"] != nil {
						t.Errorf("%s mixes properties with a map", ptr)
					}
				default:
					t.Errorf("%s: no additionalProperties", ptr)
				}
			}
			for k, child := range n {
				if k == "enum" || k == "const" {
					continue
				}
				walk(ptr+"/"+k, child)
			}
		}
	}
	walk("", schema)
	if objects < 40 {
		t.Errorf("walked only %d object schemas", objects)
	}
	for p := range passthrough {
		if lookupPointer(schema, p) == nil {
			t.Errorf("passthrough %s is not in the schema any more", p)
		}
	}
}

func lookupPointer(schema map[string]any, ptr string) any {
	var cur any = schema
	for _, part := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestNotesTellWhatToDoNext: NOTES.txt gives HTTP mode the Request URLs to
// configure in Slack, and Socket Mode none.
func TestNotesTellWhatToDoNext(t *testing.T) {
	httpRel, err := render(t, "1.31.0", nil, []string{filepath.Join(chartDir, "ci", "http-values.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	socketRel, err := render(t, "1.31.0", nil, []string{filepath.Join(chartDir, "ci", "socket-values.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HTTP mode NOTES:\n%s\nSocket Mode NOTES:\n%s", httpRel.notes, socketRel.notes)
	for _, want := range []string{"https://credbot.acme.example/slack/commands", "https://credbot.acme.example/slack/interactivity", "https://credbot.acme.example/slack/events", "/credbot audit verify"} {
		if !strings.Contains(httpRel.notes, want) {
			t.Errorf("HTTP mode NOTES lack %q", want)
		}
	}
	if strings.Contains(socketRel.notes, "/slack/commands") || !strings.Contains(socketRel.notes, "Socket Mode") {
		t.Errorf("Socket Mode NOTES:\n%s", socketRel.notes)
	}
	// Prometheus is asked for but not installed (no CRD in this render).
	if !strings.Contains(socketRel.notes, "WARNING: metrics.serviceMonitor.enabled") {
		t.Error("no warning that the ServiceMonitor was skipped")
	}
	if !strings.Contains(socketRel.notes, "WARNING: metrics.prometheusRule.enabled") {
		t.Error("no warning that the PrometheusRule was skipped")
	}
}

// TestChartCoversEveryDocumentedVariable: every variable in the README's
// configuration is one the chart sets from its values (and so refuses in
// extraEnv). A new variable in the bot shows up here until the chart has a
// value for it.
func TestChartCoversEveryDocumentedVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	validate, err := os.ReadFile(filepath.Join(chartDir, "templates", "_validate.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	managedLine := regexp.MustCompile(`\$managed := list ([^\n]+)`).FindSubmatch(validate)
	if managedLine == nil {
		t.Fatal("no $managed list in _validate.tpl")
	}
	managed := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([A-Z_]+)"`).FindAllSubmatch(managedLine[1], -1) {
		managed[string(m[1])] = true
	}
	// Only the configuration table counts: prose elsewhere may name test-only
	// knobs (CREDBOT_RESPONSE_HOSTS) that a deployment must never set.
	_, table, ok := strings.Cut(string(readme), "\n## Configuration")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	table, _, _ = strings.Cut(table, "\nDurations take")
	documented := regexp.MustCompile("`((?:BTP|CREDBOT|SLACK|REDIS)_[A-Z_]+)`").FindAllSubmatch([]byte(table), -1)
	if len(documented) < 20 {
		t.Fatalf("found only %d variables in README.md", len(documented))
	}
	for _, m := range documented {
		if name := string(m[1]); !managed[name] {
			t.Errorf("README documents %s, but the chart has no value for it", name)
		}
	}
}

// New credentials are verified unless the values turn it off (issue 12 §5):
// the variable is always set, so the chart and the bot's own default agree.
func TestChartVerifiesNewCredentialsUnlessTurnedOff(t *testing.T) {
	file := filepath.Join(chartDir, "ci", "socket-values.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ci map[string]any
	if err := yaml.Unmarshal(raw, &ci); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set  any // nil: the chart's default
		want string
	}{{nil, "true"}, {true, "true"}, {false, "false"}} {
		var override map[string]any
		if tc.set != nil {
			b := map[string]any{}
			for k, v := range ci["btp"].(map[string]any) {
				b[k] = v
			}
			b["verifyCredentials"] = tc.set
			override = map[string]any{"btp": b}
		}
		r, err := render(t, kubeVersions[len(kubeVersions)-1], nil, []string{file}, override)
		if err != nil {
			t.Fatal(err)
		}
		dep := get[*appsv1.Deployment](t, r, "Deployment/"+releaseName+"-credbot")
		got := "(unset)"
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "BTP_VERIFY_CREDENTIALS" {
				got = e.Value
			}
		}
		if got != tc.want {
			t.Errorf("verifyCredentials %v: BTP_VERIFY_CREDENTIALS=%s, want %s", tc.set, got, tc.want)
		}
	}
}
