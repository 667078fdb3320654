package upstream_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func reviewsRule(trafficPolicy string) string {
	return reviewsService + `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
` + trafficPolicy
}

// istioUnlimited is Istio's "no limit" for circuit breakers.
const istioUnlimited = math.MaxUint32

// TestCompileFromDestinationRules compiles clusters generated from Istio
// DestinationRules and checks the model carries what the rule says.
func TestCompileFromDestinationRules(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *upstream.Cluster)
	}{
		{"no rule: Istio's LEAST_REQUEST, no limits", reviewsService, func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "type", c.Type, upstream.EDS)
			wantEq(t, "eds service", c.EDSServiceName, reviewsCluster)
			wantEq(t, "policy", c.LB.Policy, lb.LeastRequest)
			wantEq(t, "choice count", c.LB.ChoiceCount, uint32(2))
			wantEq(t, "panic threshold", c.LB.PanicThreshold, uint32(50))
			wantEq(t, "connect timeout", c.ConnectTimeout, 10*time.Second)
			wantEq(t, "buffer limit", c.PerConnectionBufferLimit, uint32(1<<20))
			th := c.Breakers[circuit.Default]
			wantEq(t, "max connections", th.MaxConnections, uint64(istioUnlimited))
			wantEq(t, "max pending", th.MaxPendingRequests, uint64(istioUnlimited))
			wantEq(t, "max requests", th.MaxRequests, uint64(istioUnlimited))
			wantEq(t, "max retries", th.MaxRetries, uint64(istioUnlimited))
			wantEq(t, "max pools", th.MaxConnectionPools, uint64(circuit.Unlimited))
			wantEq(t, "track remaining", th.TrackRemaining, true)
			wantEq(t, "high priority: Envoy defaults", c.Breakers[circuit.High], circuit.DefaultThresholds())
			wantEq(t, "outlier", c.Outlier == nil, true)
			wantEq(t, "protocol", c.HTTP.Protocol, upstream.HTTP1)
			wantEq(t, "idle timeout", c.HTTP.IdleTimeout, time.Hour)
		}},
		{"ROUND_ROBIN", reviewsRule(`    loadBalancer: {simple: ROUND_ROBIN}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.RoundRobin)
		}},
		{"RANDOM", reviewsRule(`    loadBalancer: {simple: RANDOM}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.Random)
		}},
		{"LEAST_REQUEST with warmup", reviewsRule(`    loadBalancer: {simple: LEAST_REQUEST, warmup: {duration: 60s}}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.LeastRequest)
			if c.SlowStart == nil || c.SlowStart.Window != time.Minute || c.SlowStart.Aggression != 1 || c.SlowStart.MinWeightPercent != 10 {
				t.Errorf("slow start %+v", c.SlowStart)
			}
		}},
		{"consistent hash: ring hash", reviewsRule(`    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        ringHash: {minimumRingSize: 2048}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.RingHash)
			wantEq(t, "min ring", c.LB.MinRingSize, uint64(2048))
			wantEq(t, "max ring", c.LB.MaxRingSize, uint64(8<<20))
			wantEq(t, "hash function", c.LB.HashFunction, lb.XXHash)
		}},
		{"consistent hash: default ring", reviewsRule(`    loadBalancer:
      consistentHash: {useSourceIp: true}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.RingHash)
			wantEq(t, "min ring", c.LB.MinRingSize, uint64(1024))
		}},
		{"consistent hash: maglev", reviewsRule(`    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s}
        maglev: {tableSize: 1009}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "policy", c.LB.Policy, lb.Maglev)
			wantEq(t, "table size", c.LB.MaglevTableSize, uint64(1009))
		}},
		{"outlier detection", reviewsRule(`    outlierDetection:
      consecutive5xxErrors: 3
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50`), func(t *testing.T, c *upstream.Cluster) {
			if c.Outlier == nil {
				t.Fatal("no outlier detection")
			}
			o := c.Outlier
			wantEq(t, "5xx", o.Consecutive5xx, outlier.Rule{Threshold: 3, Enforcing: 100})
			wantEq(t, "gateway (Envoy default)", o.ConsecutiveGatewayFailure, outlier.Rule{Threshold: 5, Enforcing: 0})
			wantEq(t, "interval", o.Interval, 5*time.Second)
			wantEq(t, "base ejection", o.BaseEjectionTime, time.Minute)
			wantEq(t, "max ejection (Envoy default)", o.MaxEjectionTime, 300*time.Second)
			wantEq(t, "max percent", o.MaxEjectionPercent, uint32(50))
			wantEq(t, "success rate off", o.SuccessRate.Enforcing, uint32(0))
			// Istio's minHealthPercent defaults to 0: panic mode off.
			wantEq(t, "panic threshold", c.LB.PanicThreshold, uint32(0))
		}},
		{"outlier detection: gateway errors, local origin split", reviewsRule(`    outlierDetection:
      consecutiveGatewayErrors: 2
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 4
      minHealthPercent: 30`), func(t *testing.T, c *upstream.Cluster) {
			o := c.Outlier
			wantEq(t, "gateway", o.ConsecutiveGatewayFailure, outlier.Rule{Threshold: 2, Enforcing: 100})
			wantEq(t, "local origin", o.ConsecutiveLocalOriginFailure, outlier.Rule{Threshold: 4, Enforcing: 100})
			wantEq(t, "split", o.SplitExternalLocalOriginErrors, true)
			wantEq(t, "panic threshold", c.LB.PanicThreshold, uint32(30))
		}},
		{"connection pool → breakers and HTTP options", reviewsRule(`    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s, maxConnectionDuration: 1h}
      http:
        http1MaxPendingRequests: 5
        http2MaxRequests: 20
        maxRetries: 4
        maxRequestsPerConnection: 1
        idleTimeout: 30s`), func(t *testing.T, c *upstream.Cluster) {
			th := c.Breakers[circuit.Default]
			wantEq(t, "max connections", th.MaxConnections, uint64(10))
			wantEq(t, "max pending", th.MaxPendingRequests, uint64(5))
			wantEq(t, "max requests", th.MaxRequests, uint64(20))
			wantEq(t, "max retries", th.MaxRetries, uint64(4))
			wantEq(t, "connect timeout", c.ConnectTimeout, 2*time.Second)
			wantEq(t, "protocol", c.HTTP.Protocol, upstream.HTTP1)
			wantEq(t, "max requests per connection", c.HTTP.MaxRequestsPerConnection, uint32(1))
			wantEq(t, "idle timeout", c.HTTP.IdleTimeout, 30*time.Second)
			wantEq(t, "max connection duration", c.HTTP.MaxConnectionDuration, time.Hour)
		}},
		{"retry budget", reviewsRule(`    retryBudget: {percent: 25, minRetryConcurrency: 5}`), func(t *testing.T, c *upstream.Cluster) {
			rb := c.Breakers[circuit.Default].RetryBudget
			if rb == nil || rb.Percent != 25 || rb.MinConcurrency != 5 {
				t.Errorf("retry budget %+v", rb)
			}
		}},
		{"HTTP/2 upgrade", reviewsRule(`    connectionPool:
      http: {h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 64}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "protocol", c.HTTP.Protocol, upstream.HTTP2)
			wantEq(t, "max streams", c.HTTP.HTTP2.GetMaxConcurrentStreams().GetValue(), uint32(64))
		}},
		{"use client protocol", reviewsRule(`    connectionPool:
      http: {useClientProtocol: true}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "protocol", c.HTTP.Protocol, upstream.UseDownstream)
		}},
		{"ISTIO_MUTUAL: opaque transport socket", reviewsRule(`    tls: {mode: ISTIO_MUTUAL}`), func(t *testing.T, c *upstream.Cluster) {
			if c.TransportSocket.Default == nil && len(c.TransportSocket.Matches) == 0 {
				t.Error("no transport socket kept")
			}
		}},
		{"locality distribute → locality weighted", reviewsRule(`    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-east/zone1/*
          to: {"us-east/zone1/*": 80, "us-east/zone2/*": 20}`), func(t *testing.T, c *upstream.Cluster) {
			wantEq(t, "locality weighted", c.LB.LocalityWeighted, true)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := generate(t, tc.yaml, "us-east/zone1")
			c, err := upstream.Compile(g.cluster(t, reviewsCluster))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			tc.check(t, c)
			// The instance runs it.
			in, err := upstream.New(c, upstream.Options{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			eps, err := upstream.Endpoints(g.cla(t, reviewsCluster))
			if err != nil {
				t.Fatalf("Endpoints: %v", err)
			}
			if err := in.Update(eps); err != nil {
				t.Fatal(err)
			}
			if h, err := in.Pick(lbContext(1)); err != nil || h == nil {
				t.Errorf("Pick: %v", err)
			}
		})
	}
}

// TestCompileEverythingGenerated: every cluster Bookinfo's sidecar gets,
// with every DestinationRule of Istio's samples, compiles.
func TestCompileEverythingGenerated(t *testing.T) {
	for _, sample := range []string{
		"bookinfo/networking/destination-rule-all.yaml",
		"bookinfo/networking/destination-rule-all-mtls.yaml",
		"bookinfo/networking/destination-rule-reviews.yaml",
		"bookinfo/networking/egress-rule-google-apis.yaml",
	} {
		t.Run(sample, func(t *testing.T) {
			cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Sample(t, sample))
			p := gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"})
			sc := gentest.NewSnapshot(nil, cfgs).Scope(p)
			types := map[upstream.DiscoveryType]int{}
			for _, pc := range cluster.Build(sc) {
				c, err := upstream.Compile(pc)
				if err != nil {
					t.Errorf("Compile: %v", err)
					continue
				}
				types[c.Type]++
				if _, err := upstream.New(c, upstream.Options{}); err != nil {
					t.Errorf("New(%s): %v", c.Name, err)
				}
			}
			if types[upstream.EDS] == 0 || types[upstream.OriginalDst] == 0 || types[upstream.Static] == 0 {
				t.Errorf("cluster types %v", types)
			}
		})
	}
}

func TestCompileDNSAndPassthrough(t *testing.T) {
	g := generate(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any, namespace: default}
spec:
  hosts: [any.example.com]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
`, "")
	c, err := upstream.Compile(g.cluster(t, "outbound|443||api.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "type", c.Type, upstream.StrictDNS)
	wantEq(t, "dns refresh", c.DNS.RefreshRate, time.Minute)
	wantEq(t, "respect ttl", c.DNS.RespectTTL, true)
	if c.LoadAssignment == nil || c.LoadAssignment.Len() != 1 ||
		c.LoadAssignment.Localities[0].Endpoints[0].Address.Host != "api.example.com" {
		t.Fatalf("load assignment %+v", c.LoadAssignment)
	}
	in, err := upstream.New(c, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Pick(lbContext(1)); err == nil {
		t.Error("unresolved DNS cluster picked a host")
	}

	c, err = upstream.Compile(g.cluster(t, "outbound|80||any.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "type", c.Type, upstream.OriginalDst)
	in, err = upstream.New(c, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Pick(lbContext(1)); err != upstream.ErrOriginalDst {
		t.Errorf("ORIGINAL_DST Pick: %v", err)
	}
	if in.Breakers(circuit.Default) == nil {
		t.Error("ORIGINAL_DST cluster without breakers")
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func lbContext(hash uint64) lb.PickContext { return lb.PickContext{Hash: hash, HasHash: true} }

func TestResolvedEndpoints(t *testing.T) {
	g := generate(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`, "")
	c, err := upstream.Compile(g.cluster(t, "outbound|443||api.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) []netip.Addr {
		if name != "api.example.com" {
			t.Errorf("lookup of %q", name)
		}
		return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	}
	eps := c.ResolvedEndpoints(lookup)
	in, err := upstream.New(c, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Update(eps); err != nil {
		t.Fatal(err)
	}
	hosts := in.Hosts()
	if len(hosts) != 2 || hosts[0].Address != "192.0.2.1:443" || hosts[1].Hostname != "api.example.com" {
		t.Errorf("hosts %+v", hosts)
	}
	if c.LoadAssignment.Localities[0].Endpoints[0].Address.Host != "api.example.com" {
		t.Error("ResolvedEndpoints modified the cluster")
	}
	logical := *c
	logical.Type = upstream.LogicalDNS
	if n := logical.ResolvedEndpoints(lookup).Len(); n != 1 {
		t.Errorf("LOGICAL_DNS: %d hosts, want the first address only", n)
	}
}
