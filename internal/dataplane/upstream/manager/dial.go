package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// dialer opens a cluster's upstream connections: the source address of
// upstream_bind_config, TCP keepalive of upstream_connection_options, and
// the endpoint's transport socket. The connect timeout is the caller's.
type dialer struct {
	bind      binding
	keepalive net.KeepAliveConfig
	sockets   sockets
	// httpALPN is the ALPN override of HTTP connections by protocol (nil:
	// the socket's own), see alpnOverride.
	httpALPN [pool.NumProtocols][]string
}

// binding is upstream_bind_config: a source address per IP family.
type binding struct {
	v4, v6 netip.AddrPort
}

func newBinding(bc *corev3.BindConfig) (binding, error) {
	var b binding
	if bc == nil {
		return b, nil
	}
	if bc.GetFreebind().GetValue() || len(bc.GetSocketOptions()) > 0 || bc.GetLocalAddressSelector() != nil {
		return b, errors.New("upstream_bind_config: freebind, socket_options and local_address_selector are not supported")
	}
	add := func(field string, sa *corev3.SocketAddress) error {
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return fmt.Errorf("upstream_bind_config.%s: malformed IP address %q", field, sa.GetAddress())
		}
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
		switch {
		case ap.Addr().Is4() && !b.v4.IsValid():
			b.v4 = ap
		case ap.Addr().Is6() && !b.v6.IsValid():
			b.v6 = ap
		}
		return nil
	}
	if sa := bc.GetSourceAddress(); sa != nil {
		if err := add("source_address", sa); err != nil {
			return b, err
		}
	}
	for i, x := range bc.GetExtraSourceAddresses() {
		if err := add(fmt.Sprintf("extra_source_addresses[%d]", i), x.GetAddress()); err != nil {
			return b, err
		}
	}
	for i, sa := range bc.GetAdditionalSourceAddresses() { //nolint:staticcheck // deprecated, still honoured
		if err := add(fmt.Sprintf("additional_source_addresses[%d]", i), sa); err != nil {
			return b, err
		}
	}
	return b, nil
}

// source returns the address to bind for a destination; invalid for none.
func (b binding) source(dst netip.Addr) netip.AddrPort {
	if dst.Is4() || dst.Is4In6() {
		return b.v4
	}
	return b.v6
}

// keepaliveConfig reads upstream_connection_options.tcp_keepalive: on
// with the OS's defaults for unset fields; off (Envoy's default) without.
func keepaliveConfig(o *clusterv3.UpstreamConnectionOptions) net.KeepAliveConfig {
	ka := o.GetTcpKeepalive()
	if ka == nil {
		return net.KeepAliveConfig{}
	}
	cfg := net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
	if v := ka.GetKeepaliveTime(); v != nil {
		cfg.Idle = time.Duration(v.GetValue()) * time.Second
	}
	if v := ka.GetKeepaliveInterval(); v != nil {
		cfg.Interval = time.Duration(v.GetValue()) * time.Second
	}
	if v := ka.GetKeepaliveProbes(); v != nil {
		cfg.Count = int(v.GetValue())
	}
	return cfg
}

// dial connects to h; the caller bounds ctx with the connect timeout.
// alpn overrides the transport socket's ALPN protocols (nil: none). peer
// is the host's identity as the transport socket verified it ("" for
// none, plaintext included).
func (d *dialer) dial(ctx context.Context, h *host.Host, alpn []string) (conn net.Conn, peer string, err error) {
	sk := d.sockets.forEndpoint(h.Endpoint())
	if sk.err != nil {
		return nil, "", fmt.Errorf("transport socket %q: %w", sk.name, sk.err)
	}
	addr := h.Address()
	nd := net.Dialer{KeepAliveConfig: d.keepalive}
	if !d.keepalive.Enable {
		nd.KeepAlive = -1
	}
	var network, target string
	switch addr.Kind {
	case host.Socket:
		ap, ok := addr.AddrPort()
		if !ok {
			return nil, "", fmt.Errorf("host %s has no IP address", addr)
		}
		network, target = "tcp", ap.String()
		if src := d.bind.source(ap.Addr()); src.IsValid() {
			nd.LocalAddr = net.TCPAddrFromAddrPort(src)
		}
	case host.Pipe:
		network, target = "unix", addr.Path
	default:
		return nil, "", fmt.Errorf("%w: envoy_internal_address %s", pool.ErrUnsupportedTransport, addr)
	}
	c, err := nd.DialContext(ctx, network, target)
	if err != nil {
		return nil, "", err
	}
	c = sockio.Wrap(c) // reads and writes without a P hand-off (see sockio)
	if sk.transport == nil {
		return c, "", nil
	}
	sc, peer, err := sk.transport.Client(ctx, c, h, alpn)
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("transport socket %q: %w", sk.name, err)
	}
	return sc, peer, nil
}
