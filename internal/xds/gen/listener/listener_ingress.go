package listener

import (
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// sidecarIngress returns the ingress listeners of the proxy's Sidecar
// (none without a Sidecar).
func (b *builder) sidecarIngress() []*networking.IstioIngressListener {
	if b.sc.Sidecar == nil {
		return nil
	}
	return b.sc.Sidecar.Spec.(*networking.Sidecar).GetIngress()
}

// ingressChains turns a Sidecar's ingress listeners into inbound ports, as
// Istio's buildInboundChainConfigs does when a Sidecar declares ingress:
// the port is both the service port and the target port, the cluster is
// inbound|<port>|| (gen/cluster sends it to the defaultEndpoint), the
// name's address is the ingress bind (else the proxy's first global
// unicast IP, else the wildcard), and captureMode NONE (or DEFAULT on a
// proxy with interception mode NONE) makes it a listener of its own.
// Sorted by port; the capture ports are skipped (they would clash with
// the capture listeners).
func (b *builder) ingressChains(ing []*networking.IstioIngressListener) []inboundChain {
	sc := b.sc.Sidecar
	seen := map[uint32]bool{}
	out := make([]inboundChain, 0, len(ing))
	for _, in := range ing {
		n := in.GetPort().GetNumber()
		if n == 0 || seen[n] || n == b.inboundCapturePort() || n == b.outboundCapturePort() {
			continue
		}
		seen[n] = true
		c := inboundChain{
			// Istio's stand-in host name for telemetry: the Sidecar's.
			host: sc.Name + "." + sc.Namespace,
			port: model.Port{
				Name:     in.GetPort().GetName(),
				Number:   n,
				Protocol: model.ParseProtocol(in.GetPort().GetProtocol()),
			},
			targetPort: n,
			cluster:    InboundRouteName(n),
			bind:       in.GetBind(),
			bindToPort: b.ingressBindsToPort(in.GetCaptureMode()),
			sidecar:    sc,
		}
		if c.bind == "" {
			c.bind = b.inboundBindIP()
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].targetPort < out[j].targetPort })
	return out
}

// ingressBindsToPort is Istio's getBindToPort: an explicit capture mode
// wins (NONE binds, IPTABLES does not); DEFAULT follows the proxy's
// interception mode.
func (b *builder) ingressBindsToPort(mode networking.CaptureMode) bool {
	if mode == networking.CaptureMode_DEFAULT {
		return b.proxy.Metadata[model.MetaInterception] == "NONE"
	}
	return mode == networking.CaptureMode_NONE
}

// inboundBindIP is where an ingress listener without bind listens: the
// proxy's first global unicast IPv4 address (so not loopback), else the
// wildcard, as Istio's getSidecarInboundBindIPs. The proxy's addresses
// are in the generator cache key whenever its Sidecar declares ingress.
func (b *builder) inboundBindIP() string {
	for _, ip := range b.proxy.IPAddresses {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() && a.IsGlobalUnicast() {
			return a.String()
		}
	}
	return b.wildcard
}

// addIngressListeners appends a listener per bindToPort ingress port. Its
// chains are the ones the port would have in virtualInbound (mTLS mode,
// authorization, protocol), matched on the bound port, which is the local
// address of every connection it accepts: there is no original_dst
// filter. An outbound listener that happens to have the same name
// ("<ip>_<port>", a TCP service whose endpoint is the proxy's own
// address) is dropped and reported as a conflict: the inbound one is the
// workload's own socket.
func (b *builder) addIngressListeners(out []*listenerv3.Listener) []*listenerv3.Listener {
	for _, c := range b.inboundChains() {
		if !c.bindToPort {
			continue
		}
		l := b.ingressListener(c)
		for i, o := range out {
			if o.GetName() == l.GetName() {
				b.conflicts = append(b.conflicts, Conflict{
					Listener:         l.GetName(),
					Direction:        model.Outbound,
					Accepted:         c.host,
					Rejected:         o.GetName(),
					AcceptedProtocol: c.port.Protocol,
				})
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, l)
	}
	return out
}

// ingressListener is Istio's inboundCustomListener: named and bound at
// <bind>_<port>, inbound, with the TLS and HTTP inspectors its chains
// need and the mesh's protocol detection timeout.
func (b *builder) ingressListener(c inboundChain) *listenerv3.Listener {
	chains := b.inboundFilterChains(c)
	return &listenerv3.Listener{
		Name:                             c.name(b, false),
		Address:                          socketAddress(c.bind, c.targetPort),
		ListenerFilters:                  inspectorListenerFilters(chains),
		ListenerFiltersTimeout:           b.protocolDetectionTimeout(),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     chains,
		TrafficDirection:                 corev3.TrafficDirection_INBOUND,
	}
}

// configMetadata records the Istio object a filter chain comes from, as
// Istio's BuildConfigInfoMetadata: filter_metadata istio.config =
// /apis/<group>/<version>/namespaces/<ns>/<kind>/<name> (nil: none).
func configMetadata(c *config.Config) *corev3.Metadata {
	if c == nil {
		return nil
	}
	version := c.Version
	if version == "" {
		version = "v1"
	}
	path := "/apis/" + c.Kind.Group + "/" + version + "/namespaces/" + c.Namespace + "/" + lowerKind(c.Kind.Kind) + "/" + c.Name
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"config": structpb.NewStringValue(path)}},
	}}
}

// lowerKind is Istio's kebab-cased kind ("Sidecar" → "sidecar").
func lowerKind(kind string) string {
	out := make([]byte, 0, len(kind)+2)
	for i := 0; i < len(kind); i++ {
		ch := kind[i]
		if ch >= 'A' && ch <= 'Z' {
			if i > 0 {
				out = append(out, '-')
			}
			ch += 'a' - 'A'
		}
		out = append(out, ch)
	}
	return string(out)
}
