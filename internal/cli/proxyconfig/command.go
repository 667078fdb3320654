package proxyconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DefaultDebugAddress is the control plane's monitoring address, which
// serves /debug/config_dump to local callers.
const DefaultDebugAddress = "127.0.0.1:15014"

// Options are the command's flags.
type Options struct {
	// DebugAddress is the control plane's monitoring address (host:port or
	// URL).
	DebugAddress string
	// Admin, when set, is a proxy's admin address (host:port or URL): its
	// own /config_dump (and /clusters for endpoints) are read instead of
	// what the control plane sent it.
	Admin string
	// Namespace completes a proxy name given without one.
	Namespace string
	// Output is "table" (default) or "json" (the raw section).
	Output string
	Filter Filter
	// Client makes the HTTP requests (default: 10s timeout).
	Client *http.Client
	// Warnings receives problems of the dump (resources the proxy could
	// not dump); nil discards them.
	Warnings io.Writer
}

// NewCommand returns `trellis proxy-config`.
func NewCommand() *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:     "proxy-config",
		Aliases: []string{"pc"},
		Short:   "Show the configuration of a proxy: listeners, routes, clusters, endpoints, secrets",
		Long: `Show a proxy's xDS configuration as tables (istioctl's layout) or, with -o json, the raw
section of its config dump.

By default the config is what the control plane sends the proxy, read from its
/debug/config_dump (--xds-debug-address, loopback only). With --admin the proxy's
own admin endpoint is read instead (its /config_dump, and /clusters for endpoints,
which adds outlier-detection state).

PROXY is the proxy's pod.namespace name as trellis proxy-status prints it (a name
without a dot is completed with --namespace), or its full node ID.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.DebugAddress, "xds-debug-address", DefaultDebugAddress, "the control plane's monitoring address (serves /debug/config_dump)")
	pf.StringVar(&o.Admin, "admin", "", "read a proxy's own admin endpoint (host:port or URL, e.g. 127.0.0.1:15000) instead of the control plane")
	pf.StringVarP(&o.Namespace, "namespace", "n", "default", "namespace of a proxy named without one")
	pf.StringVarP(&o.Output, "output", "o", "table", "output format: table or json")

	sub := func(sec Section, short string, flags func(*cobra.Command)) *cobra.Command {
		c := &cobra.Command{
			Use:   string(sec) + " [PROXY]",
			Short: short,
			Args:  cobra.MaximumNArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				proxy := ""
				if len(args) == 1 {
					proxy = args[0]
				}
				o.Warnings = c.ErrOrStderr()
				return Run(c.Context(), c.OutOrStdout(), sec, proxy, o)
			},
		}
		if flags != nil {
			flags(c)
		}
		return c
	}
	cmd.AddCommand(
		sub(Listeners, "Listeners: addresses, ports, filter chain matches and destinations", func(c *cobra.Command) {
			c.Flags().Uint32Var(&o.Filter.Port, "port", 0, "only listeners on this port")
			c.Flags().StringVar(&o.Filter.Address, "address", "", "only listeners on this IP")
		}),
		sub(Routes, "Routes: route configurations, virtual hosts, matches and their VirtualService", func(c *cobra.Command) {
			c.Flags().StringVar(&o.Filter.Name, "name", "", "only this route configuration")
		}),
		sub(Clusters, "Clusters: service, port, subset, direction, type and their DestinationRule", func(c *cobra.Command) {
			c.Flags().StringVar(&o.Filter.FQDN, "fqdn", "", "only clusters of this service host name")
			c.Flags().Uint32Var(&o.Filter.Port, "port", 0, "only clusters of this port")
			c.Flags().StringVar(&o.Filter.Subset, "subset", "", "only clusters of this subset")
			c.Flags().StringVar(&o.Filter.Direction, "direction", "", "only inbound or outbound clusters")
		}),
		sub(Endpoints, "Endpoints: hosts of each cluster with health and outlier state", func(c *cobra.Command) {
			c.Flags().StringVar(&o.Filter.Cluster, "cluster", "", "only endpoints of this cluster")
			c.Flags().Uint32Var(&o.Filter.Port, "port", 0, "only endpoints on this port")
			c.Flags().StringVar(&o.Filter.Address, "address", "", "only endpoints with this IP")
			c.Flags().StringVar(&o.Filter.Status, "status", "", "only endpoints with this health status (e.g. HEALTHY)")
		}),
		sub(Secrets, "Secrets: the SDS secrets the proxy holds or its TLS settings reference", nil),
	)
	return cmd
}

// Run prints one section of a proxy's configuration.
func Run(ctx context.Context, w io.Writer, sec Section, proxy string, o Options) error {
	if o.Output != "table" && o.Output != "json" && o.Output != "" {
		return fmt.Errorf("unknown output format %q (want table or json)", o.Output)
	}
	if o.Filter.Direction != "" && o.Filter.Direction != "inbound" && o.Filter.Direction != "outbound" {
		return fmt.Errorf("--direction %q: want inbound or outbound", o.Filter.Direction)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	var raw []byte
	var err error
	if o.Admin != "" {
		raw, err = get(ctx, o.Client, base(o.Admin)+"/config_dump", "the proxy's config dump", "--admin")
	} else {
		if proxy == "" {
			return fmt.Errorf("name the proxy (pod.namespace or node ID, as trellis proxy-status lists them), or read a proxy directly with --admin")
		}
		if !strings.ContainsAny(proxy, ".~") {
			proxy += "." + o.Namespace
		}
		raw, err = get(ctx, o.Client, base(o.DebugAddress)+"/debug/config_dump?proxyID="+url.QueryEscape(proxy),
			fmt.Sprintf("the config of proxy %q from the control plane", proxy), "--xds-debug-address")
	}
	if err != nil {
		return err
	}
	d, err := Parse(raw)
	if err != nil {
		return err
	}
	if o.Warnings != nil {
		for _, p := range d.Problems {
			fmt.Fprintln(o.Warnings, "warning:", p)
		}
	}
	if sec == Endpoints && o.Admin != "" {
		// The proxy's /clusters has the hosts it really uses, with outlier state.
		cl, err := get(ctx, o.Client, base(o.Admin)+"/clusters?format=json", "the proxy's clusters", "--admin")
		if err != nil {
			return err
		}
		if o.Output == "json" {
			return writeRaw(w, cl)
		}
		rows, err := ParseAdminClusters(cl)
		if err != nil {
			return err
		}
		return EndpointTable(rows, o.Filter).Write(w)
	}
	if o.Output == "json" {
		if r := d.Raw(sec); r != nil {
			return writeRaw(w, r)
		}
		if sec == Secrets {
			b, err := json.MarshalIndent(SecretRefs(d), "", "  ")
			if err != nil {
				return err
			}
			return writeRaw(w, b)
		}
		return writeRaw(w, []byte("{}"))
	}
	switch sec {
	case Listeners:
		return ListenerTable(d, o.Filter).Write(w)
	case Routes:
		return RouteTable(d, o.Filter).Write(w)
	case Clusters:
		return ClusterTable(d, o.Filter).Write(w)
	case Endpoints:
		return EndpointTable(EDSEndpoints(d), o.Filter).Write(w)
	case Secrets:
		t := SecretTable(d)
		if len(t.Rows) == 0 {
			_, err := fmt.Fprintln(w, NoSecrets)
			return err
		}
		return t.Write(w)
	}
	return fmt.Errorf("unknown section %q", sec)
}

func writeRaw(w io.Writer, raw []byte) error {
	b, err := compactJSON(raw)
	if err != nil {
		return fmt.Errorf("printing JSON: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// base turns host:port or a URL into a URL without a trailing slash.
func base(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

// get fetches u; errors name what was read and the flag that sets where.
func get(ctx context.Context, c *http.Client, u, what, flag string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %s: %w", what, flag, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w (is it running here? %s sets the address)", what, err, flag)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", what, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
