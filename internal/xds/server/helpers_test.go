package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

const waitFor = 10 * time.Second

// world is the content a fake generator serves for one snapshot version:
// type URL → resource name → content (anything; changing it changes the
// resource's version).
type world map[string]map[string]string

// fakeGen serves the world registered for the snapshot's version and counts
// calls per proxy and type.
type fakeGen struct {
	mu     sync.Mutex
	worlds map[string]world
	calls  map[string]int // proxy ID + " " + short type
	cache  map[string]xds.Resource
	// hook runs at the start of every call (outside the lock).
	hook func(p *model.Proxy, typeURL string) error
}

func newFakeGen() *fakeGen {
	return &fakeGen{worlds: map[string]world{}, calls: map[string]int{}, cache: map[string]xds.Resource{}}
}

func (g *fakeGen) set(version string, w world) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.worlds[version] = w
}

func (g *fakeGen) count(proxyID, typeURL string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[proxyID+" "+xds.ShortName(typeURL)]
}

func (g *fakeGen) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c
	}
	return n
}

func (g *fakeGen) Generate(snap *model.Snapshot, p *model.Proxy, typeURL string, names []string) ([]xds.Resource, error) {
	if g.hook != nil {
		if err := g.hook(p, typeURL); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls[p.ID+" "+xds.ShortName(typeURL)]++
	w, ok := g.worlds[snap.Version]
	if !ok {
		return nil, fmt.Errorf("no world for snapshot %q", snap.Version)
	}
	all := w[typeURL]
	if names == nil {
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var out []xds.Resource
	for _, n := range names {
		content, ok := all[n]
		if !ok {
			continue
		}
		key := typeURL + "\x00" + n + "\x00" + content
		r, ok := g.cache[key]
		if !ok {
			var err error
			r, err = xds.NewResource(n, message(typeURL, n, content))
			if err != nil {
				return nil, err
			}
			g.cache[key] = r
		}
		out = append(out, r)
	}
	return out, nil
}

// message builds a real Envoy message of the type carrying content.
func message(typeURL, name, content string) proto.Message {
	switch typeURL {
	case xds.ClusterType:
		return &cluster.Cluster{Name: name, AltStatName: content}
	case xds.EndpointType:
		return &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{
			{Locality: &core.Locality{Region: content}}}}
	case xds.ListenerType:
		return &listener.Listener{Name: name, StatPrefix: content}
	case xds.RouteType:
		return &route.RouteConfiguration{Name: name, InternalOnlyHeaders: []string{content}}
	}
	panic("unknown type " + typeURL)
}

// snapshot builds a snapshot with the given version and services.
func snapshot(version string, svcs ...*model.Service) *model.Snapshot {
	return model.NewSnapshot(model.SnapshotInput{Version: version, Services: svcs})
}

// harness runs a Server on a bufconn gRPC server.
type harness struct {
	t   *testing.T
	srv *Server
	gen *fakeGen
	reg *prometheus.Registry
	lis *bufconn.Listener
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, gen: newFakeGen(), reg: prometheus.NewRegistry(), lis: bufconn.Listen(1 << 20)}
	if cfg.Generator == nil {
		cfg.Generator = h.gen
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 5 * time.Millisecond
	}
	if cfg.DebounceMax == 0 {
		cfg.DebounceMax = time.Second
	}
	cfg.MetricsRegistry = h.reg
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	g := grpc.NewServer()
	srv.Register(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(h.lis)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
		g.Stop()
		<-served
	})
	return h
}

func (h *harness) dial() *grpc.ClientConn {
	h.t.Helper()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// update publishes a snapshot with the given world.
func (h *harness) update(version string, w world, req PushRequest, svcs ...*model.Service) {
	h.gen.set(version, w)
	h.srv.Update(snapshot(version, svcs...), req)
}

func node(id string) *core.Node { return &core.Node{Id: id} }

func sidecarID(ip, pod, ns string) string {
	return "sidecar~" + ip + "~" + pod + "." + ns + "~" + ns + ".svc.cluster.local"
}

// client is a test proxy speaking ADS through the generated client stubs.
type client[Req, Resp any] struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[Req, Resp]
	resps  chan *Resp
	done   chan error // receives the stream's end
	cancel context.CancelFunc
}

type sotwClient = client[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
type deltaClient = client[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]

func startClient[Req, Resp any](t *testing.T, open func(ctx context.Context) (grpc.BidiStreamingClient[Req, Resp], error)) *client[Req, Resp] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := open(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &client[Req, Resp]{t: t, stream: stream, resps: make(chan *Resp, 64), done: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.done <- err
				close(c.resps)
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (h *harness) sotw() *sotwClient {
	ads := discovery.NewAggregatedDiscoveryServiceClient(h.dial())
	return startClient(h.t, func(ctx context.Context) (grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], error) {
		return ads.StreamAggregatedResources(ctx)
	})
}

func (h *harness) delta() *deltaClient {
	ads := discovery.NewAggregatedDiscoveryServiceClient(h.dial())
	return startClient(h.t, func(ctx context.Context) (grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse], error) {
		return ads.DeltaAggregatedResources(ctx)
	})
}

// close ends the stream and waits for its reader.
func (c *client[Req, Resp]) close() {
	c.cancel()
	for range c.resps {
	}
}

func (c *client[Req, Resp]) send(r *Req) {
	c.t.Helper()
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv waits for the next response.
func (c *client[Req, Resp]) recv() *Resp {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatalf("stream ended: %v", <-c.done)
		}
		return r
	case <-time.After(waitFor):
		c.t.Fatal("no response in time")
	}
	return nil
}

// end waits for the stream to end and returns its error.
func (c *client[Req, Resp]) end() error {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-c.resps:
			if !ok {
				return <-c.done
			}
		case <-deadline:
			c.t.Fatal("stream did not end in time")
		}
	}
}

// names returns the resource names of a sotw response.
func names(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch v := m.(type) {
		case *endpoint.ClusterLoadAssignment:
			out = append(out, v.GetClusterName())
		case xds.Named:
			out = append(out, v.GetName())
		}
	}
	return out
}

// content returns name=content pairs of a sotw response.
func contents(t *testing.T, r *discovery.DiscoveryResponse) string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch v := m.(type) {
		case *cluster.Cluster:
			out = append(out, v.GetName()+"="+v.GetAltStatName())
		case *endpoint.ClusterLoadAssignment:
			out = append(out, v.GetClusterName()+"="+v.GetEndpoints()[0].GetLocality().GetRegion())
		case *listener.Listener:
			out = append(out, v.GetName()+"="+v.GetStatPrefix())
		case *route.RouteConfiguration:
			out = append(out, v.GetName()+"="+v.GetInternalOnlyHeaders()[0])
		}
	}
	return strings.Join(out, ",")
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	slices.Sort(out)
	return out
}

// ack builds the sotw ACK of a response.
func ack(r *discovery.DiscoveryResponse, names ...string) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(), ResourceNames: names}
}

// metric returns the value of a counter or gauge (summed over label sets
// matching labels), or the sample count of a histogram.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var errBoom = errors.New("boom")

// fakeStream is an in-memory gRPC server stream for driving a handler
// without a transport. Only Recv, Send and Context are used by the server.
type fakeStream[Req, Resp any] struct {
	grpc.ServerStream // nil: other methods are not called
	ctx               context.Context
	cancel            context.CancelFunc
	in                chan *Req
	out               chan *Resp
}

func newFakeStream[Req, Resp any]() *fakeStream[Req, Resp] {
	ctx, cancel := context.WithCancel(context.Background())
	return &fakeStream[Req, Resp]{ctx: ctx, cancel: cancel, in: make(chan *Req), out: make(chan *Resp, 8)}
}

func (f *fakeStream[Req, Resp]) Context() context.Context { return f.ctx }

func (f *fakeStream[Req, Resp]) Recv() (*Req, error) {
	select {
	case r := <-f.in:
		return r, nil
	case <-f.ctx.Done():
		return nil, io.EOF
	}
}

func (f *fakeStream[Req, Resp]) Send(r *Resp) error {
	select {
	case f.out <- r:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

func (f *fakeStream[Req, Resp]) close() { f.cancel() }

func statusProto(msg string) *rpcstatus.Status { return &rpcstatus.Status{Code: 3, Message: msg} }
