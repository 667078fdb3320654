package describe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/cli/proxystatus"
	"github.com/trellismesh/trellis/internal/describe"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/up"
	"github.com/trellismesh/trellis/internal/xds/server"
)

// Options are the command's flags.
type Options struct {
	Namespace string
	Dir       string
	RunFile   string
	Output    string
	// From is the client a service is seen from: NAMESPACE or
	// NAMESPACE/WORKLOAD ("" : the service's namespace).
	From string
	// DebugAddress is the control plane's monitoring address; "" takes the
	// run file's. "-" skips the proxy's state.
	DebugAddress string
	DomainSuffix string
	// Client makes the HTTP requests (default: 10s timeout).
	Client *http.Client
}

// NewCommand returns `trellis describe`.
func NewCommand() *cobra.Command {
	o := Options{Namespace: "default", RunFile: up.DefaultRunFile, Output: "text", DomainSuffix: model.DefaultDomainSuffix}
	cmd := &cobra.Command{
		Use:   "describe service|workload NAME",
		Short: "Explain which routes, policies and mTLS settings apply to a service or workload, and why",
		Long: `Describe a service (HOST[:PORT]; short names are completed with --namespace) or a
workload (a WorkloadEntry name in local mode): the VirtualServices and the
DestinationRule that apply to it and why (host match, exportTo, Sidecar scope,
Istio's precedence), the traffic policy of each cluster, the mTLS mode of its
workloads' ports and which PeerAuthentication decided it, the
AuthorizationPolicies that select it, and analysis messages about them.

The configuration is read from --dir, else from the directory the running
'trellis up' watches (its run file). For a workload, the proxy's sync status
and a summary of its listeners and routes are added when the control plane
answers at --xds-debug-address (default: the running mesh's).`,
		Example: `  trellis describe service reviews
  trellis describe service reviews.default.svc.cluster.local:9080 --from default/productpage-v1
  trellis describe workload reviews-v1 -o json
  trellis describe service ratings --dir ./mesh`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "namespace of the service or workload (completes short names)")
	pf.StringVar(&o.Dir, "dir", "", "directory of Istio YAML to read (default: the one the running trellis up watches)")
	pf.StringVar(&o.RunFile, "run-file", o.RunFile, "the run file of trellis up")
	pf.StringVarP(&o.Output, "output", "o", o.Output, "output format: text or json")
	pf.StringVar(&o.DomainSuffix, "domain", o.DomainSuffix, "DNS domain suffix used to complete short host names")
	svc := &cobra.Command{
		Use:     "service HOST[:PORT]",
		Aliases: []string{"svc"},
		Short:   "Explain the routes, rules and policies of a service",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return RunService(c.Context(), c.OutOrStdout(), args[0], o)
		},
	}
	svc.Flags().StringVar(&o.From, "from", "", "the client: NAMESPACE or NAMESPACE/WORKLOAD (default: sidecars in the service's namespace)")
	wl := &cobra.Command{
		Use:   "workload NAME",
		Short: "Explain the services, Sidecar, mTLS and authorization of a workload, and its proxy's state",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return RunWorkload(c.Context(), c.OutOrStdout(), args[0], o)
		},
	}
	wl.Flags().StringVar(&o.DebugAddress, "xds-debug-address", "", "the control plane's monitoring address (default: the running trellis up's; - to skip the proxy's state)")
	cmd.AddCommand(svc, wl)
	return cmd
}

func checkOutput(o Options) error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("--output: unknown format %q (want text or json)", o.Output)
	}
	return nil
}

// source returns the directory to read and the run file's monitoring
// address ("" when --dir is used or none is recorded).
func source(o Options) (dir, monitoring string, err error) {
	if o.Dir != "" {
		st, err := os.Stat(o.Dir)
		if err != nil {
			return "", "", fmt.Errorf("--dir: %w", err)
		}
		if !st.IsDir() {
			return "", "", fmt.Errorf("--dir: %s is not a directory", o.Dir)
		}
		abs, err := filepath.Abs(o.Dir)
		return abs, "", err
	}
	ri, err := up.ReadRunFile(o.RunFile)
	if err != nil {
		if errors.Is(err, up.ErrNotRunning) {
			return "", "", fmt.Errorf("%w: start it (trellis up), run this command where you ran it, or pass --dir", err)
		}
		return "", "", err
	}
	return ri.Dir, ri.Monitoring, nil
}

// load reads dir as the control plane does and analyses it.
func load(ctx context.Context, dir, suffix string) (describe.Input, error) {
	in, err := analysis.Load(ctx, analysis.LoadConfig{Dirs: []string{dir}, DomainSuffix: suffix})
	if err != nil {
		return describe.Input{}, err
	}
	return describe.Input{Snapshot: in.Snapshot, Messages: analysis.Analyze(in)}, nil
}

// viewpoint resolves --from.
func viewpoint(in describe.Input, from string) (describe.Viewpoint, error) {
	if from == "" {
		return describe.Viewpoint{}, nil
	}
	ns, name, ok := strings.Cut(from, "/")
	if !ok {
		return describe.Viewpoint{Namespace: from}, nil
	}
	_, ep, err := describe.FindWorkload(in.Snapshot, ns, name)
	if err != nil {
		return describe.Viewpoint{}, fmt.Errorf("--from: %w", err)
	}
	return describe.Viewpoint{Namespace: ns, Workload: name, Labels: ep.Labels}, nil
}

// RunService prints the description of a service.
func RunService(ctx context.Context, w io.Writer, arg string, o Options) error {
	if err := checkOutput(o); err != nil {
		return err
	}
	ref, err := describe.ParseServiceRef(arg, o.Namespace)
	if err != nil {
		return err
	}
	dir, _, err := source(o)
	if err != nil {
		return err
	}
	in, err := load(ctx, dir, o.DomainSuffix)
	if err != nil {
		return err
	}
	from, err := viewpoint(in, o.From)
	if err != nil {
		return err
	}
	r, err := describe.Service(in, ref, from)
	if err != nil {
		return fmt.Errorf("%w (read from %s)", err, dir)
	}
	if o.Output == "json" {
		return writeJSON(w, r)
	}
	return describe.WriteService(w, r)
}

// Proxy is the live state of a workload's proxy, from the control plane.
type Proxy struct {
	// ID is the pod.namespace name the control plane knows it by.
	ID   string              `json:"id"`
	Sync []server.SyncStatus `json:"sync"`
	// Listeners and Routes are proxy-config's tables of what the control
	// plane sends it.
	Listeners proxyconfig.Table `json:"listeners"`
	Routes    proxyconfig.Table `json:"routes"`
	// Error says why the state could not be read ("" when it was).
	Error string `json:"error,omitempty"`
}

// RunWorkload prints the description of a workload and, when the control
// plane answers, its proxy's state.
func RunWorkload(ctx context.Context, w io.Writer, name string, o Options) error {
	if err := checkOutput(o); err != nil {
		return err
	}
	ns := o.Namespace
	if n, s, ok := strings.Cut(name, "."); ok {
		name, ns = n, s
	}
	dir, monitoring, err := source(o)
	if err != nil {
		return err
	}
	in, err := load(ctx, dir, o.DomainSuffix)
	if err != nil {
		return err
	}
	r, err := describe.Workload(in, ns, name)
	if err != nil {
		return fmt.Errorf("%w (read from %s)", err, dir)
	}
	addr := o.DebugAddress
	explicit := addr != ""
	if !explicit {
		addr = monitoring
	}
	var px *Proxy
	if addr != "" && addr != "-" {
		px = fetchProxy(ctx, o.Client, addr, name+"."+ns)
		if px.Error != "" && explicit {
			return errors.New(px.Error)
		}
	}
	if o.Output == "json" {
		return writeJSON(w, struct {
			Workload *describe.WorkloadReport `json:"workload"`
			Proxy    *Proxy                   `json:"proxy,omitempty"`
		}{r, px})
	}
	if err := describe.WriteWorkload(w, r); err != nil {
		return err
	}
	return writeProxy(w, px)
}

func writeProxy(w io.Writer, px *Proxy) error {
	if px == nil {
		_, err := fmt.Fprintln(w, "\nProxy:\n  not read: no control plane address (pass --xds-debug-address, or run trellis up)")
		return err
	}
	fmt.Fprintf(w, "\nProxy %s:\n", px.ID)
	if px.Error != "" {
		_, err := fmt.Fprintf(w, "  not read: %s\n", px.Error)
		return err
	}
	if err := proxystatus.WriteDetail(w, px.Sync); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nListeners (from the control plane):\n")
	if err := px.Listeners.Write(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRoutes (from the control plane):\n")
	return px.Routes.Write(w)
}

// fetchProxy reads the proxy's sync status and config dump; failures are
// recorded in Error.
func fetchProxy(ctx context.Context, c *http.Client, addr, id string) *Proxy {
	px := &Proxy{ID: id}
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	st, err := proxystatus.Fetch(ctx, proxystatus.Options{DebugAddress: addr, Client: c})
	if err != nil {
		px.Error = err.Error()
		return px
	}
	px.Sync = proxystatus.Select(st, id)
	if len(px.Sync) == 0 {
		px.Error = fmt.Sprintf("proxy %s is not connected to the control plane at %s", id, addr)
		return px
	}
	raw, err := get(ctx, c, addr, "/debug/config_dump?proxyID="+url.QueryEscape(id))
	if err != nil {
		px.Error = err.Error()
		return px
	}
	d, err := proxyconfig.Parse(raw)
	if err != nil {
		px.Error = fmt.Sprintf("config dump of %s: %v", id, err)
		return px
	}
	px.Listeners = proxyconfig.ListenerTable(d, proxyconfig.Filter{})
	px.Routes = proxyconfig.RouteTable(d, proxyconfig.Filter{})
	return px
}

func get(ctx context.Context, c *http.Client, addr, path string) ([]byte, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u := strings.TrimRight(addr, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
