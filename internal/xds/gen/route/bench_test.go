package route

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// meshOf1000 is 1000 HTTP services on port 8080 across 10 namespaces; every
// fifth has a VirtualService (a header match and an 80/20 split) and a
// DestinationRule hashing on a header.
func meshOf1000() ([]config.Config, []*model.Service) {
	var cfgs []config.Config
	var svcs []*model.Service
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		ns := fmt.Sprintf("ns%d", i%10)
		host := fmt.Sprintf("svc%d.%s.svc.cluster.local", i, ns)
		svcs = append(svcs, &model.Service{
			Hostname: host, Namespace: ns,
			Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i/65536, (i/256)%256, i%256)},
			Ports:     []model.Port{{Name: "http", Number: 8080, Protocol: model.ProtocolHTTP}},
		})
		if i%5 != 0 {
			continue
		}
		created := base.Add(time.Duration(i) * time.Second)
		cfgs = append(cfgs, config.Config{
			Meta: config.Meta{Kind: schema.VirtualService, Name: fmt.Sprintf("vs%d", i), Namespace: ns, CreationTimestamp: created},
			Spec: &networking.VirtualService{Hosts: []string{host}, Http: []*networking.HTTPRoute{
				{
					Name: "canary",
					Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{
						"x-canary": {MatchType: &networking.StringMatch_Exact{Exact: "1"}},
					}}},
					Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: host, Subset: "v2"}}},
				},
				{
					Name: "split",
					Route: []*networking.HTTPRouteDestination{
						{Destination: &networking.Destination{Host: host, Subset: "v1"}, Weight: 80},
						{Destination: &networking.Destination{Host: host, Subset: "v2"}, Weight: 20},
					},
				},
			}},
		}, config.Config{
			Meta: config.Meta{Kind: schema.DestinationRule, Name: fmt.Sprintf("dr%d", i), Namespace: ns, CreationTimestamp: created},
			Spec: &networking.DestinationRule{Host: host, TrafficPolicy: &networking.TrafficPolicy{
				LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{
					ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
						HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"},
					},
				}},
			}},
		})
	}
	return cfgs, svcs
}

func BenchmarkRoutes1000(b *testing.B) {
	cfgs, svcs := meshOf1000()
	sc := fixture{namespace: "ns0"}.scopeWith(cfgs, svcs)
	names := []string{"8080"}
	rcs := Build(sc, names)
	if n := len(rcs[0].GetVirtualHosts()); n != 1001 {
		b.Fatalf("got %d virtual hosts, want 1000 + catch-all", n)
	}
	size := proto.Size(rcs[0])
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Build(sc, names)
	}
	b.ReportMetric(float64(size), "config-bytes")
}
