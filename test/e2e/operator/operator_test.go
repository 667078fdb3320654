package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/cli/proxystatus"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	"github.com/trellismesh/trellis/internal/xds/server"
	"github.com/trellismesh/trellis/test/framework"
)

const peerAuthDisable = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: DISABLE
`

const nackMessage = "listener 0.0.0.0_9080: filter chain rejected by test"

// mesh is a control plane with a sidecar for productpage-v1 and a NACKing
// ADS client for reviews-v1.
type mesh struct {
	cp    *framework.ControlPlane
	sc    *sidecar.Sidecar
	debug string // the control plane's monitoring address
	admin string // the sidecar's admin address
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	cp := framework.StartControlPlane(t, "")
	for name, path := range map[string]string{
		"bookinfo.yaml": gentest.Bookinfo(),
		"dr.yaml":       gentest.Sample(t, "bookinfo/networking/destination-rule-all-mtls.yaml"),
		"vs.yaml":       gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"),
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cp.WriteFile(t, name, string(b))
	}
	// Plaintext inbound: the sidecar does not terminate TLS yet, and the
	// test wants it to accept every type.
	cp.WriteFile(t, "peerauthentication.yaml", peerAuthDisable)
	framework.Eventually(t, 20*time.Second, func() error {
		if snap := cp.Snapshot(); snap == nil || len(snap.Services()) < 4 {
			return fmt.Errorf("bookinfo services not in the snapshot yet")
		}
		return nil
	})
	m := &mesh{cp: cp, debug: cp.MonitoringAddr().String()}

	node, err := sidecar.NodeConfig{IP: "10.0.0.1", PodName: "productpage-v1", Namespace: "default",
		Labels: map[string]string{"app": "productpage", "version": "v1"}}.Node()
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	ip := fmt.Sprintf("127.%d.%d.%d", 100+pid%100, (pid/100)%250+1, time.Now().Nanosecond()%250+2)
	m.sc, err = sidecar.New(sidecar.Config{
		XDSAddress: cp.XDSAddr().String(), Node: node, AdminAddress: "127.0.0.1:0",
		HealthAddress: "-", MetricsAddress: "-", BindAddress: ip,
		DrainDuration: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("sidecar did not stop")
		}
	})
	framework.Eventually(t, 20*time.Second, func() error {
		if !m.sc.Ready() {
			return fmt.Errorf("sidecar not ready: %+v", m.sc.Status())
		}
		a, ok := m.sc.Addr("admin")
		if !ok {
			return fmt.Errorf("admin not bound")
		}
		m.admin = a.String()
		return nil
	})
	nackingClient(t, cp.XDSAddr().String())
	return m
}

// nackingClient connects as reviews-v1 over state-of-the-world ADS, ACKs
// clusters and rejects listeners, as a proxy that cannot load them would.
func nackingClient(t *testing.T, addr string) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		cc.Close()
	})
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *discovery.DiscoveryRequest) {
		t.Helper()
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(typeURL string) *discovery.DiscoveryResponse {
		t.Helper()
		for {
			r, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if r.GetTypeUrl() == typeURL {
				return r
			}
		}
	}
	send(&discovery.DiscoveryRequest{TypeUrl: xds.ClusterType, Node: &core.Node{
		Id: "sidecar~10.0.0.3~reviews-v1.default~default.svc.cluster.local", UserAgentName: "test-client",
		UserAgentVersionType: &core.Node_UserAgentVersion{UserAgentVersion: "1.0"}}})
	cds := recv(xds.ClusterType)
	send(&discovery.DiscoveryRequest{TypeUrl: xds.ClusterType, VersionInfo: cds.GetVersionInfo(), ResponseNonce: cds.GetNonce()})
	send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType})
	lds := recv(xds.ListenerType)
	send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType, ResponseNonce: lds.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: nackMessage}})
}

// run executes a command with args and returns what it printed.
func run(t *testing.T, cmd interface {
	SetArgs([]string)
	SetOut(io.Writer)
	SetErr(io.Writer)
	ExecuteContext(context.Context) error
}, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// fields splits an output line into its columns (cells are separated by
// runs of two or more blanks; tables pad with at least three).
func fields(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// row returns the columns of the first line whose columns start with
// prefix.
func row(out string, prefix ...string) []string {
	for line := range strings.Lines(out) {
		f := fields(line)
		if len(f) >= len(prefix) && slicesEqual(f[:len(prefix)], prefix) {
			return f
		}
	}
	return nil
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func TestProxyStatus(t *testing.T) {
	m := startMesh(t)
	host, _ := os.Hostname()
	var out string
	framework.Eventually(t, 20*time.Second, func() error {
		var err error
		out, err = run(t, proxystatus.NewCommand(), "--xds-debug-address", m.debug)
		if err != nil {
			return err
		}
		pp := row(out, "productpage-v1.default")
		if want := []string{"productpage-v1.default", "-", "SYNCED", "SYNCED", "SYNCED", "SYNCED", host, "-"}; !slicesEqual(pp, want) {
			return fmt.Errorf("productpage row %q, want %q in\n%s", pp, want, out)
		}
		rv := row(out, "reviews-v1.default")
		if want := []string{"reviews-v1.default", "-", "SYNCED", "NACKED", "NOT SENT", "NOT SENT", host, "test-client 1.0"}; !slicesEqual(rv, want) {
			return fmt.Errorf("reviews row %q, want %q in\n%s", rv, want, out)
		}
		return nil
	})
	if !strings.Contains(out, "reviews-v1.default LDS: "+nackMessage) {
		t.Errorf("the NACK's error is not under the table:\n%s", out)
	}
	if h := fields(strings.SplitN(out, "\n", 2)[0]); !slicesEqual(h, []string{"NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"}) {
		t.Errorf("header %q", h)
	}

	wide, err := run(t, proxystatus.NewCommand(), "--xds-debug-address", m.debug, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	if r := row(wide, "productpage-v1.default"); len(r) != 11 || !strings.HasPrefix(r[8], "sidecar~10.0.0.1~productpage-v1.default~") || r[9] != "delta" {
		t.Errorf("wide row %q", r)
	}

	js, err := run(t, proxystatus.NewCommand(), "--xds-debug-address", m.debug, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st []server.SyncStatus
	if err := json.Unmarshal([]byte(js), &st); err != nil || len(st) != 2 {
		t.Fatalf("json: %v %d\n%s", err, len(st), js)
	}

	// One proxy: per-type detail with its last error (namespace completed).
	detail, err := run(t, proxystatus.NewCommand(), "--xds-debug-address", m.debug, "reviews-v1")
	if err != nil {
		t.Fatal(err)
	}
	if r := row(detail, "LDS"); len(r) < 2 || r[1] != "NACKED" || !strings.Contains(detail, "LDS (nacked): "+nackMessage) {
		t.Errorf("detail:\n%s", detail)
	}
	if _, err := run(t, proxystatus.NewCommand(), "--xds-debug-address", m.debug, "nobody.default"); err == nil ||
		!strings.Contains(err.Error(), `proxy "nobody.default" is not connected`) {
		t.Errorf("unknown proxy: %v", err)
	}
	if _, err := run(t, proxystatus.NewCommand(), "--xds-debug-address", "127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "--xds-debug-address") {
		t.Errorf("no control plane: %v", err)
	}
}

func TestProxyConfig(t *testing.T) {
	m := startMesh(t)
	pc := func(args ...string) string {
		t.Helper()
		out, err := run(t, proxyconfig.NewCommand(), append(args, "--xds-debug-address", m.debug)...)
		if err != nil {
			t.Fatalf("proxy-config %v: %v\n%s", args, err, out)
		}
		return out
	}
	// From the control plane and from the sidecar itself: same rows.
	for _, src := range [][]string{{"productpage-v1.default"}, {"--admin", m.admin}} {
		t.Run(strings.Join(src, " "), func(t *testing.T) {
			ls := pc(append([]string{"listeners"}, src...)...)
			if r := row(ls, "0.0.0.0", "9080", "Trans: raw_buffer; App: http/1.1,h2c"); r == nil || r[3] != "Route: 9080" {
				t.Errorf("listeners:\n%s", ls)
			}
			rs := pc(append([]string{"routes", "--name", "9080"}, src...)...)
			if r := row(rs, "9080", "reviews.default.svc.cluster.local:9080", "reviews, reviews.default + 2 more...", "/* (end-user=jason)"); r == nil || r[4] != "reviews.default" {
				t.Errorf("routes:\n%s", rs)
			}
			if strings.Contains(rs, "inbound|") {
				t.Errorf("--name 9080 kept other route configurations:\n%s", rs)
			}
			cs := pc(append([]string{"clusters", "--fqdn", "reviews.default.svc.cluster.local"}, src...)...)
			if n := strings.Count(cs, "reviews.default.svc.cluster.local"); n != 4 {
				t.Errorf("clusters: %d reviews rows, want 4 (no subset, v1, v2, v3):\n%s", n, cs)
			}
			if r := row(cs, "reviews.default.svc.cluster.local", "9080", "v2", "outbound", "EDS"); r == nil || r[5] != "reviews.default" {
				t.Errorf("clusters:\n%s", cs)
			}
			ss := pc(append([]string{"secrets"}, src...)...)
			if r := row(ss, "default", "Cert Chain", "NOT SERVED"); r == nil {
				t.Errorf("secrets:\n%s", ss)
			}
			js := pc(append([]string{"clusters", "-o", "json"}, src...)...)
			if !json.Valid([]byte(js)) || !strings.Contains(js, "outbound|9080|v2|reviews.default.svc.cluster.local") {
				t.Errorf("clusters -o json:\n%.500s", js)
			}
		})
	}
	// Endpoints: the control plane's EDS, and the sidecar's own hosts with
	// their outlier state.
	eds := pc("endpoints", "productpage-v1.default", "--cluster", "outbound|9080|v2|reviews.default.svc.cluster.local")
	if r := row(eds, "10.0.0.4:9080", "HEALTHY", "-", "outbound|9080|v2|reviews.default.svc.cluster.local"); r == nil {
		t.Errorf("endpoints from the control plane:\n%s", eds)
	}
	framework.Eventually(t, 10*time.Second, func() error {
		out := pc("endpoints", "--admin", m.admin, "--cluster", "outbound|9080|v2|reviews.default.svc.cluster.local")
		if row(out, "10.0.0.4:9080", "HEALTHY", "OK", "outbound|9080|v2|reviews.default.svc.cluster.local") == nil {
			return fmt.Errorf("endpoints from the sidecar:\n%s", out)
		}
		return nil
	})

	// The rejected listeners still show: the dump is what was sent.
	if ls := pc("listeners", "reviews-v1.default", "--port", "9080"); row(ls, "0.0.0.0", "9080") == nil {
		t.Errorf("listeners of the NACKing proxy:\n%s", ls)
	}
	out, err := run(t, proxyconfig.NewCommand(), "clusters", "nobody.default", "--xds-debug-address", m.debug)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), `proxy "nobody.default" is not connected`) {
		t.Errorf("unknown proxy: %v\n%s", err, out)
	}
	if _, err := run(t, proxyconfig.NewCommand(), "clusters", "--xds-debug-address", m.debug); err == nil || !strings.Contains(err.Error(), "name the proxy") {
		t.Errorf("no proxy: %v", err)
	}
}
