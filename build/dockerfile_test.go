// Package build holds the Dockerfiles of the trellis and trellis-proxy
// images; its test checks them for what the installation and the injector
// rely on (no image can be built here: the machine has no registry access).
package build

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/trellismesh/trellis/internal/install"
	"github.com/trellismesh/trellis/internal/kube/inject"
)

type instruction struct{ op, args string }

// parse splits a Dockerfile into instructions (continuations joined,
// comments dropped) and its stages.
func parse(t *testing.T, path string) [][]instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var cur string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		op, args, _ := strings.Cut(cur, " ")
		cur = ""
		in := instruction{strings.ToUpper(op), strings.TrimSpace(args)}
		if in.op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before FROM", path, in.op)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

func find(stage []instruction, op string) []string {
	var out []string
	for _, in := range stage {
		if in.op == op {
			out = append(out, in.args)
		}
	}
	return out
}

// linkedDirs are the repository's top-level directories the command pkg
// (e.g. "cmd/trellis") links.
func linkedDirs(t *testing.T, pkg string) []string {
	out, err := exec.Command("go", "list", "-deps", "github.com/trellismesh/trellis/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	seen := map[string]bool{}
	var dirs []string
	for _, p := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(p, "github.com/trellismesh/trellis/")
		if !ok {
			continue
		}
		d, _, _ := strings.Cut(rest, "/")
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func TestDockerfiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		pkg     string // the command built into /usr/local/bin/trellis
		user    string
		base    string // prefix of the final stage's image
		runs    []string
		expose  []int
		command string
	}{
		{"Dockerfile.trellis", "cmd/trellis", "65532:65532", "gcr.io/distroless/static", nil,
			[]int{install.PortXDS, install.PortSecure, install.PortMonitoring, install.PortWebhook}, `["discovery"]`},
		// The proxy image runs the slim binary as `trellis proxy ...`.
		{"Dockerfile.proxy", "cmd/trellis-proxy", strconv.Itoa(inject.ProxyUID) + ":" + strconv.Itoa(inject.ProxyGID), "debian:", []string{"iptables"},
			[]int{inject.MetricsPort, inject.StatusPort}, `["proxy", "sidecar"]`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dirs := linkedDirs(t, tc.pkg)
			stages := parse(t, tc.file)
			if len(stages) < 2 {
				t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
			}
			build := stages[0]
			if from := build[0].args; !strings.HasPrefix(from, "golang:") || !strings.HasSuffix(from, " AS build") {
				t.Errorf("build stage FROM %q, want golang:<v> AS build", from)
			}
			var static, builds bool
			for _, env := range find(build, "ENV") {
				static = static || strings.Contains(env, "CGO_ENABLED=0")
			}
			for _, r := range find(build, "RUN") {
				builds = builds || strings.Contains(r, "go build") && strings.HasSuffix(r, "-o /out/trellis ./"+tc.pkg)
			}
			if !static || !builds {
				t.Errorf("build stage: CGO_ENABLED=0 %v, go build ... -o /out/trellis ./%s %v", static, tc.pkg, builds)
			}
			copies := strings.Join(find(build, "COPY"), "\n")
			for _, d := range dirs {
				if !strings.Contains(copies, d+" ./"+d) {
					t.Errorf("%s links packages under %s/ but the build stage does not COPY %s", tc.pkg, d, d)
				}
			}

			final := stages[len(stages)-1]
			if !strings.HasPrefix(final[0].args, tc.base) {
				t.Errorf("runtime stage FROM %q, want %s...", final[0].args, tc.base)
			}
			if !slices.Contains(find(final, "COPY"), "--from=build /out/trellis /usr/local/bin/"+"trellis") {
				t.Errorf("runtime stage does not put trellis on $PATH (/usr/local/bin/trellis, the injector's Binary)")
			}
			users := find(final, "USER")
			if len(users) == 0 || users[len(users)-1] != tc.user {
				t.Errorf("runtime USER %v, want %s (non-root)", users, tc.user)
			}
			runs := strings.Join(find(final, "RUN"), "\n")
			for _, pkg := range tc.runs {
				if !strings.Contains(runs, "apt-get install") || !strings.Contains(runs, " "+pkg) {
					t.Errorf("runtime stage does not install %s", pkg)
				}
			}
			expose := strings.Fields(strings.Join(find(final, "EXPOSE"), " "))
			for _, p := range tc.expose {
				if !slices.Contains(expose, strconv.Itoa(p)) {
					t.Errorf("port %d not exposed (EXPOSE %v)", p, expose)
				}
			}
			if ep := find(final, "ENTRYPOINT"); len(ep) != 1 || ep[0] != `["/usr/local/bin/trellis"]` {
				t.Errorf("ENTRYPOINT %v", ep)
			}
			if cmd := find(final, "CMD"); len(cmd) != 1 || cmd[0] != tc.command {
				t.Errorf("CMD %v, want %s", cmd, tc.command)
			}
		})
	}
}
