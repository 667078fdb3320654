package gen

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/cespare/xxhash/v2"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	grpcgen "github.com/trellismesh/trellis/internal/xds/gen/grpc"
	"github.com/trellismesh/trellis/internal/xds/gen/listener"
	"github.com/trellismesh/trellis/internal/xds/gen/route"
)

// Generator implements the xDS server's Generator interface.
type Generator struct {
	mu      sync.Mutex
	version string // snapshot version the cache holds
	cache   map[Key]*entry
}

type entry struct {
	once sync.Once
	res  []xds.Resource
	err  error
}

// New returns a Generator with an empty cache.
func New() *Generator { return &Generator{cache: map[Key]*entry{}} }

// Key names every input of one generation.
type Key struct {
	Version   string
	TypeURL   string
	ProxyType model.ProxyType
	Generator string
	Namespace string
	Labels    uint64
	// ServiceAccount is node metadata SERVICE_ACCOUNT: whether the proxy
	// has an identity decides its inbound mTLS chains.
	ServiceAccount string
	Locality       string
	Network        string
	// Interception is node metadata INTERCEPTION_MODE.
	Interception string
	// Family is "4", "6" or "46": the IP families of the proxy's addresses.
	Family string
	// Addresses hashes the proxy's IPs; set only when the output depends on
	// them (the proxy serves instances or its Sidecar declares ingress).
	Addresses uint64
	Instances uint64
	Names     uint64
}

// KeyFor computes the cache key of a request.
func KeyFor(snap *model.Snapshot, p *model.Proxy, typeURL string, names []string) Key {
	insts := snap.ProxyInstances(p)
	k := Key{
		Version:        snap.Version,
		TypeURL:        typeURL,
		ProxyType:      p.Type,
		Generator:      p.Generator,
		Namespace:      p.Namespace,
		Labels:         hashMap(p.Labels),
		ServiceAccount: p.ServiceAccount,
		Locality:       p.Locality,
		Network:        p.Network,
		Interception:   p.Metadata[model.MetaInterception],
		Family:         family(p.IPAddresses),
		Instances:      hashInstances(insts),
		Names:          hashStrings(names),
	}
	if len(insts) > 0 || hasIngress(snap, p) {
		k.Addresses = hashStrings(p.IPAddresses)
	}
	return k
}

func family(ips []string) string {
	v4, v6 := false, false
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			if a.Is4() || a.Is4In6() {
				v4 = true
			} else {
				v6 = true
			}
		}
	}
	switch {
	case v4 && v6:
		return "46"
	case v6:
		return "6"
	}
	return "4"
}

func hasIngress(snap *model.Snapshot, p *model.Proxy) bool {
	c, ok := snap.SidecarFor(p)
	return ok && len(c.Spec.(*networking.Sidecar).GetIngress()) > 0
}

// Generate returns the resources of typeURL for the proxy. The returned
// slice is shared between proxies with the same Key: callers must not
// modify it.
func (g *Generator) Generate(snap *model.Snapshot, p *model.Proxy, typeURL string, names []string) ([]xds.Resource, error) {
	k := KeyFor(snap, p, typeURL, names)
	g.mu.Lock()
	if g.version != snap.Version {
		g.version = snap.Version
		g.cache = map[Key]*entry{}
	}
	e, ok := g.cache[k]
	if !ok {
		e = &entry{}
		g.cache[k] = e
	}
	g.mu.Unlock()
	e.once.Do(func() { e.res, e.err = Build(snap, p, typeURL, names) })
	return e.res, e.err
}

// Build generates without caching.
func Build(snap *model.Snapshot, p *model.Proxy, typeURL string, names []string) ([]xds.Resource, error) {
	sc := snap.Scope(p)
	if p.IsGRPC() {
		return grpcgen.Build(sc, typeURL, names)
	}
	switch typeURL {
	case xds.ClusterType:
		return xds.Marshal(cluster.Build(sc))
	case xds.EndpointType:
		return xds.MarshalBy(endpoint.Build(sc, names), (*endpointv3.ClusterLoadAssignment).GetClusterName)
	case xds.ListenerType:
		return xds.Marshal(listener.Build(sc))
	case xds.RouteType:
		return xds.Marshal(route.Build(sc, names))
	}
	return nil, fmt.Errorf("unsupported type %q", typeURL)
}

func hashMap(m map[string]string) uint64 {
	if len(m) == 0 {
		return 0
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := xxhash.New()
	for _, k := range keys {
		h.WriteString(k)
		h.Write([]byte{0})
		h.WriteString(m[k])
		h.Write([]byte{1})
	}
	return h.Sum64()
}

func hashStrings(ss []string) uint64 {
	if ss == nil {
		return 0
	}
	if !sort.StringsAreSorted(ss) {
		ss = append([]string(nil), ss...)
		sort.Strings(ss)
	}
	h := xxhash.New()
	for _, s := range ss {
		h.WriteString(s)
		h.Write([]byte{0})
	}
	return h.Sum64() | 1 // distinguish [] from nil
}

func hashInstances(insts []model.ServiceInstance) uint64 {
	if len(insts) == 0 {
		return 0
	}
	h := xxhash.New()
	for _, in := range insts {
		h.WriteString(in.Service.Hostname)
		h.WriteString("/" + in.Service.Namespace + "/")
		h.WriteString(in.Endpoint.Key())
		h.Write([]byte{0})
	}
	return h.Sum64()
}
