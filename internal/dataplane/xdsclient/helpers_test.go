package xdsclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
)

const waitFor = 20 * time.Second

// sidecarNode is the node of a sidecar in namespace default, built as the
// proxy's caller would.
func sidecarNode(ip string) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":    "default",
		"INSTANCE_IPS": ip,
		"LABELS":       map[string]any{"app": "productpage", "version": "v1"},
	})
	if err != nil {
		panic(err)
	}
	return &corev3.Node{
		Id:       fmt.Sprintf("sidecar~%s~productpage-0.default~default.svc.cluster.local", ip),
		Cluster:  "productpage.default",
		Metadata: md,
	}
}

// applyCall is one Consumer.Apply call.
type applyCall struct {
	typeURL string
	names   []string
}

// recorder is a Consumer that records calls and the current state.
type recorder struct {
	mu     sync.Mutex
	calls  []applyCall
	state  map[string]map[string]proto.Message
	reject func(typeURL, name string, m proto.Message) error
}

func newRecorder() *recorder {
	return &recorder{state: map[string]map[string]proto.Message{}}
}

// Apply decodes the whole set, so that tests can look at the messages.
func (r *recorder) Apply(set *xdsclient.Set) map[string]error {
	typeURL := set.TypeURL()
	res := make(map[string]proto.Message, set.Len())
	for _, name := range set.Names() {
		m, err := set.Msg(name)
		if err != nil {
			return map[string]error{name: err}
		}
		res[name] = m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs map[string]error
	if r.reject != nil {
		for name, m := range res {
			if err := r.reject(typeURL, name, m); err != nil {
				if errs == nil {
					errs = map[string]error{}
				}
				errs[name] = err
			}
		}
	}
	r.calls = append(r.calls, applyCall{typeURL: typeURL, names: slices.Sorted(maps.Keys(res))})
	if errs == nil {
		r.state[typeURL] = res
	}
	return errs
}

func (r *recorder) setReject(f func(typeURL, name string, m proto.Message) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject = f
}

func (r *recorder) get(typeURL, name string) (proto.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.state[typeURL][name]
	return m, ok
}

func (r *recorder) names(typeURL string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.state[typeURL]))
}

func (r *recorder) history() []applyCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// resources returns the client's decoded resources of a type.
func resources(t *testing.T, c *xdsclient.Client, typeURL string) map[string]proto.Message {
	t.Helper()
	res, err := c.Resources(typeURL)
	if err != nil {
		t.Fatalf("Resources(%s): %v", typeURL, err)
	}
	return res
}

// run starts c.Run and stops it when the test ends, checking it returned nil.
func run(t *testing.T, c *xdsclient.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Run did not return within %v of cancel", waitFor)
		}
	})
}

// testLogger sends the client's log to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eventually polls cond until it returns nil, failing after waitFor.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, waitFor, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeADS is a small ADS server for protocol details the real control
// plane cannot show: it records requests and lets the test answer them.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	addr string
	// deltaReqs receives every delta request with the stream's index.
	deltaReqs chan streamReq[discoveryv3.DeltaDiscoveryRequest]
	sotwReqs  chan streamReq[discoveryv3.DiscoveryRequest]
	// deltaResps and sotwResps: responses to send on the current stream; a
	// nil response ends the stream with an error.
	deltaResps chan *discoveryv3.DeltaDiscoveryResponse
	sotwResps  chan *discoveryv3.DiscoveryResponse

	mu      sync.Mutex
	streams int
}

type streamReq[T any] struct {
	stream int
	req    *T
}

// startFakeADS serves a fakeADS on a loopback port. With sotwOnly, the
// delta method is left unimplemented.
func startFakeADS(t *testing.T, sotwOnly bool) *fakeADS {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeADS{
		addr:       l.Addr().String(),
		deltaReqs:  make(chan streamReq[discoveryv3.DeltaDiscoveryRequest], 100),
		sotwReqs:   make(chan streamReq[discoveryv3.DiscoveryRequest], 100),
		deltaResps: make(chan *discoveryv3.DeltaDiscoveryResponse, 100),
		sotwResps:  make(chan *discoveryv3.DiscoveryResponse, 100),
	}
	s := grpc.NewServer()
	if sotwOnly {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, sotwOnlyADS{f})
	} else {
		discoveryv3.RegisterAggregatedDiscoveryServiceServer(s, f)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(l) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return f
}

// sotwOnlyADS serves only StreamAggregatedResources: delta is answered
// with Unimplemented by the embedded default.
type sotwOnlyADS struct{ f *fakeADS }

func (s sotwOnlyADS) StreamAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	return s.f.StreamAggregatedResources(stream)
}

func (s sotwOnlyADS) DeltaAggregatedResources(grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	return discoveryv3.UnimplementedAggregatedDiscoveryServiceServer{}.DeltaAggregatedResources(nil)
}

func (f *fakeADS) next() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams++
	return f.streams
}

func (f *fakeADS) DeltaAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	return serveFake(stream, f.next(), f.deltaReqs, f.deltaResps)
}

func (f *fakeADS) StreamAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	return serveFake(stream, f.next(), f.sotwReqs, f.sotwResps)
}

func serveFake[Req, Resp any](stream grpc.BidiStreamingServer[Req, Resp], n int, reqs chan streamReq[Req], resps chan *Resp) error {
	ctx := stream.Context()
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- streamReq[Req]{stream: n, req: r}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case r := <-resps:
			if r == nil {
				return fmt.Errorf("fake server: stream %d ended by the test", n)
			}
			if err := stream.Send(r); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recvReq waits for the next request on ch.
func recvReq[T any](t *testing.T, ch chan streamReq[T]) streamReq[T] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatalf("no request within %v", waitFor)
		return streamReq[T]{}
	}
}
