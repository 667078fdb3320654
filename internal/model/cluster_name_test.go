package model

import "testing"

func TestClusterNameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  ClusterKey
		want string
	}{
		{"outbound", ClusterKey{Outbound, 9080, "", "reviews.bookinfo.svc.cluster.local"}, "outbound|9080||reviews.bookinfo.svc.cluster.local"},
		{"outbound subset", ClusterKey{Outbound, 9080, "v1", "reviews.bookinfo.svc.cluster.local"}, "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"},
		{"wildcard host", ClusterKey{Outbound, 443, "", "*.example.com"}, "outbound|443||*.example.com"},
		{"inbound without host", ClusterKey{Inbound, 9080, "", ""}, "inbound|9080||"},
		{"inbound with host", ClusterKey{Inbound, 8080, "", "reviews.bookinfo.svc.cluster.local"}, "inbound|8080||reviews.bookinfo.svc.cluster.local"},
		{"max port", ClusterKey{Outbound, 4294967295, "", "h"}, "outbound|4294967295||h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClusterName(tc.key.Direction, tc.key.Port, tc.key.Subset, tc.key.Host)
			if got != tc.want {
				t.Fatalf("ClusterName = %q, want %q", got, tc.want)
			}
			back, ok := ParseClusterName(got)
			if !ok || back != tc.key {
				t.Errorf("ParseClusterName(%q) = %+v, %v; want %+v", got, back, ok, tc.key)
			}
		})
	}
}

func TestParseClusterNameRejects(t *testing.T) {
	for _, name := range []string{
		"",
		"BlackHoleCluster",
		"PassthroughCluster",
		"InboundPassthroughCluster",
		"outbound|9080|v1",                  // three fields
		"sideways|9080||h",                  // unknown direction
		"Outbound|9080||h",                  // directions are lower case
		"outbound|0||h",                     // port 0
		"outbound|-1||h",                    // negative
		"outbound|http||h",                  // not a number
		"outbound|4294967296||h",            // beyond uint32
		"outbound||v1|h",                    // empty port
		"outbound_9080_v1_reviews.bookinfo", // Envoy stat-style name
	} {
		if k, ok := ParseClusterName(name); ok {
			t.Errorf("ParseClusterName(%q) = %+v, want rejection", name, k)
		}
	}
}

func TestParseClusterNameKeepsPipesInHost(t *testing.T) {
	k, ok := ParseClusterName("outbound|80|v1|odd|host")
	if !ok || k.Host != "odd|host" || k.Subset != "v1" {
		t.Errorf("got %+v, %v", k, ok)
	}
}
