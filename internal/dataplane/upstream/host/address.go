package host

import (
	"net/netip"
	"strconv"
)

// Kind is the kind of an upstream address.
type Kind uint8

const (
	// Socket is an IP (or, before DNS resolution, host name) and port.
	Socket Kind = iota
	// Pipe is a Unix domain socket path.
	Pipe
	// Internal is an Envoy internal listener (envoy_internal_address).
	Internal
)

// Address is where a host listens.
type Address struct {
	Kind Kind
	// Host is an IP literal, or a DNS name in the endpoints of STRICT_DNS
	// and LOGICAL_DNS clusters before resolution.
	Host string
	// IP is Host parsed; invalid when Host is a name.
	IP   netip.Addr
	Port uint32
	// Path of a Pipe.
	Path string
	// ServerListener and EndpointID of an Internal address.
	ServerListener string
	EndpointID     string
}

// AddrPort returns the socket address; ok is false for names, pipes and
// internal addresses.
func (a Address) AddrPort() (netip.AddrPort, bool) {
	if a.Kind != Socket || !a.IP.IsValid() || a.Port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.IP, uint16(a.Port)), true
}

// String is Envoy's Address::asString: "10.0.0.1:80", "[fd00::1]:80", the
// pipe path, or "envoy://<listener>/<endpoint id>". It is the host's
// identity in a cluster and its key on hash rings.
func (a Address) String() string {
	switch a.Kind {
	case Pipe:
		return a.Path
	case Internal:
		return "envoy://" + a.ServerListener + "/" + a.EndpointID
	}
	port := strconv.FormatUint(uint64(a.Port), 10)
	if a.IP.IsValid() {
		if a.IP.Is6() && !a.IP.Is4In6() {
			return "[" + a.IP.String() + "]:" + port
		}
		return a.IP.String() + ":" + port
	}
	return a.Host + ":" + port
}

// Locality is where a host runs (envoy.config.core.v3.Locality).
type Locality struct {
	Region, Zone, SubZone string
}

// String is "region/zone/subzone", Istio's notation.
func (l Locality) String() string {
	return l.Region + "/" + l.Zone + "/" + l.SubZone
}

// Less orders localities by region, zone, then sub-zone (Envoy's
// LocalityLess), the order of localities in a Set.
func (l Locality) Less(o Locality) bool {
	if l.Region != o.Region {
		return l.Region < o.Region
	}
	if l.Zone != o.Zone {
		return l.Zone < o.Zone
	}
	return l.SubZone < o.SubZone
}
