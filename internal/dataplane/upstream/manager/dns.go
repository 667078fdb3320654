package manager

import (
	"context"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// dnsLookupTimeout bounds one name's resolution.
const dnsLookupTimeout = 5 * time.Second

// names returns the DNS names of a DNS cluster's endpoints.
func (e *entry) names() []string {
	var out []string
	seen := map[string]bool{}
	if e.c.LoadAssignment == nil {
		return nil
	}
	for _, l := range e.c.LoadAssignment.Localities {
		for _, ep := range l.Endpoints {
			if a := ep.Address; a.Kind == host.Socket && !a.IP.IsValid() && !seen[a.Host] {
				seen[a.Host] = true
				out = append(out, a.Host)
			}
		}
	}
	return out
}

// seedDNS gives a new DNS cluster the previous version's last answers, so
// an update does not empty it until the next resolution. Without them the
// cluster warms until its first resolution (names that are IP literals
// are hosts at once).
func (e *entry) seedDNS(prev *entry) {
	var last map[string][]netip.Addr
	if prev != nil && prev.isDNS() {
		prev.mu.Lock()
		last = prev.dnsLast
		prev.mu.Unlock()
	}
	if len(e.names()) > 0 && last == nil {
		e.warming.Store(true)
		e.syncHosts()
		return
	}
	e.mu.Lock()
	e.dnsLast = last
	e.mu.Unlock()
	_ = e.in.Update(e.c.ResolvedEndpoints(func(n string) []netip.Addr { return last[n] }))
	e.syncHosts()
}

// resolve resolves the cluster's names, updates its hosts and returns when
// to resolve again: dns_refresh_rate (plus dns_jitter) after a success,
// the failure back-off (dns_failure_refresh_rate, doubling) after a
// failure. A name that fails keeps its previous addresses. TTLs are not
// known (net.Resolver hides them): respect_dns_ttl is not honoured.
func (e *entry) resolve(ctx context.Context, r Resolver, rnd func() uint64) time.Duration {
	network := "ip"
	switch e.c.DNS.LookupFamily {
	case clusterv3.Cluster_V4_ONLY:
		network = "ip4"
	case clusterv3.Cluster_V6_ONLY:
		network = "ip6"
	}
	e.mu.Lock()
	answers := make(map[string][]netip.Addr, len(e.dnsLast))
	for n, a := range e.dnsLast {
		answers[n] = a
	}
	e.mu.Unlock()
	failed := false
	for _, name := range e.names() {
		lctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
		addrs, err := r.LookupNetIP(lctx, network, name)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return time.Hour // shutting down
			}
			failed = true
			e.log.Debug("DNS resolution failed", "cluster", e.name, "name", name, "error", err)
			continue
		}
		answers[name] = family(addrs, e.c.DNS.LookupFamily)
	}
	e.mu.Lock()
	e.dnsLast = answers
	if failed {
		e.dnsFailures++
	} else {
		e.dnsFailures = 0
	}
	failures := e.dnsFailures
	e.mu.Unlock()
	if err := e.in.Update(e.c.ResolvedEndpoints(func(n string) []netip.Addr { return answers[n] })); err != nil {
		e.log.Error("DNS cluster update", "cluster", e.name, "error", err)
	}
	e.warming.Store(false)
	e.syncHosts()
	return e.nextResolution(failures, rnd)
}

func (e *entry) nextResolution(failures int, rnd func() uint64) time.Duration {
	d := e.c.DNS
	next := d.RefreshRate
	if failures > 0 && d.FailureRefreshBase > 0 {
		next = d.FailureRefreshBase << min(failures-1, 16)
		if d.FailureRefreshMax > 0 && (next > d.FailureRefreshMax || next <= 0) {
			next = d.FailureRefreshMax
		}
	}
	if d.Jitter > 0 {
		next += time.Duration(rnd() % uint64(d.Jitter))
	}
	if next <= 0 {
		next = upstream.DefaultDNSRefreshRate
	}
	return next
}

// family orders and filters addresses as dns_lookup_family asks: AUTO
// (IPv6, else IPv4), V4_PREFERRED (IPv4, else IPv6), ALL (both), and the
// *_ONLY families, which the lookup already filtered.
func family(addrs []netip.Addr, f clusterv3.Cluster_DnsLookupFamily) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	switch f {
	case clusterv3.Cluster_AUTO:
		if len(v6) > 0 {
			return v6
		}
		return v4
	case clusterv3.Cluster_V4_PREFERRED:
		if len(v4) > 0 {
			return v4
		}
		return v6
	}
	return append(v4, v6...)
}
