package tools

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No Docker engine runs here, so the image cannot be built in CI; these tests
// hold the Dockerfile to what the chart and go.mod assume.

type instruction struct{ cmd, args string }

// parseDockerfile joins continuation lines and drops comments; enough for
// the checks below, not a full parser.
func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// finalStage is the instructions after the last FROM.
func finalStage(ins []instruction) (from string, rest []instruction) {
	for i := len(ins) - 1; i >= 0; i-- {
		if ins[i].cmd == "FROM" {
			return ins[i].args, ins[i+1:]
		}
	}
	return "", nil
}

func TestDockerfileRuntimeIsDistrolessNonrootPinnedByDigest(t *testing.T) {
	from, rest := finalStage(parseDockerfile(t))
	if !regexp.MustCompile(`^gcr\.io/distroless/static-debian12:nonroot@sha256:[0-9a-f]{64}$`).MatchString(from) {
		t.Errorf("runtime image %q is not distroless static nonroot pinned by digest", from)
	}
	var entrypoint, command, user string
	env := map[string]string{}
	for _, in := range rest {
		switch in.cmd {
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			command = in.args
		case "USER":
			user = in.args
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "RUN":
			t.Errorf("RUN in the runtime stage (%s): distroless has no shell", in.args)
		}
	}
	// The entrypoint is the binary alone and serve the default command, so
	// that `docker run IMAGE audit verify` runs audit verify, not serve.
	var argv, cmd []string
	if err := json.Unmarshal([]byte(entrypoint), &argv); err != nil || !slices.Equal(argv, []string{"/credbot"}) {
		t.Errorf("ENTRYPOINT %s, want exec form [\"/credbot\"]", entrypoint)
	}
	if err := json.Unmarshal([]byte(command), &cmd); err != nil || !slices.Equal(cmd, []string{"serve"}) {
		t.Errorf("CMD %s, want exec form [\"serve\"]", command)
	}
	if user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (the chart's runAsUser)", user)
	}
	// The chart mounts the policy ConfigMap where the image keeps its default.
	helpers, err := os.ReadFile(chartDir + "/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	dir := env["CREDBOT_POLICY_DIR"]
	if dir == "" || !strings.Contains(string(helpers), `{{- define "credbot.policyDir" -}}`+dir+`{{- end }}`) {
		t.Errorf("CREDBOT_POLICY_DIR %q is not the chart's policy mount", dir)
	}
	if !slices.ContainsFunc(rest, func(in instruction) bool {
		return in.cmd == "COPY" && strings.HasPrefix(in.args, "policies/ ") && strings.HasSuffix(strings.TrimSuffix(in.args, "/"), dir)
	}) {
		t.Errorf("the policies/ folder is not copied to %s", dir)
	}
}

func TestDockerfileBuildsStaticTrimmedBinaryWithGoModsGo(t *testing.T) {
	ins := parseDockerfile(t)
	var build bool
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "CGO_ENABLED=0") &&
			strings.Contains(in.args, `go build -trimpath -ldflags="-s -X main.buildRevision=${REVISION}"`) && strings.HasSuffix(in.args, "./cmd/bot") {
			build = true
		}
	}
	if !build {
		t.Error("no RUN with CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -X main.buildRevision=${REVISION}\" … ./cmd/bot")
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("no go line in ../go.mod")
	}
	if want := "ARG GO_VERSION=" + string(goLine[1]); !slices.Contains(instructionLines(ins), want) {
		t.Errorf("Dockerfile lacks %q (go.mod says go %s)", want, goLine[1])
	}
}

func instructionLines(ins []instruction) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.cmd + " " + in.args
	}
	return out
}

// TestDockerignoreLetsEveryGoDirectoryIn: the build context is an allowlist,
// so a new top-level package would silently break the image build.
func TestDockerignoreLetsEveryGoDirectoryIn(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
			allowed[strings.TrimSuffix(p, "/")] = true
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "policies"} {
		if !allowed[f] {
			t.Errorf(".dockerignore keeps out %s", f)
		}
	}
	ents, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "tools" || e.Name() == "helm" {
			continue
		}
		if hasGo(t, "../"+e.Name()) && !allowed[e.Name()] {
			t.Errorf("%s/ holds Go code but .dockerignore keeps it out of the image build", e.Name())
		}
	}
}

func hasGo(t *testing.T, dir string) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() && hasGo(t, dir+"/"+e.Name()) || strings.HasSuffix(e.Name(), ".go") {
			return true
		}
	}
	return false
}
