package tcp

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// Upstream opens connections to the hosts of a cluster, choosing the host
// (load balancing, health, circuit breakers) and the connect timeout. The
// upstream package implements it; Direct is a minimal one.
//
// Dial returns an error wrapping ErrNoCluster, ErrNoHealthyUpstream or
// ErrOverflow when there is nothing to try (the proxy gives up at once);
// any other error is a connection failure, retried up to
// max_connect_attempts. ctx carries the hash key of hash_policy (HashKey)
// and ends with the downstream connection.
type Upstream interface {
	Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error)
}

// PeerIdentifier is implemented by upstream connections that know the
// host's identity: PeerIdentity is the SPIFFE ID of the server
// certificate the transport socket verified ("" when it verified none).
// The proxy records it as Session.UpstreamPeerIdentity.
type PeerIdentifier interface {
	PeerIdentity() string
}

// Errors an Upstream wraps to say why it has no connection to offer; they
// set the response flags NC, UH and UO.
var (
	ErrNoCluster         = errors.New("cluster not found")
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	ErrOverflow          = errors.New("upstream connection limit reached")
)

type hashKeyType struct{}

// HashKey returns the hash of the connection computed from the
// tcp_proxy's hash_policy (source_ip), for consistent-hash load balancing.
func HashKey(ctx context.Context) (uint64, bool) {
	v, ok := ctx.Value(hashKeyType{}).(uint64)
	return v, ok
}

func withHashKey(ctx context.Context, k uint64) context.Context {
	return context.WithValue(ctx, hashKeyType{}, k)
}

// sourceIPHash hashes an address's 16-byte form (FNV-1a).
func sourceIPHash(a netip.Addr) uint64 {
	h := fnv.New64a()
	b := a.As16()
	h.Write(b[:])
	return h.Sum64()
}

// Direct is an Upstream without load balancing, health or limits, for
// tests and tools. Clusters are of two kinds:
//
//   - ORIGINAL_DST clusters (Istio's PassthroughCluster and
//     InboundPassthroughCluster): the connection's original destination is
//     dialled, as Envoy's original destination load balancer does. A
//     connection whose destination was not restored by original_dst has no
//     host (ErrNoHealthyUpstream): dialling the proxy's own address would
//     loop. The map value is the source address to bind (Istio binds
//     127.0.0.6 for inbound passthrough), or the zero Addr.
//   - static clusters: their addresses, taken in turn. A cluster with none
//     (Istio's BlackHoleCluster) has no healthy upstream.
//
// Other names are ErrNoCluster. Use a *Direct; it must not be copied.
type Direct struct {
	OriginalDst map[string]netip.Addr
	Static      map[string][]string
	// Dialer dials every connection (its Timeout is the connect timeout).
	Dialer net.Dialer

	next atomic.Uint64
}

// Dial implements Upstream.
func (d *Direct) Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error) {
	if src, ok := d.OriginalDst[cluster]; ok {
		if c == nil || !c.Restored || !c.Destination.IsValid() {
			return nil, fmt.Errorf("cluster %q: connection has no original destination: %w", cluster, ErrNoHealthyUpstream)
		}
		dialer := d.Dialer
		if src.IsValid() {
			dialer.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		return dialer.DialContext(ctx, "tcp", c.Destination.String())
	}
	addrs, ok := d.Static[cluster]
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", cluster, ErrNoCluster)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("cluster %q: %w", cluster, ErrNoHealthyUpstream)
	}
	i := (d.next.Add(1) - 1) % uint64(len(addrs))
	return d.Dialer.DialContext(ctx, "tcp", addrs[i])
}
