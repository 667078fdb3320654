package bookinfo_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

// object keeps the fields of Kubernetes and Istio objects these tests
// look at.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec spec `json:"spec"`
}

type spec struct {
	// Service
	Ports []struct {
		Port       int    `json:"port"`
		TargetPort *int   `json:"targetPort"`
		Name       string `json:"name"`
		// ServiceEntry
		Number   int    `json:"number"`
		Protocol string `json:"protocol"`
	} `json:"ports"`
	Selector json.RawMessage `json:"selector"`
	// Deployment
	Template struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			ServiceAccountName string      `json:"serviceAccountName"`
			Containers         []container `json:"containers"`
		} `json:"spec"`
	} `json:"template"`
	// ServiceEntry, WorkloadEntry
	Hosts            []string          `json:"hosts"`
	Address          string            `json:"address"`
	Labels           map[string]string `json:"labels"`
	ServiceAccount   string            `json:"serviceAccount"`
	WorkloadSelector struct {
		Labels map[string]string `json:"labels"`
	} `json:"workloadSelector"`
	// VirtualService, DestinationRule
	Host string `json:"host"`
	HTTP []struct {
		Route []struct {
			Destination struct {
				Host   string `json:"host"`
				Subset string `json:"subset"`
			} `json:"destination"`
		} `json:"route"`
	} `json:"http"`
	Subsets []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"subsets"`
}

type container struct {
	Name  string   `json:"name"`
	Image string   `json:"image"`
	Args  []string `json:"args"`
	Ports []struct {
		ContainerPort int `json:"containerPort"`
	} `json:"ports"`
	ReadinessProbe *struct {
		HTTPGet struct {
			Path string `json:"path"`
			Port int    `json:"port"`
		} `json:"httpGet"`
	} `json:"readinessProbe"`
}

// selector returns a Service's selector map or a Deployment's matchLabels.
func (o object) selector(t *testing.T) map[string]string {
	t.Helper()
	var s struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	var flat map[string]string
	if o.Kind == "Deployment" {
		if err := json.Unmarshal(o.Spec.Selector, &s); err != nil {
			t.Fatalf("Deployment %s: selector: %v", o.Metadata.Name, err)
		}
		return s.MatchLabels
	}
	if err := json.Unmarshal(o.Spec.Selector, &flat); err != nil {
		t.Fatalf("%s %s: selector: %v", o.Kind, o.Metadata.Name, err)
	}
	return flat
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// readObjects decodes every YAML document of the files.
func readObjects(t *testing.T, files ...string) []object {
	t.Helper()
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: document %d has no kind or name", f, i)
			}
			out = append(out, o)
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubeManifestIsConsistent checks what kubectl cannot check before a
// cluster runs it: Services select Deployments, ports agree with the
// program's flags, and the args are ones the program accepts.
func TestKubeManifestIsConsistent(t *testing.T) {
	objs := readObjects(t, filepath.Join("kube", "bookinfo.yaml"))
	deployments := byKind(objs, "Deployment")
	accounts := map[string]bool{}
	for _, sa := range byKind(objs, "ServiceAccount") {
		accounts[sa.Metadata.Name] = true
	}
	if len(deployments) == 0 {
		t.Fatal("no Deployments")
	}
	for _, d := range deployments {
		name := "Deployment " + d.Metadata.Name
		pod := d.Spec.Template.Metadata.Labels
		if !selects(d.selector(t), pod) {
			t.Errorf("%s: selector %v does not match its pod labels %v", name, d.selector(t), pod)
		}
		if sa := d.Spec.Template.Spec.ServiceAccountName; !accounts[sa] {
			t.Errorf("%s: serviceAccountName %q is not in the manifest", name, sa)
		}
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Fatalf("%s: %d containers, want 1", name, len(cs))
		}
		c := cs[0]
		if c.Image != "trellis/bookinfo:latest" {
			t.Errorf("%s: image %q, want trellis/bookinfo:latest", name, c.Image)
		}
		cfg, err := app.ParseArgs(c.Args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Errorf("%s: args %q: %v", name, c.Args, err)
			continue
		}
		if string(cfg.Role) != pod["app"] || cfg.Version != pod["version"] {
			t.Errorf("%s: args run %s %s, but the pod is labelled app=%s version=%s", name, cfg.Role, cfg.Version, pod["app"], pod["version"])
		}
		_, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
			t.Errorf("%s: containerPort %v, but the program listens on %s", name, c.Ports, cfg.Listen)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/health" || strconv.Itoa(p.HTTPGet.Port) != port {
			t.Errorf("%s: readiness probe %+v, want GET /health on %s", name, p, port)
		}
	}
	for _, s := range byKind(objs, "Service") {
		name := "Service " + s.Metadata.Name
		var selected []object
		for _, d := range deployments {
			if selects(s.selector(t), d.Spec.Template.Metadata.Labels) {
				selected = append(selected, d)
			}
		}
		if len(selected) == 0 {
			t.Errorf("%s: selector %v selects no Deployment's pods", name, s.selector(t))
			continue
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != app.DefaultPort || s.Spec.Ports[0].Name != "http" {
			t.Errorf("%s: ports %+v, want one port %d named http (the default URLs use it)", name, s.Spec.Ports, app.DefaultPort)
			continue
		}
		target := s.Spec.Ports[0].Port
		if tp := s.Spec.Ports[0].TargetPort; tp != nil {
			target = *tp
		}
		for _, d := range selected {
			if cp := d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort; cp != target {
				t.Errorf("%s: targetPort %d, but Deployment %s listens on %d", name, target, d.Metadata.Name, cp)
			}
			if role := d.Spec.Template.Spec.Containers[0].Args[0]; role != s.Metadata.Name {
				t.Errorf("%s selects Deployment %s, which runs %s", name, d.Metadata.Name, role)
			}
		}
	}
}

// shape is what of an object must be as in Istio's bookinfo.yaml.
type shape struct {
	Labels         map[string]string
	Selector       map[string]string
	Ports          []string
	PodLabels      map[string]string
	ServiceAccount string
	Containers     []string // name:port
}

func shapes(t *testing.T, objs []object) map[string]shape {
	out := map[string]shape{}
	for _, o := range objs {
		s := shape{Labels: o.Metadata.Labels}
		switch o.Kind {
		case "Service":
			s.Selector = o.selector(t)
			for _, p := range o.Spec.Ports {
				s.Ports = append(s.Ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
			}
		case "Deployment":
			s.Selector = o.selector(t)
			s.PodLabels = o.Spec.Template.Metadata.Labels
			s.ServiceAccount = o.Spec.Template.Spec.ServiceAccountName
			for _, c := range o.Spec.Template.Spec.Containers {
				for _, p := range c.Ports {
					s.Containers = append(s.Containers, fmt.Sprintf("%s:%d", c.Name, p.ContainerPort))
				}
			}
		}
		out[o.Kind+"/"+o.Metadata.Name] = s
	}
	return out
}

// TestKubeManifestMatchesIstio compares names, labels, selectors, ports
// and service accounts with Istio's own bookinfo.yaml: the routing
// samples and anyone's kubectl -l habits depend on them.
func TestKubeManifestMatchesIstio(t *testing.T) {
	ours := shapes(t, readObjects(t, filepath.Join("kube", "bookinfo.yaml")))
	istio := shapes(t, readObjects(t, samples.Path(t, "bookinfo/platform/bookinfo.yaml")))
	if diff := cmp.Diff(istio, ours); diff != "" {
		t.Errorf("kube/bookinfo.yaml differs from Istio's bookinfo.yaml (-istio +ours):\n%s", diff)
	}
}

// TestLocalConfigMatchesKube checks that the local-mode WorkloadEntries
// describe the same workloads as the Deployments (labels, service
// accounts) and that each ServiceEntry names a Service on its port.
func TestLocalConfigMatchesKube(t *testing.T) {
	kube := readObjects(t, filepath.Join("kube", "bookinfo.yaml"))
	files, err := filepath.Glob(filepath.Join("config", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no local config: %v", err)
	}
	local := readObjects(t, files...)

	pods := map[string]string{} // "app/version" -> service account
	for _, d := range byKind(kube, "Deployment") {
		l := d.Spec.Template.Metadata.Labels
		pods[l["app"]+"/"+l["version"]] = d.Spec.Template.Spec.ServiceAccountName
	}
	seen := map[string]bool{}
	addrs := map[string]string{}
	for _, we := range byKind(local, "WorkloadEntry") {
		key := we.Spec.Labels["app"] + "/" + we.Spec.Labels["version"]
		sa, ok := pods[key]
		if !ok {
			t.Errorf("WorkloadEntry %s: labels %v match no Deployment", we.Metadata.Name, we.Spec.Labels)
			continue
		}
		seen[key] = true
		if we.Spec.ServiceAccount != sa {
			t.Errorf("WorkloadEntry %s: serviceAccount %q, Deployment uses %q", we.Metadata.Name, we.Spec.ServiceAccount, sa)
		}
		if ip := net.ParseIP(we.Spec.Address); ip == nil || !ip.IsLoopback() {
			t.Errorf("WorkloadEntry %s: address %q is not a loopback address", we.Metadata.Name, we.Spec.Address)
		}
		if other, dup := addrs[we.Spec.Address]; dup {
			t.Errorf("WorkloadEntries %s and %s share address %s", other, we.Metadata.Name, we.Spec.Address)
		}
		addrs[we.Spec.Address] = we.Metadata.Name
		// The program must accept the listen address local mode gives it.
		args := []string{we.Spec.Labels["app"], "--version", we.Spec.Labels["version"],
			"--listen", net.JoinHostPort(we.Spec.Address, strconv.Itoa(app.DefaultPort))}
		if _, err := app.ParseArgs(args, func(string) string { return "" }, io.Discard); err != nil {
			t.Errorf("WorkloadEntry %s: bookinfo %s: %v", we.Metadata.Name, strings.Join(args, " "), err)
		}
	}
	var missing []string
	for k := range pods {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("Deployments without a WorkloadEntry: %v", missing)
	}

	services := map[string]bool{}
	for _, s := range byKind(kube, "Service") {
		services[s.Metadata.Name] = true
	}
	for _, se := range byKind(local, "ServiceEntry") {
		if len(se.Spec.Hosts) != 1 {
			t.Errorf("ServiceEntry %s: hosts %v, want one", se.Metadata.Name, se.Spec.Hosts)
			continue
		}
		short, _, _ := strings.Cut(se.Spec.Hosts[0], ".")
		if !services[short] || se.Spec.WorkloadSelector.Labels["app"] != short {
			t.Errorf("ServiceEntry %s: host %s / selector %v do not name a Bookinfo service", se.Metadata.Name, se.Spec.Hosts[0], se.Spec.WorkloadSelector.Labels)
		}
		if len(se.Spec.Ports) != 1 || se.Spec.Ports[0].Number != app.DefaultPort || se.Spec.Ports[0].Protocol != "HTTP" {
			t.Errorf("ServiceEntry %s: ports %+v, want HTTP %d", se.Metadata.Name, se.Spec.Ports, app.DefaultPort)
		}
	}
}

// TestIstioRoutingSamplesFindTheirSubsets checks that the subsets Istio's
// routing examples send traffic to exist as workloads here, by the labels
// of destination-rule-all.yaml.
func TestIstioRoutingSamplesFindTheirSubsets(t *testing.T) {
	kube := readObjects(t, filepath.Join("kube", "bookinfo.yaml"))
	pods := byKind(kube, "Deployment")
	subsets := map[string]map[string]string{} // host/subset -> labels
	for _, dr := range byKind(readObjects(t, samples.Path(t, "bookinfo/networking/destination-rule-all.yaml")), "DestinationRule") {
		for _, s := range dr.Spec.Subsets {
			subsets[dr.Spec.Host+"/"+s.Name] = s.Labels
		}
	}
	for _, f := range []string{
		"virtual-service-all-v1.yaml", "virtual-service-reviews-50-v3.yaml", "virtual-service-reviews-test-v2.yaml",
		"virtual-service-reviews-v3.yaml", "virtual-service-reviews-80-20.yaml", "virtual-service-reviews-90-10.yaml",
		"virtual-service-reviews-jason-v2-v3.yaml", "virtual-service-reviews-v2-v3.yaml",
		"virtual-service-ratings-test-delay.yaml", "virtual-service-ratings-test-abort.yaml",
	} {
		for _, vs := range byKind(readObjects(t, samples.Path(t, "bookinfo/networking/"+f)), "VirtualService") {
			for _, h := range vs.Spec.HTTP {
				for _, r := range h.Route {
					key := r.Destination.Host + "/" + r.Destination.Subset
					labels, ok := subsets[key]
					if !ok {
						t.Errorf("%s: subset %s is not in destination-rule-all.yaml", f, key)
						continue
					}
					found := false
					for _, d := range pods {
						l := d.Spec.Template.Metadata.Labels
						found = found || (l["app"] == r.Destination.Host && selects(labels, l))
					}
					if !found {
						t.Errorf("%s routes to %s (labels %v), but no Deployment of %s has those labels", f, key, labels, r.Destination.Host)
					}
				}
			}
		}
	}
}
