package host_test

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

func socket(ip string, port uint32) host.Address {
	return host.Address{Kind: host.Socket, Host: ip, IP: netip.MustParseAddr(ip), Port: port}
}

func TestAddressString(t *testing.T) {
	cases := []struct {
		addr host.Address
		want string
	}{
		{socket("10.0.0.1", 8080), "10.0.0.1:8080"},
		{socket("fd00::1", 80), "[fd00::1]:80"},
		{host.Address{Kind: host.Socket, Host: "svc.example.com", Port: 443}, "svc.example.com:443"},
		{host.Address{Kind: host.Pipe, Path: "/var/run/app.sock"}, "/var/run/app.sock"},
		{host.Address{Kind: host.Internal, ServerListener: "connect_originate", EndpointID: "10.0.0.1:80"}, "envoy://connect_originate/10.0.0.1:80"},
	}
	for _, tc := range cases {
		if got := tc.addr.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	if ap, ok := socket("10.0.0.1", 80).AddrPort(); !ok || ap.String() != "10.0.0.1:80" {
		t.Errorf("AddrPort = %v %v", ap, ok)
	}
}

// TestHealth follows Envoy's EDS health mapping and outlier ejection.
func TestHealth(t *testing.T) {
	cases := []struct {
		status corev3.HealthStatus
		want   host.Health
	}{
		{corev3.HealthStatus_UNKNOWN, host.Healthy},
		{corev3.HealthStatus_HEALTHY, host.Healthy},
		{corev3.HealthStatus_UNHEALTHY, host.Unhealthy},
		{corev3.HealthStatus_DRAINING, host.Unhealthy},
		{corev3.HealthStatus_TIMEOUT, host.Unhealthy},
		{corev3.HealthStatus_DEGRADED, host.Degraded},
	}
	for _, tc := range cases {
		h := host.New(host.Endpoint{Address: socket("10.0.0.1", 80), Health: tc.status}, nil)
		if got := h.Health(); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.status, got, tc.want)
		}
	}

	d, err := outlier.New(outlier.DefaultConfig(), outlier.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var monitors []*outlier.Monitor
	for range 10 {
		monitors = append(monitors, d.Add(""))
	}
	h := host.New(host.Endpoint{Address: socket("10.0.0.1", 80), Health: corev3.HealthStatus_DEGRADED}, monitors[0])
	for range 5 {
		monitors[0].Put(outlier.Result{Status: 500})
	}
	if !h.Ejected() || h.Health() != host.Unhealthy {
		t.Errorf("ejected host: %v %v", h.Ejected(), h.Health())
	}
	g := host.New(host.Endpoint{Address: socket("10.0.0.2", 80)}, nil)
	g.SetActiveHealthCheckFailed(true)
	if g.Health() != host.Unhealthy {
		t.Error("active health check failure ignored")
	}
}

func TestEndpointUpdateKeepsIdentity(t *testing.T) {
	h := host.New(host.Endpoint{Address: socket("10.0.0.1", 80)}, nil)
	if h.Weight() != 1 {
		t.Errorf("default weight %d", h.Weight())
	}
	h.Stats.RqActive.Add(3)
	h.SetEndpoint(host.Endpoint{Address: socket("10.9.9.9", 1), Weight: 7, Priority: 2})
	if h.Key() != "10.0.0.1:80" || h.Address().String() != "10.0.0.1:80" || h.Weight() != 7 ||
		h.Endpoint().Priority != 2 || h.Stats.RqActive.Load() != 3 {
		t.Errorf("after update: %s %+v", h.Key(), h.Endpoint())
	}
}

func TestHashKey(t *testing.T) {
	ep := host.Endpoint{Address: socket("10.0.0.1", 80), Hostname: "a.example"}
	h := host.New(ep, nil)
	if h.HashKey(false) != "10.0.0.1:80" || h.HashKey(true) != "a.example" {
		t.Errorf("hash keys %q %q", h.HashKey(false), h.HashKey(true))
	}
	ep.HashKey = "pinned"
	h.SetEndpoint(ep)
	if h.HashKey(false) != "pinned" || h.HashKey(true) != "pinned" {
		t.Errorf("envoy.lb hash_key not preferred")
	}
}

func TestAcquireConnection(t *testing.T) {
	h := host.New(host.Endpoint{Address: socket("10.0.0.1", 80)}, nil)
	if !h.AcquireConnection(2) || !h.AcquireConnection(2) || h.AcquireConnection(2) {
		t.Fatal("per-host limit of 2 not enforced")
	}
	h.ReleaseConnection()
	if !h.AcquireConnection(2) || h.Stats.CxTotal.Load() != 3 {
		t.Errorf("after release: total %d", h.Stats.CxTotal.Load())
	}
}

func TestNewSet(t *testing.T) {
	mk := func(ip string, s corev3.HealthStatus) *host.Host {
		return host.New(host.Endpoint{Address: socket(ip, 80), Health: s}, nil)
	}
	a1, a2 := mk("10.0.0.1", corev3.HealthStatus_HEALTHY), mk("10.0.0.2", corev3.HealthStatus_DEGRADED)
	b1 := mk("10.0.1.1", corev3.HealthStatus_UNHEALTHY)
	c1 := mk("10.0.2.1", corev3.HealthStatus_UNKNOWN)
	zoneA := host.Locality{Region: "r", Zone: "a"}
	zoneB := host.Locality{Region: "r", Zone: "b"}
	set := host.NewSet([]host.Group{
		{Priority: 0, Locality: zoneB, Weight: 5, Hosts: []*host.Host{b1}},
		{Priority: 0, Locality: zoneA, Weight: 1, Hosts: []*host.Host{a1}},
		{Priority: 0, Locality: zoneA, Weight: 2, Hosts: []*host.Host{a2}}, // merged, last weight wins
		{Priority: 2, Locality: zoneA, Hosts: []*host.Host{c1}},
	}, 0, false)
	if len(set.Priorities) != 3 || set.OverprovisioningFactor != 140 || set.Len() != 4 {
		t.Fatalf("set %+v", set)
	}
	p0 := set.Priorities[0]
	if len(p0.Hosts) != 3 || len(p0.Healthy) != 1 || len(p0.Degraded) != 1 {
		t.Errorf("P0 hosts %d healthy %d degraded %d", len(p0.Hosts), len(p0.Healthy), len(p0.Degraded))
	}
	if len(p0.Localities) != 2 || p0.Localities[0].Locality != zoneA || p0.Localities[0].Weight != 2 ||
		len(p0.Localities[0].Hosts) != 2 || p0.Localities[1].Locality != zoneB {
		t.Errorf("P0 localities %+v", p0.Localities)
	}
	if len(set.Priorities[1].Hosts) != 0 || len(set.Priorities[2].Healthy) != 1 {
		t.Errorf("P1 %+v P2 %+v", set.Priorities[1], set.Priorities[2])
	}
	if empty := host.NewSet(nil, 0, false); len(empty.Priorities) != 1 {
		t.Errorf("empty set has %d priorities, want 1", len(empty.Priorities))
	}
}

// TestSharedEndpoint: a host built from an immutable set's Endpoint keeps
// that Endpoint instead of a copy, unless it needs New's defaults or an
// update names another address (then SetEndpoint's rules apply).
func TestSharedEndpoint(t *testing.T) {
	ep := &host.Endpoint{Address: socket("10.0.0.1", 80), Weight: 3}
	h := host.NewShared(ep, nil)
	if h.Endpoint() != ep || h.Key() != "10.0.0.1:80" {
		t.Fatalf("NewShared copied the endpoint (%p, want %p) or lost the key %q", h.Endpoint(), ep, h.Key())
	}
	next := &host.Endpoint{Address: socket("10.0.0.1", 80), Weight: 5}
	h.ShareEndpoint(next)
	if h.Endpoint() != next || h.Weight() != 5 {
		t.Errorf("ShareEndpoint copied the endpoint or lost the weight: %+v", h.Endpoint())
	}
	zero := &host.Endpoint{Address: socket("10.0.0.2", 80)}
	if g := host.NewShared(zero, nil); g.Endpoint() == zero || g.Weight() != 1 || zero.Weight != 0 {
		t.Errorf("weight 0: NewShared must apply the default to a copy, not the shared endpoint (%+v)", zero)
	}
	other := &host.Endpoint{Address: socket("10.9.9.9", 1), Weight: 2}
	h.ShareEndpoint(other)
	if h.Endpoint() == other || h.Endpoint().Address != h.Address() || other.Address.String() != "10.9.9.9:1" {
		t.Errorf("another address: the host must keep its own address in a copy (%+v)", h.Endpoint())
	}
}
