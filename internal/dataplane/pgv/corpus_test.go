package pgv

import (
	"sort"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	"github.com/trellismesh/trellis/internal/xds/gen/listener"
	"github.com/trellismesh/trellis/internal/xds/gen/route"
)

// corpus generates, with the control plane's generators, the xDS
// resources of a few Bookinfo sidecars (Istio's samples: subsets, mTLS,
// fault injection, retries, weighted routes, egress) and adds every
// message packed in an Any inside them (filters, transport sockets, ...).
func corpus(t testing.TB) []proto.Message {
	t.Helper()
	cfgs := gentest.Files(t,
		gentest.Bookinfo(),
		gentest.Sample(t, "bookinfo/networking/egress-rule-google-apis.yaml"),
		gentest.Sample(t, "bookinfo/networking/destination-rule-all-mtls.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-ratings-test-delay.yaml"),
		gentest.Sample(t, "bookinfo/networking/fault-injection-details-v1.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-80-20.yaml"),
	)
	snap := gentest.NewSnapshot(nil, cfgs)
	var out []proto.Message
	proxies := [][3]string{
		{"10.0.0.10", "default", "productpage"},
		{"10.0.0.20", "default", "reviews"},
	}
	for _, p := range proxies {
		proxy := gentest.Proxy(p[0], p[1], map[string]string{"app": p[2], "version": "v1"})
		sc := snap.Scope(proxy)
		var edsNames []string
		for _, c := range cluster.Build(sc) {
			out = append(out, c)
			if c.GetType() == clusterv3.Cluster_EDS {
				edsNames = append(edsNames, c.GetName())
			}
		}
		for _, cla := range endpoint.Build(sc, edsNames) {
			out = append(out, cla)
		}
		routeNames := map[string]bool{}
		for _, l := range listener.Build(sc) {
			out = append(out, l)
		}
		out = withPacked(t, out)
		for _, m := range out {
			if h, ok := m.(*hcmv3.HttpConnectionManager); ok && h.GetRds().GetRouteConfigName() != "" {
				routeNames[h.GetRds().GetRouteConfigName()] = true
			}
		}
		var names []string
		for n := range routeNames {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, rc := range route.Build(sc, names) {
			out = append(out, rc)
		}
	}
	return withPacked(t, out)
}

// withPacked returns msgs followed by every message packed in an Any
// inside them, recursively, each once.
func withPacked(t testing.TB, msgs []proto.Message) []proto.Message {
	seen := map[string]bool{}
	var out []proto.Message
	var add func(m proto.Message)
	add = func(m proto.Message) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
		}
		key := string(m.ProtoReflect().Descriptor().FullName()) + "\x00" + string(b)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, m)
		walkMessages(m.ProtoReflect(), func(pm protoreflect.Message) {
			if a, ok := pm.Interface().(*anypb.Any); ok {
				inner, err := a.UnmarshalNew()
				if err != nil {
					t.Errorf("unpacking %s: %v (import its Go package in corpus_test.go)", a.GetTypeUrl(), err)
					return
				}
				add(inner)
			}
		})
	}
	for _, m := range msgs {
		add(m)
	}
	return out
}

// walkMessages calls fn on m and every message set inside it.
func walkMessages(m protoreflect.Message, fn func(protoreflect.Message)) {
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkMessages(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkMessages(mv.Message(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkMessages(v.Message(), fn)
		}
		return true
	})
}
