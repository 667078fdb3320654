package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trellismesh/trellis/internal/dataplane/capture"
)

// iptablesOptions are `trellis proxy iptables` flags, as strings in Istio's
// syntax so that errors can quote exactly what was given.
type iptablesOptions struct {
	envoyPort            string
	inboundCapturePort   string
	inboundTunnelPort    string
	proxyUID             string
	proxyGID             string
	interceptionMode     string
	tproxyMark           string
	tproxyRouteTable     string
	inboundPorts         string
	inboundPortsExclude  string
	serviceCIDR          string
	serviceExcludeCIDR   string
	outboundPorts        string
	outboundPortsExclude string
	dualStack            bool
	backend              string
	dryRun               bool
	clean                bool
}

// envBinding ties a flag to the environment variable Istio's istio-iptables
// reads for it (viper AutomaticEnv: the flag name upper-cased, "-" → "_"),
// except dual-stack, which Istio reads from ISTIO_AGENT_DUAL_STACK. A flag
// given on the command line wins; an empty variable counts as unset.
type envBinding struct{ flag, env string }

func iptablesEnv() []envBinding {
	return []envBinding{
		{"envoy-port", "ENVOY_PORT"},
		{"inbound-capture-port", "INBOUND_CAPTURE_PORT"},
		{"inbound-tunnel-port", "INBOUND_TUNNEL_PORT"},
		{"proxy-uid", "PROXY_UID"},
		{"proxy-gid", "PROXY_GID"},
		{"istio-inbound-interception-mode", "ISTIO_INBOUND_INTERCEPTION_MODE"},
		{"istio-inbound-tproxy-mark", "INBOUND_TPROXY_MARK"},
		{"istio-inbound-tproxy-route-table", "INBOUND_TPROXY_ROUTE_TABLE"},
		{"istio-inbound-ports", "ISTIO_INBOUND_PORTS"},
		{"istio-local-exclude-ports", "ISTIO_LOCAL_EXCLUDE_PORTS"},
		{"istio-service-cidr", "ISTIO_SERVICE_CIDR"},
		{"istio-service-exclude-cidr", "ISTIO_SERVICE_EXCLUDE_CIDR"},
		{"istio-outbound-ports", "ISTIO_OUTBOUND_PORTS"},
		{"istio-local-outbound-ports-exclude", "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"},
		{"dual-stack", "ISTIO_AGENT_DUAL_STACK"},
	}
}

// configFields maps capture.Config fields to the flags that set them, so
// that validation errors name the flag.
func configFields() map[string]string {
	return map[string]string{
		"ProxyPort":               "envoy-port",
		"InboundCapturePort":      "inbound-capture-port",
		"InboundTunnelPort":       "inbound-tunnel-port",
		"ProxyUIDs":               "proxy-uid",
		"ProxyGIDs":               "proxy-gid",
		"InboundInterceptionMode": "istio-inbound-interception-mode",
		"TProxyMark":              "istio-inbound-tproxy-mark",
		"TProxyRouteTable":        "istio-inbound-tproxy-route-table",
		"InboundPorts":            "istio-inbound-ports",
		"InboundPortsExclude":     "istio-local-exclude-ports",
		"OutboundCIDRs":           "istio-service-cidr",
		"OutboundCIDRsExclude":    "istio-service-exclude-cidr",
		"OutboundPorts":           "istio-outbound-ports",
		"OutboundPortsExclude":    "istio-local-outbound-ports-exclude",
	}
}

func newIptablesCommand(d deps) *cobra.Command {
	var o iptablesOptions
	cmd := &cobra.Command{
		Use:   "iptables",
		Short: "Install the sidecar's traffic capture rules in the current network namespace",
		Long: `Install iptables rules that send a pod's TCP traffic through its sidecar proxy:
outbound connections to --envoy-port (15001), inbound ones to
--inbound-capture-port (15006), except the proxy's own traffic (--proxy-uid,
--proxy-gid). This is what Istio's istio-iptables (the istio-init container)
does, with the same flags, environment variables, chains and rules.

Rules are installed with one iptables-restore --noflush transaction per IP
family; existing ISTIO_* chains are replaced. --clean removes them,
--dry-run prints them.

-m TPROXY captures both directions with the mangle table's TPROXY target and
a policy route (fwmark --istio-inbound-tproxy-mark → table
--istio-inbound-tproxy-route-table), never the nat table, so connections are
not tracked; the proxy's capture listeners must be transparent (the control
plane makes them so for a proxy whose INTERCEPTION_MODE is TPROXY) and the
proxy needs CAP_NET_ADMIN. It captures every inbound port but the excluded
ones (-b '*'). Flags may also be set through Istio's environment
variables (ENVOY_PORT, ISTIO_INBOUND_PORTS, ISTIO_SERVICE_CIDR, ...); a flag
on the command line wins.`,
		Example: `  trellis proxy iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020
  trellis proxy iptables --dry-run --istio-service-exclude-cidr 169.254.169.254/32
  trellis proxy iptables --clean`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := applyEnv(cmd.Flags(), d.getenv)
			if err != nil {
				return err
			}
			return o.run(cmd, d, from)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.envoyPort, "envoy-port", "p", "15001", "port that receives captured outbound TCP traffic (env ENVOY_PORT)")
	f.StringVarP(&o.inboundCapturePort, "inbound-capture-port", "z", "15006", "port that receives captured inbound TCP traffic (env INBOUND_CAPTURE_PORT)")
	f.StringVarP(&o.inboundTunnelPort, "inbound-tunnel-port", "e", "15008", "HBONE tunnel port, never captured (env INBOUND_TUNNEL_PORT)")
	f.StringVarP(&o.proxyUID, "proxy-uid", "u", "1337", "comma-separated UIDs whose traffic is not captured: the proxy's (env PROXY_UID)")
	f.StringVarP(&o.proxyGID, "proxy-gid", "g", "", "comma-separated GIDs whose traffic is not captured (default: same as --proxy-uid) (env PROXY_GID)")
	f.StringVarP(&o.interceptionMode, "istio-inbound-interception-mode", "m", "REDIRECT", "how traffic is captured: REDIRECT (nat) or TPROXY (mangle, no connection tracking; both directions) (env ISTIO_INBOUND_INTERCEPTION_MODE)")
	f.StringVar(&o.tproxyMark, "istio-inbound-tproxy-mark", "1337", "TPROXY mode: the packet mark that selects the local route table (env INBOUND_TPROXY_MARK)")
	f.StringVar(&o.tproxyRouteTable, "istio-inbound-tproxy-route-table", "133", "TPROXY mode: the route table that delivers marked packets locally (env INBOUND_TPROXY_ROUTE_TABLE)")
	f.StringVarP(&o.inboundPorts, "istio-inbound-ports", "b", "*", `comma-separated inbound ports to capture; "*" for all, "" for none (env ISTIO_INBOUND_PORTS)`)
	f.StringVarP(&o.inboundPortsExclude, "istio-local-exclude-ports", "d", "", `comma-separated inbound ports not captured when -b is "*"; 15090,15021,15020 always are (env ISTIO_LOCAL_EXCLUDE_PORTS)`)
	f.StringVarP(&o.serviceCIDR, "istio-service-cidr", "i", "*", `comma-separated destination CIDRs to capture; "*" for all, "" for none (env ISTIO_SERVICE_CIDR)`)
	f.StringVarP(&o.serviceExcludeCIDR, "istio-service-exclude-cidr", "x", "", "comma-separated destination CIDRs never captured (env ISTIO_SERVICE_EXCLUDE_CIDR)")
	f.StringVarP(&o.outboundPorts, "istio-outbound-ports", "q", "", "comma-separated destination ports always captured (env ISTIO_OUTBOUND_PORTS)")
	f.StringVarP(&o.outboundPortsExclude, "istio-local-outbound-ports-exclude", "o", "", "comma-separated destination ports never captured (env ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE)")
	f.BoolVar(&o.dualStack, "dual-stack", false, "also install (or --clean) the IPv6 rules, with ip6tables (env ISTIO_AGENT_DUAL_STACK)")
	f.StringVar(&o.backend, "iptables-backend", "auto", "iptables implementation: auto (the installed iptables-restore), nft or legacy")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "print the iptables-restore input instead of applying it")
	f.BoolVar(&o.clean, "clean", false, "remove the ISTIO_* chains and the jumps into them instead of installing rules")
	return cmd
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if that is non-empty. It returns, per flag set this
// way, the variable's name, so that errors can say where a value came from.
func applyEnv(fs *pflag.FlagSet, getenv env) (map[string]string, error) {
	from := map[string]string{}
	for _, b := range iptablesEnv() {
		fl := fs.Lookup(b.flag)
		if fl == nil || fl.Changed {
			continue
		}
		v := getenv(b.env)
		if v == "" {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			return nil, fmt.Errorf("--%s %q (from $%s): %w", b.flag, v, b.env, err)
		}
		from[b.flag] = b.env
	}
	return from, nil
}

// flagError names the flag, the offending value and, if it came from the
// environment, the variable.
func flagError(name, value string, from map[string]string, reason error) error {
	src := ""
	if env, ok := from[name]; ok {
		src = " (from $" + env + ")"
	}
	return fmt.Errorf("--%s %q%s: %w", name, value, src, reason)
}

// config turns the options into a capture.Config; every error names its flag.
func (o iptablesOptions) config(from map[string]string) (capture.Config, error) {
	cfg := capture.DefaultConfig()
	var errs []error
	port := func(name, value string, dst *uint16) {
		p, err := strconv.ParseUint(strings.TrimSpace(value), 10, 16)
		if err != nil || p == 0 {
			errs = append(errs, flagError(name, value, from, errors.New("not a port number (1-65535)")))
			return
		}
		*dst = uint16(p)
	}
	port("envoy-port", o.envoyPort, &cfg.ProxyPort)
	port("inbound-capture-port", o.inboundCapturePort, &cfg.InboundCapturePort)
	port("inbound-tunnel-port", o.inboundTunnelPort, &cfg.InboundTunnelPort)

	parse := func(name, value string, fn func(string) error) {
		if err := fn(value); err != nil {
			errs = append(errs, flagError(name, value, from, err))
		}
	}
	parse("proxy-uid", o.proxyUID, func(s string) (err error) { cfg.ProxyUIDs, err = capture.ParseIDList(s); return err })
	if strings.TrimSpace(o.proxyGID) == "" {
		cfg.ProxyGIDs = slices.Clone(cfg.ProxyUIDs) // Istio: the GID defaults to the UID
	} else {
		parse("proxy-gid", o.proxyGID, func(s string) (err error) { cfg.ProxyGIDs, err = capture.ParseIDList(s); return err })
	}
	cfg.InboundInterceptionMode = o.mode()
	if r, err := o.routing(from); err != nil {
		errs = append(errs, err)
	} else {
		cfg.TProxyMark, cfg.TProxyRouteTable = r.Mark, r.Table
	}
	parse("istio-inbound-ports", o.inboundPorts, func(s string) (err error) { cfg.InboundPorts, err = capture.ParsePorts(s); return err })
	parse("istio-local-exclude-ports", o.inboundPortsExclude, func(s string) (err error) {
		cfg.InboundPortsExclude, err = capture.ParsePortList(s)
		return err
	})
	parse("istio-service-cidr", o.serviceCIDR, func(s string) (err error) { cfg.OutboundCIDRs, err = capture.ParseCIDRs(s); return err })
	parse("istio-service-exclude-cidr", o.serviceExcludeCIDR, func(s string) (err error) {
		cfg.OutboundCIDRsExclude, err = capture.ParseCIDRList(s)
		return err
	})
	parse("istio-outbound-ports", o.outboundPorts, func(s string) (err error) { cfg.OutboundPorts, err = capture.ParsePortList(s); return err })
	parse("istio-local-outbound-ports-exclude", o.outboundPortsExclude, func(s string) (err error) {
		cfg.OutboundPortsExclude, err = capture.ParsePortList(s)
		return err
	})
	cfg.IPv6 = o.dualStack
	if len(errs) > 0 {
		return capture.Config{}, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return capture.Config{}, renameFields(err, from)
	}
	return cfg, nil
}

// parseUint32 parses a decimal or 0x-prefixed hexadecimal 32-bit value, as
// marks and route tables are written.
func parseUint32(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
	if err != nil {
		return 0, errors.New("not a 32-bit unsigned number")
	}
	return uint32(v), nil
}

// mode is -m, upper-cased; REDIRECT when empty.
func (o iptablesOptions) mode() capture.InterceptionMode {
	if m := capture.InterceptionMode(strings.ToUpper(strings.TrimSpace(o.interceptionMode))); m != "" {
		return m
	}
	return capture.Redirect
}

// routing parses TPROXY mode's packet mark and route table; errors name
// their flags.
func (o iptablesOptions) routing(from map[string]string) (capture.Routing, error) {
	var errs []error
	mark, err := parseUint32(o.tproxyMark)
	if err != nil {
		errs = append(errs, flagError("istio-inbound-tproxy-mark", o.tproxyMark, from, err))
	}
	table, err := parseUint32(o.tproxyRouteTable)
	if err != nil {
		errs = append(errs, flagError("istio-inbound-tproxy-route-table", o.tproxyRouteTable, from, err))
	}
	return capture.Routing{Mark: mark, Table: table}, errors.Join(errs...)
}

// cleanup removes the ISTIO_* rules and, with -m TPROXY, the policy rule
// and route TPROXY mode installed (as Istio's cleanup does).
func (o iptablesOptions) cleanup(cmd *cobra.Command, d deps, ipt *capture.Iptables, from map[string]string) error {
	ipv6 := o.dualStack
	if err := ipt.Remove(cmd.Context(), ipv6); err != nil {
		return fmt.Errorf("removing capture rules: %w", err)
	}
	if o.mode() == capture.TProxy {
		r, err := o.routing(from)
		if err != nil {
			return err
		}
		if err := ipt.RemoveRouting(cmd.Context(), r, ipv6); err != nil {
			return fmt.Errorf("removing TPROXY routing: %w", err)
		}
	}
	d.logger.Info("removed traffic capture rules", "ipv6", ipv6)
	return nil
}

// renameFields rewrites capture.Config validation errors to name flags.
func renameFields(err error, from map[string]string) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	flags := configFields()
	var out []error
	for _, e := range list {
		var fe *capture.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		field, _, _ := strings.Cut(fe.Field, "[") // "InboundPorts[1]" → "InboundPorts"
		name, ok := flags[field]
		if !ok {
			out = append(out, e)
			continue
		}
		reason := errors.New(fe.Reason)
		if fe.Err != nil {
			reason = fmt.Errorf("%s: %w", fe.Reason, fe.Err)
		}
		out = append(out, flagError(name, fe.Value, from, reason))
	}
	return errors.Join(out...)
}

func (o iptablesOptions) run(cmd *cobra.Command, d deps, from map[string]string) error {
	if o.dryRun && o.clean {
		return errors.New("--dry-run and --clean cannot be combined")
	}
	backend, err := capture.ParseBackend(o.backend)
	if err != nil {
		return flagError("iptables-backend", o.backend, from, err)
	}
	ipt, err := capture.NewIptables(d.runner, backend)
	if err != nil {
		return err
	}
	if o.clean {
		return o.cleanup(cmd, d, ipt, from)
	}
	cfg, err := o.config(from)
	if err != nil {
		return err
	}
	rs, err := capture.Rules(cfg)
	if err != nil {
		return err
	}
	if o.dryRun {
		_, err := fmt.Fprint(cmd.OutOrStdout(), rs.String())
		return err
	}
	if err := ipt.Apply(cmd.Context(), rs); err != nil {
		return fmt.Errorf("installing capture rules: %w", err)
	}
	d.logger.Info("installed traffic capture rules", "mode", cfg.InboundInterceptionMode,
		"outbound_port", cfg.ProxyPort, "inbound_port", cfg.InboundCapturePort, "ipv6", cfg.IPv6)
	return nil
}
