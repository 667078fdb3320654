package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	proxycli "github.com/trellismesh/trellis/internal/cli/proxy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testConfig() Config {
	return Config{
		Image:      "ghcr.io/trellismesh/trellis-proxy:test",
		XDSAddress: "istiod.istio-system.svc:15012",
		CAAddress:  "istiod.istio-system.svc:15012",
	}
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &pod
}

// TestGolden injects each testdata/<case>.yaml pod (after Required) and
// compares the result with testdata/<case>.golden.
func TestGolden(t *testing.T) {
	cases := []struct {
		name      string
		nsEnabled bool
		inject    bool
	}{
		{"plain", true, true},
		{"annotated", true, true},
		{"probes", true, true},
		{"native", true, true},
		{"tproxy", true, true},
		{"interception-none", true, true},
		{"opt-out", true, false},
		{"opt-in", false, true},
		{"host-network", true, false},
	}
	in, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := readPod(t, filepath.Join("testdata", tc.name+".yaml"))
			d := Required(pod, tc.nsEnabled)
			if d.Inject != tc.inject {
				t.Fatalf("Required = %+v, want inject=%v", d, tc.inject)
			}
			out := pod
			if d.Inject {
				if out, err = in.Pod(pod, ""); err != nil {
					t.Fatal(err)
				}
			}
			got, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			got = append([]byte("# decision: "+d.Reason+"\n"), got...)
			compareGolden(t, filepath.Join("testdata", tc.name+".golden"), got)

			// Idempotent: the result is already injected and stays as is.
			if d.Inject {
				if Required(out, true).Inject {
					t.Errorf("an injected pod is still to be injected")
				}
				again, err := in.Pod(out, "")
				if err != nil {
					t.Fatal(err)
				}
				a, _ := yaml.Marshal(again)
				b, _ := yaml.Marshal(out)
				if !bytes.Equal(a, b) {
					t.Errorf("injecting twice changed the pod:\n%s", a)
				}
			}

			// The JSON patch the webhook sends turns the pod into the result.
			patch, err := Patch(pod, out)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := json.Marshal(pod)
			p, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				t.Fatalf("decoding patch %s: %v", patch, err)
			}
			patched, err := p.Apply(orig)
			if err != nil {
				t.Fatalf("applying patch %s: %v", patch, err)
			}
			var viaPatch corev1.Pod
			if err := json.Unmarshal(patched, &viaPatch); err != nil {
				t.Fatal(err)
			}
			a, _ := yaml.Marshal(&viaPatch)
			b, _ := yaml.Marshal(out)
			if !bytes.Equal(a, b) {
				t.Errorf("patch result differs from the injected pod:\n%s\nwant:\n%s", a, b)
			}
			if !d.Inject && string(patch) != "[]" {
				t.Errorf("patch of a pod left alone = %s, want []", patch)
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRequired(t *testing.T) {
	pod := func(ns string, labels, ann map[string]string) *corev1.Pod {
		p := &corev1.Pod{}
		p.Namespace, p.Labels, p.Annotations = ns, labels, ann
		p.Spec.Containers = []corev1.Container{{Name: "app"}}
		return p
	}
	cases := []struct {
		name      string
		pod       *corev1.Pod
		nsEnabled bool
		want      bool
	}{
		{"namespace enabled", pod("a", nil, nil), true, true},
		{"namespace not enabled", pod("a", nil, nil), false, false},
		{"label opts out", pod("a", map[string]string{InjectKey: "false"}, nil), true, false},
		{"label opts in", pod("a", map[string]string{InjectKey: "true"}, nil), false, true},
		{"annotation opts out", pod("a", nil, map[string]string{InjectKey: "false"}), true, false},
		{"label wins over annotation", pod("a", map[string]string{InjectKey: "true"}, map[string]string{InjectKey: "false"}), false, true},
		{"kube-system never", pod("kube-system", map[string]string{InjectKey: "true"}, nil), true, false},
		{"already injected (status)", pod("a", nil, map[string]string{StatusAnnotation: "{}"}), true, false},
		{"unknown value falls back to namespace", pod("a", map[string]string{InjectKey: "maybe"}, nil), true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Required(tc.pod, tc.nsEnabled); got.Inject != tc.want {
				t.Errorf("Required = %+v, want %v", got, tc.want)
			}
		})
	}
	withProxy := pod("a", nil, nil)
	withProxy.Spec.Containers = append(withProxy.Spec.Containers, corev1.Container{Name: ProxyContainer})
	if Required(withProxy, true).Inject {
		t.Errorf("a pod with an istio-proxy container is injected again")
	}
}

func TestNamespaceEnabled(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		rev    string
		want   bool
	}{
		{"istio-injection=enabled", map[string]string{NamespaceLabel: "enabled"}, "", true},
		{"istio-injection=disabled", map[string]string{NamespaceLabel: "disabled", RevisionLabel: "default"}, "", false},
		{"no labels", nil, "", false},
		{"revision matches", map[string]string{RevisionLabel: "canary"}, "canary", true},
		{"revision differs", map[string]string{RevisionLabel: "canary"}, "default", false},
		{"istio-injection wins over rev", map[string]string{NamespaceLabel: "enabled", RevisionLabel: "canary"}, "canary", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NamespaceEnabled(tc.labels, tc.rev); got != tc.want {
				t.Errorf("NamespaceEnabled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBadAnnotations(t *testing.T) {
	in, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{annIncludeOutboundIPRanges: "10.0.0.0/8,ten"}, `annotation traffic.sidecar.istio.io/includeOutboundIPRanges: "ten" is not a CIDR`},
		{map[string]string{annExcludeInboundPorts: "80,70000"}, `annotation traffic.sidecar.istio.io/excludeInboundPorts: "70000" is not a port`},
		{map[string]string{annExcludeOutboundIPRanges: "*"}, `annotation traffic.sidecar.istio.io/excludeOutboundIPRanges: "*" is not allowed here`},
		{map[string]string{annProxyCPU: "lots"}, `annotation sidecar.istio.io/proxyCPU: "lots" is not a quantity`},
		{map[string]string{annProxyMemory: "2Gi"}, `annotation sidecar.istio.io/proxyMemory: request 2Gi is above the limit 1Gi`},
		{map[string]string{annProxyConfig: "holdApplicationUntilProxyStarts: maybe"}, `annotation proxy.istio.io/config: not a ProxyConfig`},
		{map[string]string{annProxyConfig: "terminationDrainDuration: soon"}, `annotation proxy.istio.io/config: terminationDrainDuration "soon"`},
		{map[string]string{annProxyConfig: "proxyMetadata: {EXIT-ON-ZERO: \"true\"}"}, `annotation proxy.istio.io/config: proxyMetadata "EXIT-ON-ZERO": not an environment variable name`},
		{map[string]string{annProxyConfig: "proxyMetadata: {INSTANCE_IP: 10.0.0.1}"}, `annotation proxy.istio.io/config: proxyMetadata "INSTANCE_IP": set by the injector itself`},
		{map[string]string{annNativeSidecar: "perhaps"}, `annotation sidecar.istio.io/nativeSidecar: want true or false, not "perhaps"`},
		{map[string]string{annInterceptionMode: "tproxy"}, `annotation sidecar.istio.io/interceptionMode: want REDIRECT, TPROXY or NONE, not "tproxy"`},
		{map[string]string{annInterceptionMode: ""}, `annotation sidecar.istio.io/interceptionMode: want REDIRECT, TPROXY or NONE, not ""`},
		{map[string]string{annInterceptionMode: "TPROXY", annIncludeInboundPorts: "9080,9443"}, `annotation traffic.sidecar.istio.io/includeInboundPorts: "9080,9443" conflicts with sidecar.istio.io/interceptionMode=TPROXY: TPROXY mode captures every inbound port ("*") except those in traffic.sidecar.istio.io/excludeInboundPorts`},
		{map[string]string{annInterceptionMode: "TPROXY", annIncludeInboundPorts: ""}, `annotation traffic.sidecar.istio.io/includeInboundPorts: "" conflicts with sidecar.istio.io/interceptionMode=TPROXY`},
		{map[string]string{annProxyConfig: "interceptionMode: tproxy"}, `annotation proxy.istio.io/config: interceptionMode "tproxy": want REDIRECT, TPROXY or NONE`},
		{map[string]string{annProxyConfig: "interceptionMode: TPROXY", annIncludeInboundPorts: "9080"}, `annotation traffic.sidecar.istio.io/includeInboundPorts: "9080" conflicts with proxy.istio.io/config interceptionMode=TPROXY`},
	}
	for _, tc := range cases {
		pod := &corev1.Pod{}
		pod.Annotations = tc.ann
		pod.Spec.Containers = []corev1.Container{{Name: "app"}}
		_, err := in.Pod(pod, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("annotations %v: error %v, want it to contain %q", tc.ann, err, tc.want)
		}
	}
}

func TestConfigRequired(t *testing.T) {
	_, err := New(Config{XDSAddress: "no-port", InterceptionMode: "tproxy"})
	if err == nil || !strings.Contains(err.Error(), "Image is required") || !strings.Contains(err.Error(), `XDSAddress "no-port"`) ||
		!strings.Contains(err.Error(), `InterceptionMode "tproxy": want REDIRECT, TPROXY or NONE`) {
		t.Errorf("New with a bad config: %v", err)
	}
}

func TestWorkloadName(t *testing.T) {
	pod := func(name, generateName, ownerKind, owner string) *corev1.Pod {
		p := &corev1.Pod{}
		p.Name, p.GenerateName = name, generateName
		if owner != "" {
			yes := true
			p.OwnerReferences = []metav1.OwnerReference{{Kind: ownerKind, Name: owner, Controller: &yes}}
		}
		return p
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"named pod", pod("solo", "", "", ""), "solo"},
		{"generateName", pod("", "worker-", "", ""), "worker"},
		{"statefulset", pod("db-0", "", "StatefulSet", "db"), "db"},
		{"cronjob job", pod("", "nightly-28912345-", "Job", "nightly-28912345"), "nightly"},
		{"plain job", pod("", "once-", "Job", "once"), "once"},
		{"replicaset without hash label", pod("x", "", "ReplicaSet", "rs-abc"), "rs-abc"},
	}
	for _, tc := range cases {
		if got := workloadName(tc.pod); got != tc.want {
			t.Errorf("%s: workloadName = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestInterceptionMode checks what each sidecar.istio.io/interceptionMode
// changes, and that the capture command the injector writes is one that
// `trellis proxy iptables` accepts in that mode (run with --dry-run).
func TestInterceptionMode(t *testing.T) {
	cases := []struct {
		name     string
		mesh     string // Config.InterceptionMode
		ann      map[string]string
		mode     string // want -m and ISTIO_META_INTERCEPTION_MODE
		init     bool   // want istio-init
		netAdmin bool   // want the proxy to run as root with NET_ADMIN
		rule     string // want in the dry-run rules
	}{
		{"default", "", nil, "REDIRECT", true, false, "-j REDIRECT --to-ports 15006"},
		{"REDIRECT", "", map[string]string{annInterceptionMode: "REDIRECT"}, "REDIRECT", true, false, "-j REDIRECT --to-ports 15001"},
		{"TPROXY", "", map[string]string{annInterceptionMode: "TPROXY"}, "TPROXY", true, true, "-j TPROXY"},
		{"TPROXY with every inbound port", "", map[string]string{annInterceptionMode: "TPROXY", annIncludeInboundPorts: "*", annExcludeInboundPorts: "9999"}, "TPROXY", true, true, "--dport 9999 -j RETURN"},
		{"NONE", "", map[string]string{annInterceptionMode: "NONE"}, "NONE", false, false, ""},
		{"mesh default TPROXY", ModeTProxy, nil, "TPROXY", true, true, "-j TPROXY"},
		{"proxy.istio.io/config over the mesh default", ModeTProxy, map[string]string{annProxyConfig: "interceptionMode: NONE"}, "NONE", false, false, ""},
		{"annotation over proxy.istio.io/config", "", map[string]string{annProxyConfig: "interceptionMode: NONE", annInterceptionMode: "TPROXY"}, "TPROXY", true, true, "-j TPROXY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.InterceptionMode = tc.mesh
			in, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{}
			pod.Annotations = tc.ann
			pod.Spec.Containers = []corev1.Container{{Name: "app"}}
			out, err := in.Pod(pod, "")
			if err != nil {
				t.Fatal(err)
			}
			var initC, proxyC *corev1.Container
			for i, c := range out.Spec.InitContainers {
				if c.Name == InitContainer {
					initC = &out.Spec.InitContainers[i]
				}
			}
			for i, c := range out.Spec.Containers {
				if c.Name == ProxyContainer {
					proxyC = &out.Spec.Containers[i]
				}
			}
			if proxyC == nil {
				t.Fatalf("no %s container in %v", ProxyContainer, out.Spec.Containers)
			}
			if got := envValue(proxyC.Env, InterceptionEnv); got != tc.mode {
				t.Errorf("%s = %q, want %q", InterceptionEnv, got, tc.mode)
			}
			sc := proxyC.SecurityContext
			hasNetAdmin := slices.Contains(sc.Capabilities.Add, "NET_ADMIN")
			root := *sc.RunAsUser == 0 && !*sc.RunAsNonRoot
			if hasNetAdmin != tc.netAdmin || root != tc.netAdmin {
				t.Errorf("proxy capabilities add %v, runAsUser %d: want NET_ADMIN and root = %v", sc.Capabilities.Add, *sc.RunAsUser, tc.netAdmin)
			}
			if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || *sc.RunAsGroup != ProxyGID ||
				!*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || *sc.Privileged {
				t.Errorf("proxy security context lost its restrictions: %+v", sc)
			}
			var st status
			if err := json.Unmarshal([]byte(out.Annotations[StatusAnnotation]), &st); err != nil {
				t.Fatal(err)
			}
			if got := slices.Contains(st.InitContainers, InitContainer); got != tc.init {
				t.Errorf("status init containers %v, want %s: %v", st.InitContainers, InitContainer, tc.init)
			}
			if (initC != nil) != tc.init {
				t.Fatalf("istio-init present = %v, want %v", initC != nil, tc.init)
			}
			if initC == nil {
				return
			}
			if i := slices.Index(initC.Args, "-m"); i < 0 || i+1 >= len(initC.Args) || initC.Args[i+1] != tc.mode {
				t.Errorf("istio-init args %q: want -m %s", initC.Args, tc.mode)
			}
			// The args are `proxy iptables ...`: run them through the real
			// command, printing the rules instead of applying them.
			cmd := proxycli.NewCommand(slog.New(slog.DiscardHandler))
			var stdout, stderr bytes.Buffer
			cmd.SetOut(&stdout)
			cmd.SetErr(&stderr)
			cmd.SetArgs(append(slices.Clone(initC.Args[1:]), "--dry-run", "--iptables-backend=legacy"))
			if err := cmd.Execute(); err != nil {
				t.Fatalf("trellis %q --dry-run: %v\n%s", initC.Args, err, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.rule) {
				t.Errorf("trellis %q --dry-run rules lack %q:\n%s", initC.Args, tc.rule, stdout.String())
			}
		})
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestProxyMetadata: proxy.istio.io/config's proxyMetadata becomes the
// proxy container's environment, as Istio's injector does (how users set
// EXIT_ON_ZERO_ACTIVE_CONNECTIONS and MINIMUM_DRAIN_DURATION per pod).
func TestProxyMetadata(t *testing.T) {
	in, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	pod.Annotations = map[string]string{annProxyConfig: `
proxyMetadata:
  MINIMUM_DRAIN_DURATION: 10s
  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"
`}
	pod.Spec.Containers = []corev1.Container{{Name: "app"}}
	out, err := in.Pod(pod, "")
	if err != nil {
		t.Fatal(err)
	}
	var env []corev1.EnvVar
	for _, c := range out.Spec.Containers {
		if c.Name == ProxyContainer {
			env = c.Env
		}
	}
	got := map[string]string{}
	var order []string
	for _, e := range env {
		got[e.Name] = e.Value
		order = append(order, e.Name)
	}
	if got["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] != "true" || got["MINIMUM_DRAIN_DURATION"] != "10s" {
		t.Fatalf("proxy environment %v: want the proxyMetadata variables", env)
	}
	if n := len(order); n < 2 || order[n-2] != "EXIT_ON_ZERO_ACTIVE_CONNECTIONS" || order[n-1] != "MINIMUM_DRAIN_DURATION" {
		t.Errorf("environment order %v: want the metadata last, sorted (a stable pod spec)", order)
	}
}
