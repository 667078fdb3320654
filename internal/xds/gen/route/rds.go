package route

import (
	"errors"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
)

// Names Istio gives the catch-all virtual hosts, routes and clusters.
const (
	allowAnyName       = "allow_any"
	blockAllName       = "block_all"
	passthroughCluster = "PassthroughCluster"
	defaultRouteName   = "default"
	inboundVHostPrefix = "inbound|http|"

	// maxDirectResponseBody is Istio's 1 MiB limit (Envoy's default is 4 KiB).
	maxDirectResponseBody = 1 << 20
)

// Build returns one RouteConfiguration per requested name, in the order
// asked (RDS is requested by name). Names it does not serve get an empty
// configuration, as Istio answers. Problems are dropped; BuildWithErrors
// reports them.
func Build(sc *model.Scope, names []string) []*routev3.RouteConfiguration {
	out, _ := BuildWithErrors(sc, names)
	return out
}

// BuildWithErrors is Build that also returns the problems met on the way
// (joined, deduplicated). The configurations are usable either way: each
// problem only removed the route or virtual host that carried it.
func BuildWithErrors(sc *model.Scope, names []string) ([]*routev3.RouteConfiguration, error) {
	var errs errorSet
	perPort := map[uint32][]*routev3.VirtualHost{}
	outbound := func(port uint32) []*routev3.VirtualHost {
		vhs, ok := perPort[port]
		if !ok {
			var err error
			vhs, err = VirtualHosts(sc, port)
			errs.add(err)
			perPort[port] = vhs
		}
		return vhs
	}
	out := make([]*routev3.RouteConfiguration, 0, len(names))
	for _, name := range names {
		rc := &routev3.RouteConfiguration{Name: name, ValidateClusters: wrapperspb.Bool(false)}
		switch kind, host, port := parseRouteName(name); kind {
		case outboundRoute:
			rc.VirtualHosts = append(append([]*routev3.VirtualHost(nil), outbound(port)...), catchAllVirtualHost(sc))
			rc.MaxDirectResponseBodySizeBytes = wrapperspb.UInt32(maxDirectResponseBody)
			rc.IgnorePortInHostMatching = true // domains carry no port (domainPort)
		case sniffedRoute:
			rc.VirtualHosts = sniffedVirtualHosts(outbound(port), host, name)
			rc.MaxDirectResponseBodySizeBytes = wrapperspb.UInt32(maxDirectResponseBody)
			rc.IgnorePortInHostMatching = true
		case inboundRoute:
			rc.VirtualHosts = []*routev3.VirtualHost{inboundVirtualHost(sc, port)}
		default:
			rc.VirtualHosts = []*routev3.VirtualHost{}
		}
		out = append(out, rc)
	}
	return out, errs.err()
}

type routeKind int

const (
	unknownRoute routeKind = iota
	outboundRoute
	sniffedRoute
	inboundRoute
)

// parseRouteName tells which configuration a name asks for:
// "9080", "<host>:9080" or "inbound|9080||".
func parseRouteName(name string) (kind routeKind, host string, port uint32) {
	if rest, ok := strings.CutPrefix(name, model.Inbound+"|"); ok {
		p, tail, _ := strings.Cut(rest, "|")
		if n, ok := parsePort(p); ok && tail == "|" {
			return inboundRoute, "", n
		}
		return unknownRoute, "", 0
	}
	if n, ok := parsePort(name); ok {
		return outboundRoute, "", n
	}
	if i := strings.LastIndexByte(name, ':'); i > 0 {
		if n, ok := parsePort(name[i+1:]); ok {
			return sniffedRoute, name[:i], n
		}
	}
	return unknownRoute, "", 0
}

// parsePort reads a port number written canonically (no sign, no leading
// zero), so that a name maps to one port and back.
func parsePort(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return uint32(n), true
}

// sniffedVirtualHosts picks, from the port's virtual hosts, the one serving
// host (a sniffed listener is bound to one service's VIP and port), and
// widens its domains to "*": every request on that listener is for it.
func sniffedVirtualHosts(all []*routev3.VirtualHost, host, name string) []*routev3.VirtualHost {
	var out []*routev3.VirtualHost
	for _, vh := range all {
		for _, d := range vh.GetDomains() {
			if d == name || d == host {
				out = append(out, vh)
				break
			}
		}
	}
	if len(out) == 1 {
		vh := out[0]
		out[0] = &routev3.VirtualHost{
			Name:                       vh.GetName(),
			Domains:                    []string{"*"},
			Routes:                     vh.GetRoutes(),
			RetryPolicy:                vh.GetRetryPolicy(),
			IncludeRequestAttemptCount: vh.GetIncludeRequestAttemptCount(),
		}
	}
	if out == nil {
		out = []*routev3.VirtualHost{}
	}
	return out
}

// catchAllVirtualHost answers hosts no service claims: pass through to the
// original destination (ALLOW_ANY, or to the Sidecar's egressProxy), or 502
// (REGISTRY_ONLY).
func catchAllVirtualHost(sc *model.Scope) *routev3.VirtualHost {
	if !sc.OutboundAllowAny() {
		return &routev3.VirtualHost{
			Name:    blockAllName,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   blockAllName,
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
			}},
			IncludeRequestAttemptCount: true,
		}
	}
	cluster := passthroughCluster
	if sc.Sidecar != nil {
		if ep := sidecarEgressProxy(sc); ep != nil {
			cluster = destinationCluster(sc, ep, "", 0)
		}
	}
	return &routev3.VirtualHost{
		Name:    allowAnyName,
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  allowAnyName,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				Timeout:          durationpb.New(0),
				MaxGrpcTimeout:   durationpb.New(0), //nolint:staticcheck // Istio still sets it
			}},
		}},
		IncludeRequestAttemptCount: true,
	}
}

// inboundVirtualHost is Istio's inbound route: everything arriving on the
// target port goes to the local workload, without a timeout, retried only
// when the connection was reset before the request was sent.
func inboundVirtualHost(sc *model.Scope, port uint32) *routev3.VirtualHost {
	r := &routev3.Route{
		Name:  defaultRouteName,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: model.ClusterName(model.Inbound, port, "", "")},
			Timeout:          durationpb.New(0),
			MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
				MaxStreamDuration:    durationpb.New(0),
				GrpcTimeoutHeaderMax: durationpb.New(0),
			},
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:    "reset-before-request",
				NumRetries: wrapperspb.UInt32(2),
			},
		}},
	}
	if op := inboundOperation(sc, port); op != "" {
		r.Decorator = &routev3.Decorator{Operation: op}
	}
	return &routev3.VirtualHost{
		Name:    inboundVHostPrefix + strconv.FormatUint(uint64(port), 10),
		Domains: []string{"*"},
		Routes:  []*routev3.Route{r},
	}
}

// inboundOperation names the trace operation of an inbound port after the
// first service the proxy serves on it: "<host>:<servicePort>/*".
func inboundOperation(sc *model.Scope, target uint32) string {
	for _, in := range sc.Snapshot().ProxyInstances(sc.Proxy()) {
		for _, p := range in.Service.Ports {
			if in.Endpoint.PortFor(p) == target {
				return traceOperation(in.Service.Hostname, p.Number)
			}
		}
	}
	return ""
}

// errorSet collects problems once each, in the order first seen.
type errorSet struct {
	seen map[string]bool
	list []error
}

func (s *errorSet) add(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			s.add(e)
		}
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if msg := err.Error(); !s.seen[msg] {
		s.seen[msg] = true
		s.list = append(s.list, err)
	}
}

func (s *errorSet) err() error { return errors.Join(s.list...) }

// sidecarEgressProxy is the destination the Sidecar sends unknown traffic
// to instead of passing it through (nil: none).
func sidecarEgressProxy(sc *model.Scope) *networking.Destination {
	s, ok := sc.Sidecar.Spec.(*networking.Sidecar)
	if !ok {
		return nil
	}
	return s.GetOutboundTrafficPolicy().GetEgressProxy()
}
