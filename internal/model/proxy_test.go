package model

import (
	"reflect"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// node builds an xDS node; md values may be strings, numbers, bools or
// map[string]any (nested structs).
func node(id string, md map[string]any) *core.Node {
	n := &core.Node{Id: id}
	if md != nil {
		s, err := structpb.NewStruct(md)
		if err != nil {
			panic(err)
		}
		n.Metadata = s
	}
	return n
}

func TestParseNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *core.Node
		want Proxy // Metadata is checked only when set here
	}{
		{
			name: "istio sidecar id",
			node: node("sidecar~10.0.0.1~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local", nil),
			want: Proxy{
				ID:          "sidecar~10.0.0.1~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local",
				Type:        SidecarProxy,
				IPAddresses: []string{"10.0.0.1"},
				Name:        "reviews-v1-abc.bookinfo",
				Namespace:   "bookinfo",
				DNSDomain:   "bookinfo.svc.cluster.local",
				Labels:      map[string]string{},
			},
		},
		{
			name: "router",
			node: node("router~10.0.0.2~istio-ingressgateway-7d4f.istio-system~istio-system.svc.cluster.local", nil),
			want: Proxy{
				ID:          "router~10.0.0.2~istio-ingressgateway-7d4f.istio-system~istio-system.svc.cluster.local",
				Type:        Router,
				IPAddresses: []string{"10.0.0.2"},
				Name:        "istio-ingressgateway-7d4f.istio-system",
				Namespace:   "istio-system",
				DNSDomain:   "istio-system.svc.cluster.local",
				Labels:      map[string]string{},
			},
		},
		{
			name: "waypoint",
			node: node("waypoint~10.0.0.3~waypoint-0.app~app.svc.cluster.local", nil),
			want: Proxy{
				ID: "waypoint~10.0.0.3~waypoint-0.app~app.svc.cluster.local", Type: Waypoint,
				IPAddresses: []string{"10.0.0.3"}, Name: "waypoint-0.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "ztunnel",
			node: node("ztunnel~10.0.0.4~ztunnel-x.istio-system~istio-system.svc.cluster.local", nil),
			want: Proxy{
				ID: "ztunnel~10.0.0.4~ztunnel-x.istio-system~istio-system.svc.cluster.local", Type: Ztunnel,
				IPAddresses: []string{"10.0.0.4"}, Name: "ztunnel-x.istio-system", Namespace: "istio-system",
				DNSDomain: "istio-system.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "metadata NAMESPACE overrides the id",
			node: node("sidecar~10.0.0.1~pod.bookinfo~bookinfo.svc.cluster.local", map[string]any{"NAMESPACE": "config-ns"}),
			want: Proxy{
				ID: "sidecar~10.0.0.1~pod.bookinfo~bookinfo.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1"}, Name: "pod.bookinfo", Namespace: "config-ns",
				DNSDomain: "bookinfo.svc.cluster.local", Labels: map[string]string{},
				Metadata: map[string]string{"NAMESPACE": "config-ns"},
			},
		},
		{
			name: "namespace from the DNS domain when the name has none",
			node: node("sidecar~10.0.0.9~vm-1~vms.svc.cluster.local", nil),
			want: Proxy{
				ID: "sidecar~10.0.0.9~vm-1~vms.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.9"}, Name: "vm-1", Namespace: "vms",
				DNSDomain: "vms.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "pod name with dots: the namespace is the last label",
			node: node("sidecar~10.0.0.1~web.v2.shop~shop.svc.cluster.local", nil),
			want: Proxy{
				ID: "sidecar~10.0.0.1~web.v2.shop~shop.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1"}, Name: "web.v2.shop", Namespace: "shop",
				DNSDomain: "shop.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "empty IP field",
			node: node("sidecar~~pod.app~app.svc.cluster.local", nil),
			want: Proxy{
				ID: "sidecar~~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				Name: "pod.app", Namespace: "app", DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "ipv6 is canonicalised",
			node: node("sidecar~fd00:0:0::1~pod.app~app.svc.cluster.local", nil),
			want: Proxy{
				ID: "sidecar~fd00:0:0::1~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"fd00::1"}, Name: "pod.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "INSTANCE_IPS merged, deduplicated, sorted",
			node: node("sidecar~10.0.0.2~pod.app~app.svc.cluster.local", map[string]any{
				"INSTANCE_IPS": " 10.0.0.2, 10.0.0.1,fd00::1,,10.0.0.1 ",
			}),
			want: Proxy{
				ID: "sidecar~10.0.0.2~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1", "10.0.0.2", "fd00::1"}, Name: "pod.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
			},
		},
		{
			name: "LABELS struct and identity metadata",
			node: node("sidecar~10.0.0.1~reviews-v2-x.bookinfo~bookinfo.svc.cluster.local", map[string]any{
				"LABELS":          map[string]any{"app": "reviews", "version": "v2", "replicas": 3.0},
				"SERVICE_ACCOUNT": "bookinfo-reviews",
				"CLUSTER_ID":      "Kubernetes",
				"NETWORK":         "net-1",
				"WORKLOAD_NAME":   "reviews-v2",
				"GENERATOR":       "grpc",
				"ISTIO_VERSION":   "1.26.0",
				"ENABLED":         true, // not a string: dropped from Metadata
			}),
			want: Proxy{
				ID: "sidecar~10.0.0.1~reviews-v2-x.bookinfo~bookinfo.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1"}, Name: "reviews-v2-x.bookinfo", Namespace: "bookinfo",
				DNSDomain: "bookinfo.svc.cluster.local",
				// Non-string label values read as "".
				Labels:         map[string]string{"app": "reviews", "version": "v2", "replicas": ""},
				ServiceAccount: "bookinfo-reviews", ClusterID: "Kubernetes", Network: "net-1",
				WorkloadName: "reviews-v2", Generator: "grpc",
				Metadata: map[string]string{
					"SERVICE_ACCOUNT": "bookinfo-reviews", "CLUSTER_ID": "Kubernetes", "NETWORK": "net-1",
					"WORKLOAD_NAME": "reviews-v2", "GENERATOR": "grpc", "ISTIO_VERSION": "1.26.0",
				},
			},
		},
		{
			name: "metrics address",
			node: node("sidecar~127.0.0.10~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": "127.0.0.10:15020"}),
			want: Proxy{
				ID: "sidecar~127.0.0.10~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"127.0.0.10"}, Name: "pod.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
				MetricsAddress: "127.0.0.10:15020",
			},
		},
		{
			name: "metrics address on every interface",
			node: node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": ":15020"}),
			want: Proxy{
				ID: "sidecar~10.0.0.1~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1"}, Name: "pod.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
				MetricsAddress: "10.0.0.1:15020",
			},
		},
		{
			name: "locality",
			node: func() *core.Node {
				n := node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", nil)
				n.Locality = &core.Locality{Region: "us-east1", Zone: "us-east1-b", SubZone: "rack-7"}
				return n
			}(),
			want: Proxy{
				ID: "sidecar~10.0.0.1~pod.app~app.svc.cluster.local", Type: SidecarProxy,
				IPAddresses: []string{"10.0.0.1"}, Name: "pod.app", Namespace: "app",
				DNSDomain: "app.svc.cluster.local", Labels: map[string]string{},
				Locality: "us-east1/us-east1-b/rack-7",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNode(tc.node)
			if err != nil {
				t.Fatalf("ParseNode: %v", err)
			}
			if tc.want.Metadata == nil {
				got.Metadata = nil
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ParseNode:\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestParseNodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *core.Node
		want string // substring of the error
	}{
		{"nil node", nil, "no node"},
		{"empty id", node("", nil), "want 4 fields"},
		{"three fields", node("sidecar~10.0.0.1~pod.app", nil), "got 3"},
		{"five fields", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local~extra", nil), "got 5"},
		{"unknown type", node("gateway~10.0.0.1~pod.app~app.svc.cluster.local", nil), "unknown proxy type"},
		{"bad IP", node("sidecar~10.0.0.300~pod.app~app.svc.cluster.local", nil), "invalid IP"},
		{"hostname for IP", node("sidecar~pod~pod.app~app.svc.cluster.local", nil), "invalid IP"},
		{"bad INSTANCE_IPS", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"INSTANCE_IPS": "10.0.0.1,nope"}), "INSTANCE_IPS"},
		{"METRICS_ADDRESS without port", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": "10.0.0.1"}), "METRICS_ADDRESS"},
		{"METRICS_ADDRESS port 0", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": "10.0.0.1:0"}), "invalid port"},
		{"METRICS_ADDRESS host name", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": "metrics.example:15020"}), "not an IP address"},
		{"METRICS_ADDRESS elsewhere", node("sidecar~10.0.0.1~pod.app~app.svc.cluster.local", map[string]any{"METRICS_ADDRESS": "10.9.9.9:15020"}), "not one of the proxy's addresses"},
		{"no namespace anywhere", node("sidecar~10.0.0.1~pod~localdomain", nil), "cannot tell the namespace"},
		{"no namespace, empty domain", node("sidecar~10.0.0.1~pod~", nil), "cannot tell the namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseNode(tc.node)
			if err == nil {
				t.Fatalf("ParseNode = %+v, want error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLocality(t *testing.T) {
	for _, tc := range []struct {
		region, zone, subzone, want string
	}{
		{"us-east1", "us-east1-b", "rack-7", "us-east1/us-east1-b/rack-7"},
		{"us-east1", "us-east1-b", "", "us-east1/us-east1-b"},
		{"us-east1", "", "", "us-east1"},
		{"us-east1", "", "rack-7", "us-east1//rack-7"},
		{"", "zone-a", "", "/zone-a"},
		{"", "", "", ""},
	} {
		got := LocalityString(tc.region, tc.zone, tc.subzone)
		if got != tc.want {
			t.Errorf("LocalityString(%q, %q, %q) = %q, want %q", tc.region, tc.zone, tc.subzone, got, tc.want)
		}
		r, z, s := SplitLocality(got)
		if r != tc.region || z != tc.zone || s != tc.subzone {
			t.Errorf("SplitLocality(%q) = %q, %q, %q; want %q, %q, %q", got, r, z, s, tc.region, tc.zone, tc.subzone)
		}
	}
	// A subzone may itself contain slashes.
	if r, z, s := SplitLocality("r/z/s/t"); r != "r" || z != "z" || s != "s/t" {
		t.Errorf("SplitLocality(r/z/s/t) = %q, %q, %q", r, z, s)
	}
}

func TestProxyIsGRPC(t *testing.T) {
	if (&Proxy{Generator: GeneratorGRPC}).IsGRPC() != true || (&Proxy{}).IsGRPC() != false {
		t.Error("IsGRPC must follow the GENERATOR metadata")
	}
}
