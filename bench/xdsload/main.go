// Command xdsload measures the control plane under load: it writes a
// configuration of N services × M endpoints, starts `trellis discovery` on
// it as a separate process, connects P simulated proxies (ADS
// state-of-the-world clients that subscribe to CDS, EDS, LDS and RDS and ACK
// every response), then changes the configuration R times and reports the
// time from each change until every proxy has ACKed it (p50/p99/max), and the
// control plane's heap per connected proxy.
//
//	go build -o bin/trellis ./cmd/trellis
//	go run ./bench/xdsload -trellis bin/trellis -services 1000 -endpoints 5 -proxies 1000 -rounds 5
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/trellismesh/trellis/bench/internal/benchmesh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	endpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

type options struct {
	trellis   string
	services  int
	endpoints int
	proxies   int
	rounds    int
	debounce  time.Duration
	dir       string
}

func main() {
	var o options
	flag.StringVar(&o.trellis, "trellis", "bin/trellis", "path to the trellis binary")
	flag.IntVar(&o.services, "services", 1000, "number of services")
	flag.IntVar(&o.endpoints, "endpoints", 5, "endpoints per service")
	flag.IntVar(&o.proxies, "proxies", 1000, "simulated proxies")
	flag.IntVar(&o.rounds, "rounds", 5, "configuration changes to measure")
	flag.DurationVar(&o.debounce, "debounce", 100*time.Millisecond, "control plane push debounce")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "xdsload:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "xdsload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	if err := writeServices(o); err != nil {
		return err
	}
	if err := writeRoute(o, 0); err != nil {
		return err
	}
	xdsAddr, monAddr := freeAddr(), freeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, o.trellis, "discovery", "--config-dir", dir,
		"--xds-address", xdsAddr, "--monitoring-address", monAddr, "--secure-grpc-address", "-", "--debounce", o.debounce.String())
	// XDSLOAD_CP_GOGC sets the control plane's GOGC alone (the simulated
	// proxies keep the benchmark process's own setting).
	if v := os.Getenv("XDSLOAD_CP_GOGC"); v != "" {
		cmd.Env = append(os.Environ(), "GOGC="+v)
	}
	cmd.Stderr = io.Discard
	if os.Getenv("XDSLOAD_VERBOSE") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", o.trellis, err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if err := waitReady(monAddr, 60*time.Second); err != nil {
		return err
	}
	heap0, err := heapInuse(monAddr)
	if err != nil {
		return err
	}

	start := time.Now()
	fleet := newFleet(o.proxies)
	if err := fleet.connect(ctx, xdsAddr); err != nil {
		return err
	}
	if err := fleet.waitSynced(marker(0), 5*time.Minute); err != nil {
		return err
	}
	fmt.Printf("setup: %d services x %d endpoints, %d proxies connected and synced in %v\n",
		o.services, o.endpoints, o.proxies, time.Since(start).Round(time.Millisecond))
	fmt.Printf("bytes received per proxy (initial sync): %.1f KB\n", float64(fleet.bytes())/float64(o.proxies)/1e3)

	var all []time.Duration
	profDone := make(chan struct{})
	if path := os.Getenv("XDSLOAD_CPU_PROFILE"); path != "" {
		go func() {
			defer close(profDone)
			saveProfile(monAddr, "profile?seconds="+strconv.Itoa(o.rounds), path)
		}()
	} else {
		close(profDone)
	}
	for r := 1; r <= o.rounds; r++ {
		time.Sleep(300 * time.Millisecond)
		changed := time.Now()
		if err := writeRoute(o, r); err != nil {
			return err
		}
		if err := fleet.waitSynced(marker(r), 60*time.Second); err != nil {
			return err
		}
		lat := fleet.latencies(marker(r), changed)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("round %d: config change to ACK over %d proxies: p50 %v p99 %v max %v\n",
			r, len(lat), pct(lat, 50), pct(lat, 99), lat[len(lat)-1])
		all = append(all, lat...)
	}
	<-profDone
	// Heap with the proxies connected, measured after the rounds: forcing
	// collections before them would make the first round pay for regrowing
	// the heap.
	heap1, err := heapInuse(monAddr)
	if err != nil {
		return err
	}
	fmt.Printf("control plane heap in use: %.1f MB without proxies, %.1f MB with %d; %.1f KB per connected proxy\n",
		float64(heap0)/1e6, float64(heap1)/1e6, o.proxies, float64(heap1-heap0)/float64(o.proxies)/1e3)
	if path := os.Getenv("XDSLOAD_HEAP_PROFILE"); path != "" {
		saveProfile(monAddr, "heap", path)
	}
	cancel()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	fmt.Printf("all rounds: p50 %v p99 %v max %v (includes the %v file watch debounce and the %v push debounce)\n",
		pct(all, 50), pct(all, 99), all[len(all)-1], 100*time.Millisecond, o.debounce)
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	if i > 0 {
		i--
	}
	return d[i].Round(time.Millisecond)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeServices(o options) error {
	return os.WriteFile(filepath.Join(o.dir, "services.yaml"), []byte(benchmesh.Services(o.services, o.endpoints)), 0o644)
}

// marker is the header value that identifies configuration round r in RDS.
func marker(r int) string { return "round-" + strconv.Itoa(r) }

// writeRoute changes a VirtualService every proxy sees (its route carries a
// response header naming the round), atomically.
func writeRoute(o options, r int) error {
	content := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-0
  namespace: bench
spec:
  hosts: [svc-0.bench.svc.cluster.local]
  http:
  - headers:
      response:
        set:
          x-round: %s
    route:
    - destination: {host: svc-0.bench.svc.cluster.local}
`, marker(r))
	tmp := filepath.Join(o.dir, ".route.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(o.dir, "route.yaml"))
}

func waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("control plane not ready after %v", timeout)
}

// heapInuse forces a GC in the control plane (pprof heap ?gc=1) and reads
// go_memstats_heap_inuse_bytes.
func heapInuse(addr string) (uint64, error) {
	// Two collections: sync.Pool victim caches (gRPC's buffer pools) only
	// empty on the second.
	for i := 0; i < 2; i++ {
		if resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return uint64(f), err
		}
	}
	return 0, fmt.Errorf("go_memstats_heap_inuse_bytes not in /metrics")
}

// fleet is the set of simulated proxies.
type fleet struct {
	proxies []*proxy
}

type proxy struct {
	id string
	mu sync.Mutex
	// seen[marker] is when the proxy ACKed an RDS response containing it.
	seen     map[string]time.Time
	received int
}

func newFleet(n int) *fleet {
	f := &fleet{}
	for i := 0; i < n; i++ {
		f.proxies = append(f.proxies, &proxy{
			id:   fmt.Sprintf("sidecar~10.200.%d.%d~load-%d.bench~bench.svc.cluster.local", i/256, i%256, i),
			seen: map[string]time.Time{},
		})
	}
	return f
}

func (f *fleet) connect(ctx context.Context, addr string) error {
	for _, p := range f.proxies {
		// Large HTTP/2 windows, as Envoy uses for its xDS stream (its default
		// initial stream window is 256 MiB): a 0.5 MB response should not
		// wait on WINDOW_UPDATE round trips.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
			grpc.WithInitialWindowSize(16<<20), grpc.WithInitialConnWindowSize(16<<20))
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			if err := p.run(ctx, conn); err != nil && ctx.Err() == nil && status.Code(err) != codes.Canceled {
				fmt.Fprintf(os.Stderr, "proxy %s: %v\n", p.id, err)
			}
		}()
	}
	return nil
}

func (f *fleet) waitSynced(m string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n := 0
		for _, p := range f.proxies {
			p.mu.Lock()
			if _, ok := p.seen[m]; ok {
				n++
			}
			p.mu.Unlock()
		}
		if n == len(f.proxies) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("not every proxy received %s within %v", m, timeout)
}

func (f *fleet) latencies(m string, since time.Time) []time.Duration {
	var out []time.Duration
	for _, p := range f.proxies {
		p.mu.Lock()
		out = append(out, p.seen[m].Sub(since))
		p.mu.Unlock()
	}
	return out
}

func (f *fleet) bytes() int {
	n := 0
	for _, p := range f.proxies {
		p.mu.Lock()
		n += p.received
		p.mu.Unlock()
	}
	return n
}

// run speaks ADS state of the world: CDS and LDS wildcard, EDS for every
// cluster, RDS for every route name; every response is ACKed.
func (p *proxy) run(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	meta, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "bench"})
	node := &core.Node{Id: p.id, Metadata: meta}
	send := func(typeURL, version, nonce string, names []string) error {
		return stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names})
	}
	if err := send(clusterType, "", "", nil); err != nil {
		return err
	}
	if err := send(listenerType, "", "", nil); err != nil {
		return err
	}
	subscribed := map[string]string{} // type → sorted names joined
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		p.mu.Lock()
		for _, r := range resp.GetResources() {
			p.received += len(r.GetValue())
		}
		p.mu.Unlock()
		var follow []string
		var followType string
		switch resp.GetTypeUrl() {
		case clusterType:
			followType, follow = endpointType, clusterNames(resp)
		case listenerType:
			followType, follow = routeType, routeNames(resp)
		}
		if err := send(resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(), subscribedNames(subscribed, resp.GetTypeUrl())); err != nil {
			return err
		}
		if resp.GetTypeUrl() == routeType {
			now := time.Now()
			p.mu.Lock()
			for _, r := range resp.GetResources() {
				if m := findMarker(r.GetValue()); m != "" {
					if _, ok := p.seen[m]; !ok {
						p.seen[m] = now
					}
				}
			}
			p.mu.Unlock()
		}
		if followType != "" {
			sort.Strings(follow)
			key := strings.Join(follow, ",")
			if subscribed[followType] != key {
				subscribed[followType] = key
				if err := send(followType, "", "", follow); err != nil {
					return err
				}
			}
		}
	}
}

func subscribedNames(sub map[string]string, typeURL string) []string {
	if s, ok := sub[typeURL]; ok && s != "" {
		return strings.Split(s, ",")
	}
	return nil
}

// saveProfile fetches /debug/pprof/<which> from the control plane into path.
func saveProfile(addr, which, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + which)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}
