package up

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/template"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
)

// Annotations on a WorkloadEntry that tell `trellis up` how to run it.
const (
	// AnnotationRun is the workload's command line, a text/template over
	// RunData. Words are separated by spaces (no shell quoting); a first
	// word "trellis" means the trellis binary running `up` itself.
	AnnotationRun = "trellis.dev/run"
	// AnnotationIngress is a port of the workload that the front door
	// (--ingress) forwards to; at most one WorkloadEntry may carry it.
	AnnotationIngress = "trellis.dev/ingress"
	// AnnotationIngressPath is the path printed with the front door's URL.
	AnnotationIngressPath = "trellis.dev/ingress-path"
)

// AppHost is where applications listen in local mode: each workload's
// WorkloadEntry address belongs to its sidecar (a Sidecar ingress
// listener per port, sidecar.go), and the application gets a private
// port on 127.0.0.1 per service port, the address Istio's Sidecar
// defaultEndpoint allows.
const AppHost = "127.0.0.1"

// RunData is what AnnotationRun's template sees.
type RunData struct {
	Name      string            // the WorkloadEntry's name
	Namespace string            // its namespace
	Address   string            // its address (127.0.0.x), where its sidecar accepts inbound calls
	Labels    map[string]string // its labels: {{.Labels.version}}
	Proxy     string            // its sidecar's explicit proxy, ip:port
	// appPorts maps the workload's ports to the application's private
	// ports on appHost (AppHost, or 0.0.0.0 in a --netns namespace).
	appPorts map[uint32]uint16
	appHost  string
}

func (d RunData) host() string {
	if d.appHost != "" {
		return d.appHost
	}
	return AppHost
}

// AppAddress is where the application listens, AppHost:<private port>,
// for a workload with one port: {{.AppAddress}}. A workload with several
// ports names the port: {{.App 9080}}.
func (d RunData) AppAddress() (string, error) {
	if len(d.appPorts) != 1 {
		return "", fmt.Errorf("AppAddress: the workload has %d ports; name one with {{.App PORT}}", len(d.appPorts))
	}
	for _, p := range d.appPorts {
		return net.JoinHostPort(d.host(), strconv.Itoa(int(p))), nil
	}
	return "", nil
}

// App is where the application serves the workload's port port (the
// WorkloadEntry's target port): AppHost:<private port>.
func (d RunData) App(port int) (string, error) {
	p, ok := d.appPorts[uint32(port)]
	if !ok {
		return "", fmt.Errorf("App %d: not a port of the workload (its services give it %s)", port, joinPorts(sortedPorts(d.appPorts)))
	}
	return net.JoinHostPort(d.host(), strconv.Itoa(int(p))), nil
}

// Workload is one WorkloadEntry of the directory, with what up runs for it.
type Workload struct {
	Name, Namespace string
	Address         netip.Addr
	Labels          map[string]string
	ServiceAccount  string
	// Command is the rendered AnnotationRun, nil when the directory does
	// not say how to run the workload (its sidecar still starts).
	Command []string
	// Ports are the workload's ports that serve a service (its sidecar's
	// ingress listeners on Address).
	Ports []uint32
	// AppPorts maps each of Ports to the application's private port on
	// AppHost (the Sidecar ingress defaultEndpoint): up waits for them to
	// accept connections.
	AppPorts map[uint32]uint16
	// portInfo is the service port behind each of Ports (name, protocol).
	portInfo map[uint32]model.Port
	// IngressPort and IngressPath come from AnnotationIngress(-Path).
	IngressPort uint32
	IngressPath string
	// Source is where the WorkloadEntry was written.
	Source config.Source
	// With --netns: LocalAddress is the WorkloadEntry's own (127.0.0.x)
	// address, Address its namespace's, Netns the namespace, appHost
	// 0.0.0.0 and AppPorts the service ports themselves.
	LocalAddress netip.Addr
	Netns        string
	appHost      string
	// runTemplate is the AnnotationRun template ("" without one).
	runTemplate string
}

// ID names the workload in messages and log files: "name.namespace".
func (w Workload) ID() string { return w.Name + "." + w.Namespace }

// InvalidConfigError lists the directory's problems that rejected objects.
type InvalidConfigError struct {
	Dir      string
	Problems []store.Problem
}

func (e *InvalidConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration in %s (nothing was started):", e.Dir)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	b.WriteString("\nfix the objects above (trellis analyze " + e.Dir + " shows every finding) and run trellis up again")
	return b.String()
}

// plan reads dir once, as the control plane will, and returns its
// workloads sorted by namespace and name, and the snapshot it read.
// proxyPort is the explicit proxy's port on each workload's address;
// alloc gives each workload port its application's private port. Any
// rejected object, or an annotation that does not parse, fails the plan.
func plan(ctx context.Context, dir string, proxyPort uint16, alloc portAllocator) ([]Workload, *model.Snapshot, error) {
	in, err := analysis.Load(ctx, analysis.LoadConfig{Dirs: []string{dir}})
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var bad []store.Problem
	for _, p := range in.Problems {
		if p.Severity == store.SeverityError {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		return nil, nil, &InvalidConfigError{Dir: dir, Problems: bad}
	}
	snap := in.Snapshot
	var out []Workload
	var ingress []string
	for _, c := range snap.Configs(schema.WorkloadEntry) {
		w, err := workload(c, snap, proxyPort, alloc)
		if err != nil {
			return nil, nil, &InvalidConfigError{Dir: dir, Problems: []store.Problem{{
				Severity: store.SeverityError, Source: c.Source, Key: c.Key(), Message: err.Error(),
			}}}
		}
		if w.IngressPort != 0 {
			ingress = append(ingress, w.ID())
		}
		out = append(out, w)
	}
	if len(ingress) > 1 {
		return nil, nil, fmt.Errorf("invalid configuration in %s: %d WorkloadEntries carry %s (%s); the front door forwards to one", dir, len(ingress), AnnotationIngress, strings.Join(ingress, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	seen := map[netip.Addr]string{}
	for _, w := range out {
		if other, ok := seen[w.Address]; ok {
			return nil, nil, fmt.Errorf("invalid configuration in %s: WorkloadEntries %s and %s have the same address %s; in local mode each workload needs its own loopback address", dir, other, w.ID(), w.Address)
		}
		seen[w.Address] = w.ID()
	}
	return out, snap, nil
}

// workload reads one WorkloadEntry.
func workload(c config.Config, snap *model.Snapshot, proxyPort uint16, alloc portAllocator) (Workload, error) {
	spec, ok := c.Spec.(*networking.WorkloadEntry)
	if !ok {
		return Workload{}, fmt.Errorf("unexpected spec type %T", c.Spec)
	}
	addr, err := netip.ParseAddr(spec.GetAddress())
	if err != nil || !addr.IsLoopback() {
		return Workload{}, fmt.Errorf("spec.address: %q: trellis up (without --netns) needs a loopback IP address such as 127.0.0.10", spec.GetAddress())
	}
	w := Workload{
		Name: c.Name, Namespace: c.Namespace, Address: addr,
		Labels: spec.GetLabels(), ServiceAccount: spec.GetServiceAccount(), Source: c.Source,
	}
	w.portInfo = ports(snap, c.Name, c.Namespace, spec.GetAddress())
	w.Ports = sortedPorts(w.portInfo)
	w.AppPorts = make(map[uint32]uint16, len(w.Ports))
	for _, p := range w.Ports {
		if w.AppPorts[p], err = alloc(); err != nil {
			return Workload{}, err
		}
	}
	if v, ok := c.Annotations[AnnotationIngress]; ok {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return Workload{}, fmt.Errorf("metadata.annotations[%s]: %q is not a port number", AnnotationIngress, v)
		}
		w.IngressPort = uint32(n)
		w.IngressPath = c.Annotations[AnnotationIngressPath]
		if w.IngressPath == "" {
			w.IngressPath = "/"
		}
		if !strings.HasPrefix(w.IngressPath, "/") {
			return Workload{}, fmt.Errorf("metadata.annotations[%s]: %q must start with /", AnnotationIngressPath, w.IngressPath)
		}
	}
	if tmpl, ok := c.Annotations[AnnotationRun]; ok {
		w.runTemplate = tmpl
		w.Command, err = render(tmpl, RunData{
			Name: c.Name, Namespace: c.Namespace, Address: addr.String(), Labels: w.Labels,
			Proxy:    netip.AddrPortFrom(addr, proxyPort).String(),
			appPorts: w.AppPorts,
		})
		if err != nil {
			return Workload{}, fmt.Errorf("metadata.annotations[%s]: %w", AnnotationRun, err)
		}
	}
	return w, nil
}

// render executes a run template and splits it into words.
func render(tmpl string, d RunData) ([]string, error) {
	t, err := template.New("run").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return nil, err
	}
	words := strings.Fields(b.String())
	if len(words) == 0 {
		return nil, fmt.Errorf("%q is an empty command", tmpl)
	}
	return words, nil
}

// ports returns the ports at which the workload serves the services that
// select it, as the registry computed them, each with its service port
// (the first service in the snapshot's order wins a shared port).
func ports(snap *model.Snapshot, name, ns, addr string) map[uint32]model.Port {
	out := map[uint32]model.Port{}
	for _, svc := range snap.Services() {
		for _, e := range snap.Endpoints(svc.Key()) {
			if e.WorkloadName != name || e.Namespace != ns || e.Address != addr {
				continue
			}
			for _, p := range svc.Ports {
				if n := e.PortFor(p); n != 0 {
					if _, ok := out[n]; !ok {
						out[n] = p
					}
				}
			}
		}
	}
	return out
}

// sortedPorts returns a port map's keys in order.
func sortedPorts[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
