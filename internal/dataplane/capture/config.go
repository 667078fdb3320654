package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Istio's well-known proxy ports (DESIGN.md §1).
const (
	DefaultProxyPort          = 15001 // outbound capture
	DefaultInboundCapturePort = 15006 // inbound capture
	DefaultInboundTunnelPort  = 15008 // HBONE; never captured
	DefaultProxyUID           = 1337  // Istio's istio-proxy user
	DefaultProxyGID           = 1337
	DefaultTProxyMark         = 1337 // TPROXY mode's packet mark (Istio's)
	DefaultTProxyRouteTable   = 133  // TPROXY mode's route table (Istio's)
)

// alwaysExcludedInboundPorts are the proxy's own inbound ports that are never
// captured when all inbound ports are: 15090 (Envoy Prometheus), 15021
// (health) and 15020 (merged metrics). Istio's injector always adds them to
// --istio-local-exclude-ports; the tunnel port has its own rule.
func alwaysExcludedInboundPorts() []uint16 { return []uint16{15090, 15021, 15020} }

// InterceptionMode is how inbound connections reach the proxy.
type InterceptionMode string

const (
	// Redirect uses the nat table's REDIRECT target: the proxy sees the
	// connection addressed to its capture port and recovers the original
	// destination with SO_ORIGINAL_DST. The source address is preserved; the
	// destination is rewritten.
	Redirect InterceptionMode = "REDIRECT"
	// TProxy uses the mangle table's TPROXY target plus policy routing, for
	// outbound as well as inbound connections, and never the nat table: no
	// connection tracking on the data path. The proxy's capture listeners
	// must be transparent (IP_TRANSPARENT, which needs CAP_NET_ADMIN); a
	// connection's local address is its original destination. Unlike
	// Istio's TPROXY mode, the app still sees the proxy's address as the
	// source of inbound connections (no original_src).
	TProxy InterceptionMode = "TPROXY"
)

// Ports is a set of TCP ports to capture: every port (All, Istio's "*") or
// the listed ones. The zero value captures nothing.
type Ports struct {
	All  bool
	List []uint16
}

// CIDRs is a set of destination ranges to capture: every destination (All,
// Istio's "*") or the listed prefixes, IPv4 and IPv6 mixed. The zero value
// captures nothing.
type CIDRs struct {
	All  bool
	List []netip.Prefix
}

// Config describes one workload's traffic capture, field for field the
// options of Istio's istio-iptables. Start from DefaultConfig.
type Config struct {
	// ProxyPort receives captured outbound connections (Istio's 15001).
	ProxyPort uint16
	// InboundCapturePort receives captured inbound connections (15006).
	InboundCapturePort uint16
	// InboundTunnelPort is the HBONE port (15008), never captured.
	InboundTunnelPort uint16
	// ProxyUIDs and ProxyGIDs identify the proxy's own traffic, which is
	// never captured (it would loop). At least one of them is required.
	ProxyUIDs []uint32
	ProxyGIDs []uint32
	// InboundInterceptionMode is REDIRECT (the default when empty) or
	// TPROXY, which applies to outbound connections too.
	InboundInterceptionMode InterceptionMode
	// TProxyMark and TProxyRouteTable are TPROXY mode's packet mark and the
	// route table its policy rule looks up (Istio's 1337 and 133).
	TProxyMark       uint32
	TProxyRouteTable uint32
	// InboundPorts are the inbound ports captured; empty disables inbound
	// capture.
	InboundPorts Ports
	// InboundPortsExclude are not captured when InboundPorts.All is set.
	// 15090, 15021 and 15020 are always added, as Istio's injector does.
	InboundPortsExclude []uint16
	// OutboundCIDRs are the destinations captured; empty disables outbound
	// capture (except the proxy's own calls back into the pod).
	OutboundCIDRs CIDRs
	// OutboundCIDRsExclude are never captured; they win over OutboundCIDRs.
	OutboundCIDRsExclude []netip.Prefix
	// OutboundPorts are captured whatever their destination (Istio's -q).
	OutboundPorts []uint16
	// OutboundPortsExclude are never captured, whatever their destination.
	OutboundPortsExclude []uint16
	// IPv6 also generates the ip6tables rule set.
	IPv6 bool
}

// DefaultConfig is Istio's default sidecar capture: every inbound port,
// every outbound destination, proxy UID and GID 1337, IPv4 only.
func DefaultConfig() Config {
	return Config{
		ProxyPort:               DefaultProxyPort,
		InboundCapturePort:      DefaultInboundCapturePort,
		InboundTunnelPort:       DefaultInboundTunnelPort,
		ProxyUIDs:               []uint32{DefaultProxyUID},
		ProxyGIDs:               []uint32{DefaultProxyGID},
		InboundInterceptionMode: Redirect,
		TProxyMark:              DefaultTProxyMark,
		TProxyRouteTable:        DefaultTProxyRouteTable,
		InboundPorts:            Ports{All: true},
		OutboundCIDRs:           CIDRs{All: true},
	}
}

// FieldError is a Config validation or parsing failure. Field is the Config
// field's name, so that callers (the CLI) can map it to their own flag names.
type FieldError struct {
	Field  string
	Value  string
	Reason string
	Err    error // optional cause, for errors.Is
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks the configuration and returns every problem found (joined),
// each a *FieldError naming the field.
func (c Config) Validate() error {
	var errs []error
	add := func(field, value, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: reason})
	}
	for _, p := range []struct {
		name string
		port uint16
	}{{"ProxyPort", c.ProxyPort}, {"InboundCapturePort", c.InboundCapturePort}, {"InboundTunnelPort", c.InboundTunnelPort}} {
		if p.port == 0 {
			add(p.name, "", "port must be between 1 and 65535")
		}
	}
	if c.ProxyPort != 0 && c.ProxyPort == c.InboundCapturePort {
		add("InboundCapturePort", strconv.Itoa(int(c.InboundCapturePort)), "must differ from ProxyPort")
	}
	if len(c.ProxyUIDs) == 0 && len(c.ProxyGIDs) == 0 {
		add("ProxyUIDs", "", "at least one proxy UID or GID is required, or the proxy's own traffic would be captured again")
	}
	switch c.InboundInterceptionMode {
	case "", Redirect:
	case TProxy:
		if c.TProxyMark == 0 {
			add("TProxyMark", "0", "must not be 0 (unmarked packets must not match the policy rule)")
		}
		if !c.InboundPorts.All {
			add("InboundPorts", "", "TPROXY mode captures every inbound port (\"*\") except excluded ones: without "+
				"connection tracking, replies from ports left alone could not be told from outbound traffic")
		}
		switch c.TProxyRouteTable {
		case 0, 253, 254, 255:
			add("TProxyRouteTable", strconv.FormatUint(uint64(c.TProxyRouteTable), 10),
				"is a reserved table (unspec, default, main, local); choose another, e.g. 133")
		}
	default:
		add("InboundInterceptionMode", string(c.InboundInterceptionMode), "must be REDIRECT or TPROXY")
	}
	checkPorts := func(field string, ports []uint16) {
		for i, p := range ports {
			if p == 0 {
				add(fmt.Sprintf("%s[%d]", field, i), "0", "port must be between 1 and 65535")
			}
		}
	}
	if c.InboundPorts.All && len(c.InboundPorts.List) > 0 {
		add("InboundPorts", "", "set either All or List, not both")
	}
	checkPorts("InboundPorts", c.InboundPorts.List)
	for i, p := range c.InboundPorts.List {
		if p == c.InboundTunnelPort || slices.Contains(alwaysExcludedInboundPorts(), p) {
			add(fmt.Sprintf("InboundPorts[%d]", i), strconv.Itoa(int(p)), "is one of the proxy's own ports and is never captured")
		}
	}
	checkPorts("InboundPortsExclude", c.InboundPortsExclude)
	checkPorts("OutboundPorts", c.OutboundPorts)
	checkPorts("OutboundPortsExclude", c.OutboundPortsExclude)
	checkPrefixes := func(field string, list []netip.Prefix) {
		for i, p := range list {
			if !p.IsValid() {
				add(fmt.Sprintf("%s[%d]", field, i), p.String(), "not a valid CIDR")
			}
		}
	}
	if c.OutboundCIDRs.All && len(c.OutboundCIDRs.List) > 0 {
		add("OutboundCIDRs", "", "set either All or List, not both")
	}
	checkPrefixes("OutboundCIDRs", c.OutboundCIDRs.List)
	checkPrefixes("OutboundCIDRsExclude", c.OutboundCIDRsExclude)
	return errors.Join(errs...)
}

// splitList splits Istio's comma-separated list syntax, tolerating spaces
// and empty items ("80, 443," is 80 and 443).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ParsePortList parses a comma-separated list of ports, as Istio's flags and
// annotations write them ("15090,15021"). Empty means none.
func ParsePortList(s string) ([]uint16, error) {
	var ports []uint16
	for _, item := range splitList(s) {
		p, err := strconv.ParseUint(item, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%q is not a port number (1-65535)", item)
		}
		ports = append(ports, uint16(p))
	}
	return ports, nil
}

// ParsePorts parses an include list of ports: "*" is every port, "" none.
func ParsePorts(s string) (Ports, error) {
	if strings.TrimSpace(s) == "*" {
		return Ports{All: true}, nil
	}
	list, err := ParsePortList(s)
	if err != nil {
		return Ports{}, err
	}
	return Ports{List: list}, nil
}

// ParseCIDRList parses a comma-separated list of CIDRs, IPv4 and IPv6 mixed.
// A bare address is a single host (/32 or /128). Host bits are cleared
// ("10.1.2.3/8" is 10.0.0.0/8), as iptables would.
func ParseCIDRList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		if item == "*" {
			return nil, fmt.Errorf("wildcard \"*\" is not allowed here")
		}
		var p netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			p, err = netip.ParsePrefix(item)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(item)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", item)
		}
		if p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%q: zoned addresses are not allowed", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ParseCIDRs parses an include list of CIDRs: "*" is every destination.
func ParseCIDRs(s string) (CIDRs, error) {
	if strings.TrimSpace(s) == "*" {
		return CIDRs{All: true}, nil
	}
	list, err := ParseCIDRList(s)
	if err != nil {
		return CIDRs{}, err
	}
	return CIDRs{List: list}, nil
}

// ParseIDList parses a comma-separated list of numeric user or group IDs.
func ParseIDList(s string) ([]uint32, error) {
	var ids []uint32
	for _, item := range splitList(s) {
		id, err := strconv.ParseUint(item, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a numeric ID", item)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}
