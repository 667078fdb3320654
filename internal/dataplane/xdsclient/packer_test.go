package xdsclient

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
)

// TestPackerRoundTrip: every body comes back as packed, whatever came
// first (the dictionary), including empty, incompressible and bodies
// larger than the dictionary's window.
func TestPackerRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 50<<10)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	bodies := [][]byte{
		bytes.Repeat([]byte("outbound|9080||reviews.default.svc.cluster.local "), 1000), // the dictionary, > 32 KiB
		{},
		[]byte("x"),
		noise,
		bytes.Repeat([]byte("outbound|9080||ratings.default.svc.cluster.local "), 3),
	}
	var p packer
	packed := make([][]byte, len(bodies))
	for i, b := range bodies {
		var err error
		if packed[i], err = p.pack(b); err != nil {
			t.Fatalf("pack %d: %v", i, err)
		}
	}
	for i, b := range bodies {
		got, err := p.unpack(packed[i])
		if err != nil {
			t.Fatalf("unpack %d: %v", i, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("body %d: got %d bytes back, want %d", i, len(got), len(b))
		}
	}
}

// TestPackerSharesTheDictionary: similar resources of a type (clusters
// that differ in their names) are kept at a fraction of their size.
func TestPackerSharesTheDictionary(t *testing.T) {
	var p packer
	raw, kept := 0, 0
	for i := range 200 {
		name := fmt.Sprintf("outbound|9080||svc-%d.bench.svc.cluster.local", i)
		c := &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: name},
			AltStatName:          name + ";",
		}
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		packed, err := p.pack(b)
		if err != nil {
			t.Fatal(err)
		}
		raw, kept = raw+len(b), kept+len(packed)
	}
	t.Logf("kept %d of %d bytes", kept, raw)
	if kept*2 > raw {
		t.Errorf("200 similar clusters: %d bytes kept for %d serialized; want less than half", kept, raw)
	}
}

// BenchmarkPack: the cost of keeping one cluster-sized body compressed.
func BenchmarkPack(b *testing.B) {
	var p packer
	body := bytes.Repeat([]byte("outbound|9080||reviews.default.svc.cluster.local;spiffe://cluster.local/ns/default/sa/reviews "), 8)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.pack(body); err != nil {
			b.Fatal(err)
		}
	}
}
