package listener

import (
	"fmt"
	"sort"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/authz"
)

// Names Istio gives the built-in listeners, filter chains and clusters.
const (
	VirtualOutboundListenerName = "virtualOutbound"
	VirtualInboundListenerName  = "virtualInbound"

	PassthroughCluster        = "PassthroughCluster"
	BlackHoleCluster          = "BlackHoleCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"

	// PassthroughFilterChain is the catch-all chain of virtualOutbound and
	// the default chain of outbound listeners.
	PassthroughFilterChain = "PassthroughFilterChain"
	// VirtualOutboundBlackholeChain drops traffic sent to 15001 itself.
	VirtualOutboundBlackholeChain = "virtualOutbound-blackhole"
	// VirtualInboundBlackholeChain drops traffic sent to 15006 itself.
	VirtualInboundBlackholeChain = "virtualInbound-blackhole"
	// VirtualInboundCatchAllHTTPChain is the HTTP passthrough chain of
	// virtualInbound; the TCP one is named like the listener.
	VirtualInboundCatchAllHTTPChain = "virtualInbound-catchall-http"
)

// Default capture ports when the mesh config leaves them unset.
const (
	defaultOutboundCapturePort = 15001
	defaultInboundCapturePort  = 15006
)

const wildcardIPv4 = "0.0.0.0"

// RouteName is the RDS route configuration name of the shared outbound HTTP
// listener on port: the port number ("9080").
func RouteName(port uint32) string { return strconv.FormatUint(uint64(port), 10) }

// SniffedRouteName is the RDS route configuration name of a sniffed
// (undeclared protocol) port of a service with a VIP: "<host>:<port>". It
// holds only that service's virtual hosts, as in Istio.
func SniffedRouteName(host string, port uint32) string { return host + ":" + RouteName(port) }

// InboundRouteName is the RDS route configuration name of an inbound HTTP
// filter chain: "inbound|<targetPort>||", the name of the inbound cluster.
func InboundRouteName(targetPort uint32) string {
	return model.ClusterName(model.Inbound, targetPort, "", "")
}

// Name is Istio's listener (and inbound filter chain) name: "<bind>_<port>".
func Name(bind string, port uint32) string { return bind + "_" + RouteName(port) }

// Conflict records a service port that could not be given its own listener
// or filter chain because another service already owns the match, as Istio
// reports with its pilot_conflict_* metrics. The older service wins.
type Conflict struct {
	// Listener is the listener (outbound) or filter chain (inbound) name.
	Listener  string
	Direction string // model.Outbound or model.Inbound
	Accepted  string // host name kept
	Rejected  string // host name dropped
	// AcceptedProtocol and RejectedProtocol are the ports' protocols.
	AcceptedProtocol model.Protocol
	RejectedProtocol model.Protocol
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s listener %s: accepted %s (%s), rejected %s (%s)",
		c.Direction, c.Listener, c.Accepted, c.AcceptedProtocol, c.Rejected, c.RejectedProtocol)
}

// Build returns the listeners of the scope's proxy, sorted by name. Only
// sidecars have listeners today; other proxy types get none.
func Build(sc *model.Scope) []*listenerv3.Listener {
	ls, _ := BuildWithConflicts(sc)
	return ls
}

// BuildWithConflicts is Build that also returns the port conflicts it
// resolved (in the order found), for the caller to log or count.
func BuildWithConflicts(sc *model.Scope) ([]*listenerv3.Listener, []Conflict) {
	p := sc.Proxy()
	if p == nil || p.Type != model.SidecarProxy {
		return nil, nil
	}
	b := newBuilder(sc)
	var out []*listenerv3.Listener
	out = append(out, b.outboundListeners()...)
	out = append(out, b.virtualOutboundListener(), b.virtualInboundListener())
	out = b.addIngressListeners(out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, b.conflicts
}

// builder carries the inputs of one generation. It lives for one call.
type builder struct {
	sc        *model.Scope
	snap      *model.Snapshot
	proxy     *model.Proxy
	mesh      *meshconfig.MeshConfig
	wildcard  string
	conflicts []Conflict
	// peer memoizes the workload's PeerAuthentication (listener_mtls.go).
	peer *model.PeerAuthnPolicy
	// authz memoizes the workload's RBAC filters (listener_authz.go).
	authz *authz.Filters
	// inbound memoizes the inbound ports (listener_inbound.go).
	inbound []inboundChain
}

func newBuilder(sc *model.Scope) *builder {
	snap := sc.Snapshot()
	mesh := snap.Mesh
	if mesh == nil {
		mesh = model.DefaultMesh()
	}
	return &builder{
		sc:    sc,
		snap:  snap,
		proxy: sc.Proxy(),
		mesh:  mesh,
		// IPv4 only for now: the generator cache (xds/gen.Key) does not key
		// on the proxy's IP family, so it must not change the output.
		wildcard: wildcardIPv4,
	}
}

func (b *builder) outboundCapturePort() uint32 {
	if p := b.mesh.GetProxyListenPort(); p > 0 {
		return uint32(p)
	}
	return defaultOutboundCapturePort
}

func (b *builder) inboundCapturePort() uint32 {
	if p := b.mesh.GetProxyInboundListenPort(); p > 0 {
		return uint32(p)
	}
	return defaultInboundCapturePort
}

// protocolDetectionTimeout is the listener filter timeout of sniffing
// listeners. Istio's mesh default is 0s (wait for the client's first bytes).
func (b *builder) protocolDetectionTimeout() *durationpb.Duration {
	if d := b.mesh.GetProtocolDetectionTimeout(); d != nil {
		return proto.Clone(d).(*durationpb.Duration)
	}
	return durationpb.New(0)
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// toAny packs a filter config. Marshalling is deterministic so that equal
// listeners give equal resource versions. It fails only on invalid UTF-8 in a
// string field, which config validation rejects before it reaches a
// snapshot; like Istio, the filter is then left without a config (the proxy
// rejects it) rather than failing the whole push.
func toAny(m proto.Message) *anypb.Any {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: v}
}
