package route

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// VirtualHosts returns the outbound virtual hosts of a port, sorted by name,
// without the catch-all (allow_any / block_all) that Build appends. It is
// the part of a port's route configuration that proxyless gRPC clients use
// too. A virtual host may carry the retry policy of its routes (see
// shareRetryPolicy). The error lists problems that removed routes or
// virtual hosts.
func VirtualHosts(sc *model.Scope, port uint32) ([]*routev3.VirtualHost, error) {
	var errs []error
	snap := sc.Snapshot()

	// Services with the port, whatever its protocol (for VirtualService
	// selection and destination lookups), as Istio's servicesByName.
	onPort := map[string]*model.Service{}
	var wildOnPort []string // wildcard service hosts (ServiceEntry "*.example.com")
	for _, svc := range sc.Services {
		if _, ok := svc.Port(port); ok {
			onPort[svc.Hostname] = svc
			if strings.HasPrefix(svc.Hostname, "*") {
				wildOnPort = append(wildOnPort, svc.Hostname)
			}
		}
	}

	vss := make([]boundVS, 0, len(sc.VirtualServices))
	for _, c := range sc.VirtualServices {
		hosts := c.Spec.(*networking.VirtualService).GetHosts()
		b := boundVS{cfg: c, hosts: make([]string, 0, len(hosts))}
		for _, h := range hosts {
			b.hosts = append(b.hosts, snap.ResolveHost(h, c.Namespace))
		}
		vss = append(vss, b)
	}
	owner := serviceOwners(vss, sc.Services)
	hash := newHashRules(sc)

	// One wrapper per VirtualService that yields routes on this port: the
	// services it owns plus its hosts that are not services.
	var wrappers []vhostWrapper
	claimed := map[string]bool{}
	for i, vs := range vss {
		if port != 80 && !vs.touches(onPort, wildOnPort) {
			continue // Istio only selects a VirtualService matching a service on the port
		}
		routes, err := httpRoutes(sc, hash, vs.cfg, port)
		if err != nil {
			errs = append(errs, err)
		}
		if len(routes) == 0 {
			continue
		}
		w := vhostWrapper{routes: routes, source: vsName(vs.cfg)}
		for _, h := range vs.hosts {
			if strings.HasPrefix(h, "*") {
				matched := false
				for _, svc := range sc.Services {
					if _, ok := onPort[svc.Hostname]; !ok || !model.HostMatches(h, svc.Hostname) {
						continue
					}
					matched = true
					if owner[svc.Hostname] == i && httpPort(svc, port) {
						w.services = appendService(w.services, svc)
					}
				}
				if !matched {
					w.hosts = append(w.hosts, h)
				}
				continue
			}
			if svc, ok := onPort[h]; ok {
				if httpPort(svc, port) {
					w.services = appendService(w.services, svc)
				}
				continue
			}
			w.hosts = append(w.hosts, h)
		}
		if len(w.services) == 0 && port != 80 {
			continue
		}
		for _, svc := range w.services {
			claimed[svc.Hostname] = true
		}
		wrappers = append(wrappers, w)
	}
	// Services no VirtualService claimed get the default route.
	for _, svc := range sc.Services {
		if claimed[svc.Hostname] || !httpPort(svc, port) {
			continue
		}
		wrappers = append(wrappers, vhostWrapper{
			services: []*model.Service{svc},
			routes:   []*routev3.Route{defaultOutboundRoute(sc, hash, svc, port)},
		})
	}
	for i := range wrappers {
		wrappers[i].retry = shareRetryPolicy(wrappers[i].routes)
	}

	d := newDomainSet(sc, port, wrappers)
	var out []*routev3.VirtualHost
	for _, w := range wrappers {
		for _, h := range w.hosts {
			if h == "*" {
				errs = append(errs, fmt.Errorf(`%s: host "*" would shadow the catch-all; left out (use a Sidecar outboundTrafficPolicy)`, w.source))
				continue
			}
			if vh := d.virtualHost(h, nil, w); vh != nil {
				out = append(out, vh)
			}
		}
		for _, svc := range w.services {
			if vh := d.virtualHost(svc.Hostname, svc, w); vh != nil {
				out = append(out, vh)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, errors.Join(errs...)
}

// boundVS is a VirtualService with its hosts resolved to full names.
type boundVS struct {
	cfg   config.Config
	hosts []string
}

// touches reports whether any host of the VirtualService overlaps a service
// listening on the port (wild lists the wildcard ones among them).
func (b boundVS) touches(onPort map[string]*model.Service, wild []string) bool {
	for _, h := range b.hosts {
		if _, ok := onPort[h]; ok {
			return true
		}
		if strings.HasPrefix(h, "*") {
			for svcHost := range onPort {
				if model.HostsOverlap(h, svcHost) {
					return true
				}
			}
			continue
		}
		for _, svcHost := range wild {
			if model.HostMatches(svcHost, h) {
				return true
			}
		}
	}
	return false
}

type vhostWrapper struct {
	hosts    []string // VirtualService hosts that are not services
	services []*model.Service
	routes   []*routev3.Route
	retry    *routev3.RetryPolicy // the virtual hosts' retry policy (shareRetryPolicy)
	source   string               // the VirtualService, for messages ("" for default routes)
}

func appendService(list []*model.Service, svc *model.Service) []*model.Service {
	for _, s := range list {
		if s == svc {
			return list
		}
	}
	return append(list, svc)
}

// serviceOwners maps each service host to the index of the VirtualService
// whose routes it takes: the oldest naming it exactly, else the one with the
// most specific wildcard host covering it (oldest on ties). Services without
// one are absent.
func serviceOwners(vss []boundVS, services []*model.Service) map[string]int {
	exact := map[string]int{}
	wild := map[string]int{}
	var wildHosts []string
	for i, vs := range vss {
		for _, h := range vs.hosts {
			m := exact
			if strings.HasPrefix(h, "*") {
				m = wild
			}
			if _, ok := m[h]; !ok {
				m[h] = i
				if strings.HasPrefix(h, "*") {
					wildHosts = append(wildHosts, h)
				}
			}
		}
	}
	sort.Slice(wildHosts, func(i, j int) bool { return model.MoreSpecificHost(wildHosts[i], wildHosts[j]) })
	out := map[string]int{}
	for _, svc := range services {
		if i, ok := exact[svc.Hostname]; ok {
			out[svc.Hostname] = i
			continue
		}
		for _, w := range wildHosts {
			if model.HostMatches(w, svc.Hostname) {
				out[svc.Hostname] = wild[w]
				break
			}
		}
	}
	return out
}

// httpPort reports whether the service's port is routed by HTTP (declared
// HTTP-like, or undeclared and sniffed).
func httpPort(svc *model.Service, port uint32) bool {
	p, ok := svc.Port(port)
	return ok && (p.Protocol.IsHTTP() || p.Protocol.IsUnsupported())
}

// domainSet hands out virtual hosts for one route configuration, keeping
// virtual host names and domains unique across them as Istio does.
type domainSet struct {
	port      uint32
	domPort   uint32 // port of the host:port domain forms; 0: none (ignore_port_in_host_matching)
	proxyDom  string // <ns>.svc.<suffix>
	names     map[string]bool
	domains   map[string]bool
	knownFQDN map[string]bool
}

func newDomainSet(sc *model.Scope, port uint32, wrappers []vhostWrapper) *domainSet {
	n := 0
	for _, w := range wrappers {
		n += len(w.hosts) + len(w.services)
	}
	d := &domainSet{
		port:      port,
		domPort:   domainPort(sc, port),
		proxyDom:  sc.Namespace + ".svc." + sc.Snapshot().DomainSuffix,
		names:     make(map[string]bool, n),
		domains:   make(map[string]bool, 10*n),
		knownFQDN: make(map[string]bool, 2*n),
	}
	for _, w := range wrappers {
		for _, svc := range w.services {
			d.knownFQDN[svc.Hostname] = true
			d.knownFQDN[domainName(svc.Hostname, port)] = true
		}
	}
	return d
}

// domainPort is the port of the host:port domains: none for sidecars, whose
// outbound route configurations set ignore_port_in_host_matching (Istio ≥
// 1.20); the listener port for proxyless gRPC, which cannot ignore it.
func domainPort(sc *model.Scope, port uint32) uint32 {
	if sc.Proxy().IsGRPC() {
		return port
	}
	return noPort
}

// noPort asks appendDomainPort and altHosts for the forms without a port
// only (Istio's portNoAppendPortSuffix).
const noPort = 0

// virtualHost builds the virtual host of one host (svc nil: a VirtualService
// host that is not a service) with the wrapper's routes. It returns nil when
// the name is taken or no domain is left.
func (d *domainSet) virtualHost(host string, svc *model.Service, w vhostWrapper) *routev3.VirtualHost {
	name := domainName(host, d.port)
	if d.names[name] {
		return nil
	}
	d.names[name] = true
	var domains, alt []string
	if svc == nil {
		domains = appendDomainPort(nil, host, d.domPort)
	} else {
		domains, alt = d.serviceDomains(svc)
	}
	kept := domains[:0]
	for _, dom := range domains {
		lower := strings.ToLower(dom)
		if d.domains[lower] {
			continue
		}
		// An expanded short form must not shadow a real service's name
		// (foo.com.cluster.local shortened to foo.com).
		if d.knownFQDN[dom] && contains(alt, dom) {
			continue
		}
		d.domains[lower] = true
		kept = append(kept, dom)
	}
	if len(kept) == 0 {
		return nil
	}
	return &routev3.VirtualHost{
		Name:                       name,
		Domains:                    kept,
		Routes:                     w.routes,
		RetryPolicy:                w.retry,
		IncludeRequestAttemptCount: true,
	}
}

// serviceDomains lists the Host headers that reach svc on the port: its
// name, Istio's short forms of it, and its VIPs, each also with the port
// when d.domPort is set. alt are the short forms alone.
func (d *domainSet) serviceDomains(svc *model.Service) (domains, alt []string) {
	alt = altHosts(svc.Hostname, d.domPort, d.proxyDom)
	domains = appendDomainPort(nil, svc.Hostname, d.domPort)
	domains = append(domains, alt...)
	for _, a := range svc.Addresses {
		if ip, ok := vipOf(a); ok {
			domains = appendDomainPort(domains, ip, d.domPort)
		}
	}
	return domains, alt
}

// vipOf returns the address of a VIP written as an IP or a single-address
// CIDR; ranges and the unspecified address are not Host headers.
func vipOf(a string) (string, bool) {
	if p, err := netip.ParsePrefix(a); err == nil {
		if p.Bits() != p.Addr().BitLen() {
			return "", false
		}
		a = p.Addr().String()
	}
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.IsUnspecified() {
		return "", false
	}
	return ip.String(), true
}

// altHosts generates the shorter names a client may use for host, as
// Istio's GenerateAltVirtualHosts: for a Kubernetes-style proxy domain
// (<ns>.svc.<suffix>) and a host under the same suffix, name.ns and
// name.ns.svc, plus name alone when the namespaces agree; otherwise the part
// of host not shared with the proxy domain (and that plus the next label).
// Each comes with its host:port form unless port is noPort.
func altHosts(host string, port uint32, proxyDom string) []string {
	if strings.Contains(proxyDom, ".svc.") {
		if !strings.HasSuffix(host, proxyDom[strings.Index(proxyDom, ".svc."):]) {
			return nil
		}
		return kubeAltHosts(host, port, proxyDom)
	}
	unique, shared := splitSharedSuffix(host, proxyDom)
	if len(shared) == 0 {
		return nil
	}
	u := strings.Join(unique, ".")
	out := appendDomainPort(nil, u, port)
	if len(unique) == 2 {
		out = appendDomainPort(out, u+"."+shared[0], port)
	}
	return out
}

func kubeAltHosts(host string, port uint32, proxyDom string) []string {
	ih := strings.Index(host, ".svc.")
	if ih <= 0 {
		return nil
	}
	ns := strings.IndexByte(host, '.')
	if ns+1 >= len(host) || ns+1 > ih {
		return nil
	}
	name, nsName := host[:ns], host[:ih] // reviews, reviews.default
	if host[ns+1:ih] == proxyDom[:strings.Index(proxyDom, ".svc.")] {
		out := appendDomainPort(nil, name, port)
		out = appendDomainPort(out, nsName+".svc", port)
		return appendDomainPort(out, nsName, port)
	}
	out := appendDomainPort(nil, nsName, port)
	return appendDomainPort(out, nsName+".svc", port)
}

// splitSharedSuffix splits host into the labels it does not share with the
// proxy domain's suffix and the labels it does.
func splitSharedSuffix(host, proxyDom string) (unique, shared []string) {
	h := strings.Split(host, ".")
	p := strings.Split(proxyDom, ".")
	n := 0
	for n < len(h) && n < len(p) && h[len(h)-1-n] == p[len(p)-1-n] {
		n++
	}
	if n == 0 {
		return h, nil
	}
	return h[:len(h)-n], h[len(h)-n:]
}

// appendDomainPort appends host and, unless port is noPort, host:port.
func appendDomainPort(domains []string, host string, port uint32) []string {
	if port == noPort {
		return append(domains, ipv6Compliant(host))
	}
	return append(domains, ipv6Compliant(host), domainName(host, port))
}

// domainName is host:port, with IPv6 addresses bracketed.
func domainName(host string, port uint32) string {
	return ipv6Compliant(host) + ":" + strconv.FormatUint(uint64(port), 10)
}

func ipv6Compliant(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
