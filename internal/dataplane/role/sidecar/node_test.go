package sidecar

import (
	"testing"

	"github.com/trellismesh/trellis/internal/model"
)

// TestNodeMetricsAddress checks that METRICS_ADDRESS names an address the
// control plane can reach and accepts (model.ParseNode).
func TestNodeMetricsAddress(t *testing.T) {
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"explicit", "127.0.0.10:15020", "127.0.0.10:15020"},
		{"every interface", ":15020", "127.0.0.10:15020"},
		{"wildcard IPv4", "0.0.0.0:15020", "127.0.0.10:15020"},
		{"disabled", "-", ""},
		{"unset", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NodeConfig{IP: "127.0.0.10", PodName: "p", Namespace: "ns", MetricsAddress: tc.addr}.Node()
			if err != nil {
				t.Fatal(err)
			}
			if got := n.GetMetadata().GetFields()["METRICS_ADDRESS"].GetStringValue(); got != tc.want {
				t.Errorf("METRICS_ADDRESS = %q, want %q", got, tc.want)
			}
			p, err := model.ParseNode(n)
			if err != nil {
				t.Fatalf("the control plane rejects the node: %v", err)
			}
			if p.MetricsAddress != tc.want {
				t.Errorf("parsed MetricsAddress = %q, want %q", p.MetricsAddress, tc.want)
			}
		})
	}
	if _, err := (NodeConfig{IP: "127.0.0.10", PodName: "p", Namespace: "ns", MetricsAddress: "15020"}).Node(); err == nil {
		t.Error("metrics address without a port: want an error")
	}
}
