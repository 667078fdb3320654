package grpc

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/route"
)

// Filter names.
const (
	faultFilter  = "envoy.filters.http.fault"
	routerFilter = "envoy.filters.http.router"
)

// Build returns the resources of typeURL named in names for a proxyless
// gRPC client. gRPC never subscribes by wildcard; a wildcard request gets
// nothing.
func Build(sc *model.Scope, typeURL string, names []string) ([]xds.Resource, error) {
	switch typeURL {
	case xds.ListenerType:
		return xds.Marshal(Listeners(sc, names))
	case xds.RouteType:
		return xds.Marshal(Routes(sc, names))
	case xds.ClusterType:
		return xds.Marshal(Clusters(sc, names))
	case xds.EndpointType:
		return xds.MarshalBy(endpoint.Build(sc, names), (*endpointv3.ClusterLoadAssignment).GetClusterName)
	}
	return nil, fmt.Errorf("proxyless gRPC: unsupported type %q", typeURL)
}

// target resolves a listener name "host:port" to a visible service port.
func target(sc *model.Scope, name string) (*model.Service, model.Port, bool) {
	host, portStr, err := net.SplitHostPort(name)
	if err != nil {
		return nil, model.Port{}, false
	}
	n, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		return nil, model.Port{}, false
	}
	svc, ok := sc.Service(sc.Snapshot().ResolveHost(host, sc.Namespace))
	if !ok {
		return nil, model.Port{}, false
	}
	p, ok := svc.Port(uint32(n))
	return svc, p, ok
}

// Listeners builds one API listener per requested "host:port" that names a
// visible service port; other names are left out (gRPC then reports the
// target as not found).
func Listeners(sc *model.Scope, names []string) []*listenerv3.Listener {
	var out []*listenerv3.Listener
	for _, name := range sortedUnique(names) {
		svc, port, ok := target(sc, name)
		if !ok {
			continue
		}
		h := &hcmv3.HttpConnectionManager{
			StatPrefix: name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				ConfigSource: &corev3.ConfigSource{
					ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
					ResourceApiVersion:    corev3.ApiVersion_V3,
				},
				RouteConfigName: model.ClusterName(model.Outbound, port.Number, "", svc.Hostname),
			}},
			HttpFilters: []*hcmv3.HttpFilter{
				{Name: faultFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
				{Name: routerFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
			},
		}
		out = append(out, &listenerv3.Listener{
			Name:        name,
			ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(h)},
		})
	}
	return out
}

// Routes builds the route configuration "outbound|<port>||<host>": the
// sidecar's virtual host for that service and port, reduced for gRPC.
func Routes(sc *model.Scope, names []string) []*routev3.RouteConfiguration {
	byPort := map[uint32][]*routev3.VirtualHost{}
	var out []*routev3.RouteConfiguration
	for _, name := range sortedUnique(names) {
		key, ok := model.ParseClusterName(name)
		if !ok || key.Direction != model.Outbound || key.Subset != "" {
			continue
		}
		vhs, seen := byPort[key.Port]
		if !seen {
			// Errors only describe dropped pieces; they are logged by the
			// sidecar path and need not fail gRPC clients.
			vhs, _ = route.VirtualHosts(sc, key.Port)
			byPort[key.Port] = vhs
		}
		want := net.JoinHostPort(key.Host, strconv.FormatUint(uint64(key.Port), 10))
		for _, vh := range vhs {
			if vh.GetName() != want {
				continue
			}
			vh = proto.Clone(vh).(*routev3.VirtualHost)
			vh.Domains = []string{"*"}
			vh.TypedPerFilterConfig = nil
			vh.RetryPolicy = reduceRetryPolicy(vh.GetRetryPolicy())
			for _, r := range vh.GetRoutes() {
				reduceRoute(r, vh.RetryPolicy != nil)
			}
			out = append(out, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}})
			break
		}
	}
	return out
}

// reduceRoute removes what gRPC cannot accept from a sidecar route.
// vhostRetries tells whether its virtual host has a retry policy, which a
// route without one inherits.
func reduceRoute(r *routev3.Route, vhostRetries bool) {
	for k := range r.GetTypedPerFilterConfig() {
		if k != faultFilter {
			delete(r.TypedPerFilterConfig, k)
		}
	}
	if len(r.TypedPerFilterConfig) == 0 {
		r.TypedPerFilterConfig = nil
	}
	a := r.GetRoute()
	if a == nil {
		return
	}
	a.RequestMirrorPolicies = nil
	if rp := a.GetRetryPolicy(); rp != nil {
		a.RetryPolicy = reduceRetryPolicy(rp)
		if a.RetryPolicy == nil && vhostRetries {
			// No retries, without inheriting the virtual host's: gRPC
			// takes an empty policy (no retry_on) as retrying nothing.
			a.RetryPolicy = &routev3.RetryPolicy{}
		}
	}
	if wc := a.GetWeightedClusters(); wc != nil {
		for _, c := range wc.GetClusters() {
			c.TypedPerFilterConfig = nil
		}
	}
}

// reduceRetryPolicy keeps what gRPC reads of a retry policy (retry_on,
// num_retries, back-off). A policy without retries (num_retries 0 or
// unset) becomes nil: gRPC rejects num_retries 0.
func reduceRetryPolicy(rp *routev3.RetryPolicy) *routev3.RetryPolicy {
	if rp == nil || rp.GetNumRetries() == nil || rp.GetNumRetries().GetValue() == 0 {
		return nil
	}
	return &routev3.RetryPolicy{
		RetryOn:      rp.GetRetryOn(),
		NumRetries:   rp.GetNumRetries(),
		RetryBackOff: rp.GetRetryBackOff(),
	}
}

// Clusters builds the requested outbound clusters, reduced for gRPC.
func Clusters(sc *model.Scope, names []string) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, name := range sortedUnique(names) {
		key, ok := model.ParseClusterName(name)
		if !ok || key.Direction != model.Outbound {
			continue
		}
		svc, ok := sc.Service(key.Host)
		if !ok {
			continue
		}
		port, ok := svc.Port(key.Port)
		if !ok {
			continue
		}
		c := cluster.Outbound(sc, svc, port, key.Subset)
		if c == nil || c.GetType() != clusterv3.Cluster_EDS {
			// gRPC clusters are EDS; DNS and passthrough services are not
			// offered to proxyless clients.
			continue
		}
		reduceCluster(c)
		out = append(out, c)
	}
	return out
}

func reduceCluster(c *clusterv3.Cluster) {
	c.TransportSocket = nil
	c.TransportSocketMatches = nil
	c.TypedExtensionProtocolOptions = nil
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_LEAST_REQUEST:
	case clusterv3.Cluster_MAGLEV:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = nil
	default:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		c.LbConfig = nil
	}
}

func sortedUnique(names []string) []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	j := 0
	for i, n := range out {
		if i == 0 || n != out[j-1] {
			out[j] = n
			j++
		}
	}
	return out[:j]
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("marshalling %T: %v", m, err))
	}
	return a
}
