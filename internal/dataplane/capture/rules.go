package capture

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Chains created by the rule set, named as Istio names them so that
// operators' tooling and muscle memory keep working.
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainRedirect   = "ISTIO_REDIRECT"
	// ChainDivert and ChainTProxy belong to TPROXY mode (mangle table, with
	// ChainInbound and ChainOutput): ISTIO_DIVERT marks a packet for the
	// policy route that delivers it locally, ISTIO_TPROXY hands a new
	// inbound connection to the inbound capture port.
	ChainDivert = "ISTIO_DIVERT"
	ChainTProxy = "ISTIO_TPROXY"
)

// managedChains are, per table, the chains Apply and Remove own.
func managedChains(table string) []string {
	switch table {
	case "nat":
		return []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput}
	case "mangle":
		return []string{ChainInbound, ChainDivert, ChainTProxy, ChainOutput}
	}
	return nil
}

// Family is an IP family: IPv4 (iptables) or IPv6 (ip6tables).
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Table is one iptables table's part of a rule set.
type Table struct {
	Name   string   // "nat" (REDIRECT) or "mangle" (TPROXY)
	Chains []string // chains to create, in order
	Rules  []string // rules in iptables-restore syntax: "-A CHAIN match... -j TARGET"
}

// Ruleset is the generated capture: per family, the tables to program,
// and in TPROXY mode the policy routing the marks rely on. It is a value;
// Rules builds it and Iptables.Apply installs it.
type Ruleset struct {
	IPv4    []Table
	IPv6    []Table // empty unless Config.IPv6
	Routing Routing // zero in REDIRECT mode
}

// Tables returns the family's tables.
func (r Ruleset) Tables(f Family) []Table {
	if f == IPv6 {
		return r.IPv6
	}
	return r.IPv4
}

// Families lists the families the rule set programs.
func (r Ruleset) Families() []Family {
	fams := []Family{IPv4}
	if len(r.IPv6) > 0 {
		fams = append(fams, IPv6)
	}
	return fams
}

// Restore is the family's iptables-restore input for a namespace without
// capture rules (to be used with --noflush). Apply adds removal of any
// existing ISTIO_* rules to it.
func (r Ruleset) Restore(f Family) string {
	var b strings.Builder
	for _, t := range r.Tables(f) {
		writeTable(&b, t, nil)
	}
	return b.String()
}

// String renders every family's input, each under a comment naming its tool;
// it is what `trellis proxy iptables --dry-run` prints.
func (r Ruleset) String() string {
	var b strings.Builder
	for i, f := range r.Families() {
		if i > 0 {
			b.WriteString("\n")
		}
		tool := "iptables-restore"
		if f == IPv6 {
			tool = "ip6tables-restore"
		}
		if r.Routing.enabled() {
			for _, cmd := range r.Routing.addCommands(f) {
				fmt.Fprintf(&b, "# ip %s\n", strings.Join(cmd, " "))
			}
		}
		fmt.Fprintf(&b, "# %s --noflush\n", tool)
		b.WriteString(r.Restore(f))
	}
	return b.String()
}

// writeTable writes one table block; pre are lines (deletions of old rules)
// placed after the chain declarations and before the new rules.
func writeTable(b *strings.Builder, t Table, pre []string) {
	fmt.Fprintf(b, "*%s\n", t.Name)
	for _, c := range t.Chains {
		fmt.Fprintf(b, ":%s - [0:0]\n", c)
	}
	for _, l := range pre {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, l := range t.Rules {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString("COMMIT\n")
}

// familyAddrs are the loopback addresses the rules name, per family.
type familyAddrs struct {
	inboundPassthroughSrc string // the proxy's source address when it connects to the app
	localhost             string // the address apps use to reach each other without the proxy
}

func addrsFor(f Family) familyAddrs {
	if f == IPv6 {
		return familyAddrs{inboundPassthroughSrc: "::6/128", localhost: "::1/128"}
	}
	return familyAddrs{inboundPassthroughSrc: "127.0.0.6/32", localhost: "127.0.0.1/32"}
}

// Rules generates the capture rule set for cfg. It is a pure function:
// the output depends only on cfg and is deterministic, in Istio's order.
func Rules(cfg Config) (Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return Ruleset{}, fmt.Errorf("invalid capture config: %w", err)
	}
	table := natTable
	var routing Routing
	if cfg.InboundInterceptionMode == TProxy {
		table = mangleTable
		routing = Routing{Mark: cfg.TProxyMark, Table: cfg.TProxyRouteTable}
	}
	rs := Ruleset{IPv4: []Table{table(cfg, IPv4)}, Routing: routing}
	if cfg.IPv6 {
		rs.IPv6 = []Table{table(cfg, IPv6)}
	}
	return rs, nil
}

func port(p uint16) string { return strconv.Itoa(int(p)) }

// natTable builds the nat table for one family. The order of rules follows
// Istio's istio-iptables, which matters: the first match wins.
func natTable(cfg Config, f Family) Table {
	t := Table{Name: "nat", Chains: []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput}}
	add := func(chain string, args ...string) {
		t.Rules = append(t.Rules, "-A "+chain+" "+strings.Join(args, " "))
	}

	// The tunnel (HBONE) port is never captured; the two redirect chains.
	add(ChainInbound, "-p", "tcp", "--dport", port(cfg.InboundTunnelPort), "-j", "RETURN")
	add(ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", port(cfg.ProxyPort))
	add(ChainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", port(cfg.InboundCapturePort))

	// Inbound: everything arriving from outside (PREROUTING) is captured,
	// except excluded ports, or only the listed ports.
	if capturesInbound(cfg) {
		add("PREROUTING", "-p", "tcp", "-j", ChainInbound)
		inboundRules(cfg, add, ChainInRedirect)
	}

	// Outbound: everything the pod sends (OUTPUT) goes through ISTIO_OUTPUT.
	add("OUTPUT", "-p", "tcp", "-j", ChainOutput)
	outputRules(cfg, f, add, outputTargets{
		outbound: []string{"-j", ChainRedirect},
		inbound:  []string{"-j", ChainInRedirect},
	})
	return t
}

func capturesInbound(cfg Config) bool { return cfg.InboundPorts.All || len(cfg.InboundPorts.List) > 0 }

// inboundRules appends ISTIO_INBOUND's port rules: every port but the
// excluded ones (and the proxy's own), or only the listed ports, go to
// target.
func inboundRules(cfg Config, add func(chain string, args ...string), target string) {
	if cfg.InboundPorts.All {
		for _, p := range dedupPorts(alwaysExcludedInboundPorts(), cfg.InboundPortsExclude) {
			add(ChainInbound, "-p", "tcp", "--dport", port(p), "-j", "RETURN")
		}
		add(ChainInbound, "-p", "tcp", "-j", target)
		return
	}
	for _, p := range dedupPorts(cfg.InboundPorts.List) {
		add(ChainInbound, "-p", "tcp", "--dport", port(p), "-j", target)
	}
}

// outputTargets are where ISTIO_OUTPUT sends a connection it captures: to
// the outbound capture port, or (the proxy calling its own pod's address)
// to the inbound one. They are complete rule tails ("-j CHAIN", with any
// extra match in front).
type outputTargets struct {
	outbound, inbound []string
}

// outputRules appends ISTIO_OUTPUT's rules, the same for both modes but for
// the targets. The order follows Istio's istio-iptables: the first match
// wins.
func outputRules(cfg Config, f Family, add func(chain string, args ...string), to outputTargets) {
	addrs := addrsFor(f)
	for _, p := range dedupPorts(cfg.OutboundPortsExclude) {
		add(ChainOutput, "-p", "tcp", "--dport", port(p), "-j", "RETURN")
	}
	// The proxy's inbound passthrough connects to the app from 127.0.0.6.
	add(ChainOutput, "-o", "lo", "-s", addrs.inboundPassthroughSrc, "-j", "RETURN")

	// If the include list names a loopback range, app-to-localhost traffic
	// is meant to be captured: keep Istio's exception.
	loopbackIncluded := false
	for _, p := range cfg.OutboundCIDRs.List {
		if p.Addr().IsLoopback() {
			loopbackIncluded = true
		}
	}
	owner := func(flag, id string) {
		// The proxy calling the pod's own (non-localhost) address, e.g. an
		// app calling its own service VIP (app → outbound proxy → inbound
		// proxy → app): send it to the inbound capture port.
		rule := []string{"-o", "lo", "!", "-d", addrs.localhost, "-p", "tcp", "!", "--dport", port(cfg.InboundTunnelPort),
			"-m", "owner", flag, id}
		add(ChainOutput, append(rule, to.inbound...)...)
		// Anyone else talking over loopback (app to itself by pod IP) is
		// left alone.
		if !loopbackIncluded {
			add(ChainOutput, "-o", "lo", "-m", "owner", "!", flag, id, "-j", "RETURN")
		}
		// The proxy's own traffic is never captured again.
		add(ChainOutput, "-m", "owner", flag, id, "-j", "RETURN")
	}
	for _, uid := range dedupIDs(cfg.ProxyUIDs) {
		owner("--uid-owner", strconv.FormatUint(uint64(uid), 10))
	}
	for _, gid := range dedupIDs(cfg.ProxyGIDs) {
		owner("--gid-owner", strconv.FormatUint(uint64(gid), 10))
	}
	// Apps that talk to localhost explicitly are never captured.
	add(ChainOutput, "-d", addrs.localhost, "-j", "RETURN")
	for _, p := range cfg.OutboundCIDRsExclude {
		if familyOf(p.Addr().Is4()) == f {
			add(ChainOutput, "-d", p.String(), "-j", "RETURN")
		}
	}
	for _, p := range dedupPorts(cfg.OutboundPorts) {
		add(ChainOutput, append([]string{"-p", "tcp", "--dport", port(p)}, to.outbound...)...)
	}
	if cfg.OutboundCIDRs.All {
		add(ChainOutput, to.outbound...)
	} else {
		for _, p := range cfg.OutboundCIDRs.List {
			if familyOf(p.Addr().Is4()) == f {
				add(ChainOutput, append([]string{"-d", p.String()}, to.outbound...)...)
			}
		}
	}
}

func familyOf(is4 bool) Family {
	if is4 {
		return IPv4
	}
	return IPv6
}

// dedupPorts concatenates the lists, keeping the first occurrence of each port.
func dedupPorts(lists ...[]uint16) []uint16 {
	var out []uint16
	for _, l := range lists {
		for _, p := range l {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func dedupIDs(ids []uint32) []uint32 {
	var out []uint32
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
