package capture

import (
	"slices"
	"strconv"
	"strings"
)

// Routing is the policy routing TPROXY mode relies on: packets carrying
// Mark are looked up in route table Table, whose one route delivers every
// destination locally (through lo). The zero value (REDIRECT mode) needs
// none.
type Routing struct {
	Mark  uint32
	Table uint32
}

func (r Routing) enabled() bool { return r.Mark != 0 }

func (r Routing) mark() string  { return strconv.FormatUint(uint64(r.Mark), 10) }
func (r Routing) table() string { return strconv.FormatUint(uint64(r.Table), 10) }

func familyFlag(f Family) string {
	if f == IPv6 {
		return "-6"
	}
	return "-4"
}

// ruleSelector is the `ip rule` selector of the routing's rule.
func (r Routing) ruleSelector() []string { return []string{"fwmark", r.mark(), "lookup", r.table()} }

// listRuleCommand lists the family's rules matching the selector; the
// output is empty when the rule is absent.
func (r Routing) listRuleCommand(f Family) []string {
	return append([]string{familyFlag(f), "rule", "list"}, r.ruleSelector()...)
}

// route is the `ip route` arguments of the table's one route: every
// destination is local, through lo.
func (r Routing) route(f Family) []string {
	dflt := "0.0.0.0/0"
	if f == IPv6 {
		dflt = "::/0"
	}
	return []string{"local", dflt, "dev", "lo", "table", r.table()}
}

// addCommands are the `ip` invocations that install the family's routing:
// the table's route (replace is idempotent) and the rule. Apply runs the
// rule's add only when listRuleCommand finds none.
func (r Routing) addCommands(f Family) [][]string {
	return [][]string{
		append([]string{familyFlag(f), "route", "replace"}, r.route(f)...),
		append([]string{familyFlag(f), "rule", "add"}, r.ruleSelector()...),
	}
}

// removeCommands delete the rule (once per copy) and the table's route.
func (r Routing) removeCommands(f Family) (delRule, delRoute []string) {
	return append([]string{familyFlag(f), "rule", "del"}, r.ruleSelector()...),
		append([]string{familyFlag(f), "route", "del"}, r.route(f)...)
}

// synOnly matches a connection's first packet: SYN set, ACK/RST/FIN clear.
var synOnly = []string{"--tcp-flags", "FIN,SYN,RST,ACK", "SYN"}

// mangleTable builds TPROXY mode's rules for one family: the mangle table
// only, so that connection tracking is never switched on in the namespace
// (no nat table, no conntrack match). Only a connection's first packet (its
// SYN) is steered by TPROXY; every later packet finds the connection's
// socket by the ordinary socket lookup, because the socket TPROXY created
// is bound to the connection's original addresses.
//
//	mangle OUTPUT ─► ISTIO_OUTPUT   as in REDIRECT mode, but a captured
//	                                packet is marked (ISTIO_DIVERT) instead
//	                                of rewritten; the mark routes it to lo
//	                                (policy rule → local table). The
//	                                proxy's non-SYN packets leave first
//	                                (every packet walks this chain);
//	                                replies from the inbound ports not captured
//	                                (by source port) and packets of no
//	                                process's socket are never marked.
//	mangle PREROUTING ─► ISTIO_INBOUND
//	    not a SYN ─────────────────────────── RETURN
//	    on lo, marked, to a local address ─── ISTIO_TPROXY (proxy → own pod)
//	    on lo, marked ─────────────────────── TPROXY → :15001 (outbound)
//	    on lo ─────────────────────────────── RETURN
//	    15008, excluded ports ─────────────── RETURN
//	    captured ports ────────────────────── ISTIO_TPROXY → :15006
//
// The capture listeners must set IP_TRANSPARENT (Envoy's listener
// transparent: true); the accepted socket's local address is then the
// original destination.
func mangleTable(cfg Config, f Family) Table {
	t := Table{Name: "mangle", Chains: []string{ChainInbound, ChainDivert, ChainTProxy, ChainOutput}}
	add := func(chain string, args ...string) {
		t.Rules = append(t.Rules, "-A "+chain+" "+strings.Join(args, " "))
	}
	mark := strconv.FormatUint(uint64(cfg.TProxyMark), 10)

	add(ChainDivert, "-j", "MARK", "--set-mark", mark)
	add(ChainTProxy, "-p", "tcp", "-j", "TPROXY", "--on-port", port(cfg.InboundCapturePort))

	add("PREROUTING", "-p", "tcp", "-j", ChainInbound)
	add(ChainInbound, slices.Concat([]string{"-p", "tcp", "!"}, synOnly, []string{"-j", "RETURN"})...)
	add(ChainInbound, "-i", "lo", "-p", "tcp", "-m", "mark", "--mark", mark, "-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainTProxy)
	add(ChainInbound, "-i", "lo", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "TPROXY", "--on-port", port(cfg.ProxyPort))
	add(ChainInbound, "-i", "lo", "-j", "RETURN")
	add(ChainInbound, "-p", "tcp", "--dport", port(cfg.InboundTunnelPort), "-j", "RETURN")
	if capturesInbound(cfg) {
		inboundRules(cfg, add, ChainTProxy)
	}

	add("OUTPUT", "-p", "tcp", "-j", ChainOutput)
	// Fast path, first because every packet of every connection comes
	// here: the proxy's own packets but SYNs are never marked (its one
	// marked kind, a connection to the pod's own address, is marked on the
	// SYN alone).
	for _, uid := range dedupIDs(cfg.ProxyUIDs) {
		add(ChainOutput, "-p", "tcp", "!", "--syn", "-m", "owner", "--uid-owner", strconv.FormatUint(uint64(uid), 10), "-j", "RETURN")
	}
	for _, gid := range dedupIDs(cfg.ProxyGIDs) {
		add(ChainOutput, "-p", "tcp", "!", "--syn", "-m", "owner", "--gid-owner", strconv.FormatUint(uint64(gid), 10), "-j", "RETURN")
	}
	// Without connection tracking, a reply on an inbound connection looks
	// like any outbound packet. Replies on captured inbound connections come
	// from the proxy and are never marked; those on the ports left alone are
	// recognised by their source port (a port bound by a listener is never
	// chosen as an ephemeral port, so no outbound connection uses it). This
	// is why TPROXY mode captures every inbound port but a known list.
	for _, p := range dedupPorts([]uint16{cfg.InboundTunnelPort}, alwaysExcludedInboundPorts(), cfg.InboundPortsExclude) {
		add(ChainOutput, "-p", "tcp", "--sport", port(p), "-j", "RETURN")
	}
	// Packets of no process's socket: resets and time-wait ACKs the kernel
	// sends.
	add(ChainOutput, "-m", "owner", "!", "--socket-exists", "-j", "RETURN")
	outputRules(cfg, f, add, outputTargets{
		outbound: []string{"-j", ChainDivert},
		// Only the SYN needs the mark: the destination is local anyway.
		inbound: slices.Concat(synOnly, []string{"-j", ChainDivert}),
	})
	return t
}
