package proxyless

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trellismesh/trellis/test/framework"
)

const target = "reviews.default.svc.cluster.local:9080"

// fixture is a control plane with reviews v1, v2, v3 backends.
type fixture struct {
	cp       *framework.ControlPlane
	backends map[string]*framework.Backend
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{backends: map[string]*framework.Backend{}}
	var wes strings.Builder
	for _, v := range []string{"v1", "v2", "v3"} {
		b := framework.StartBackend(t, "reviews-"+v)
		f.backends[v] = b
		fmt.Fprintf(&wes, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-%s
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    grpc: %d
  labels:
    app: reviews
    version: %s
`, v, b.Port, v)
	}
	f.cp = framework.StartControlPlane(t, "")
	f.cp.WriteFile(t, "services.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: grpc
    protocol: GRPC
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
`+wes.String())
	f.cp.WriteFile(t, "destination-rule.yaml", subsetsRule(""))
	return f
}

// subsetsRule is a DestinationRule with v1..v3 subsets and an optional
// top-level traffic policy (YAML indented under spec).
func subsetsRule(policy string) string {
	return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
` + policy + `  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
`
}

func virtualService(http string) string {
	return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
` + http
}

const split5050 = `  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v3}
      weight: 50
`

// waitFor polls calls until every one of n lands on want.
func waitFor(t *testing.T, c *framework.Client, want string, md ...string) {
	t.Helper()
	framework.Eventually(t, 15*time.Second, func() error {
		got := c.Distribution(t, 20, md...)
		if got[want] != 20 {
			return fmt.Errorf("want all 20 calls on %s, got %v", want, got)
		}
		return nil
	})
}

func TestWeightedSplitAndHeaderMatch(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(split5050))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	waitFor(t, c, "reviews-v2", "end-user", "jason")

	// Let the split settle (both weighted subsets reachable), then measure.
	framework.Eventually(t, 15*time.Second, func() error {
		got := c.Distribution(t, 40)
		if got["reviews-v1"] == 0 || got["reviews-v3"] == 0 {
			return fmt.Errorf("split not in force yet: %v", got)
		}
		return nil
	})
	const n = 2000
	got := c.Distribution(t, n)
	t.Logf("distribution over %d RPCs: %v", n, got)
	if got["reviews-v2"] != 0 || got["reviews-v1"]+got["reviews-v3"] != n {
		t.Fatalf("calls outside the v1/v3 split: %v", got)
	}
	share := float64(got["reviews-v1"]) / n
	if share < 0.45 || share > 0.55 {
		t.Errorf("v1 share = %.3f, want 0.50 ± 0.05 (%v)", share, got)
	}

	// The header match routes only matching calls.
	jason := c.Distribution(t, 200, "end-user", "jason")
	if jason["reviews-v2"] != 200 {
		t.Errorf("end-user: jason: want all 200 on v2, got %v", jason)
	}
	other := c.Distribution(t, 200, "end-user", "mallory")
	if other["reviews-v2"] != 0 {
		t.Errorf("end-user: mallory reached v2: %v", other)
	}
}

func TestFileChangeReroutesRunningClient(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	waitFor(t, c, "reviews-v1")

	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v3}
`))
	waitFor(t, c, "reviews-v3")
}

func TestInvalidFileKeepsRoutingAndIsReported(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	waitFor(t, c, "reviews-v1")

	// A negative weight is invalid (Istio's weights are relative, so they
	// need not sum to 100, but each must be >= 0): the object is rejected
	// and its last valid version stays in force.
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v2}
      weight: -30
    - destination: {host: reviews, subset: v3}
      weight: 130
`))
	framework.Eventually(t, 10*time.Second, func() error {
		for _, p := range f.cp.Problems() {
			msg := p.Error()
			if strings.Contains(msg, "virtual-service.yaml") && strings.Contains(msg, "reviews") && strings.Contains(msg, "weight") {
				t.Logf("reported: %s", msg)
				return nil
			}
		}
		return fmt.Errorf("no problem reported for the invalid VirtualService: %v", f.cp.Problems())
	})
	got := c.Distribution(t, 100)
	if got["reviews-v1"] != 100 {
		t.Fatalf("routing changed after an invalid update: %v", got)
	}
	// Unparseable YAML is reported too and changes nothing.
	f.cp.WriteFile(t, "virtual-service.yaml", "kind: VirtualService\nspec: [unclosed\n")
	framework.Eventually(t, 10*time.Second, func() error {
		for _, p := range f.cp.Problems() {
			if strings.Contains(p.Error(), "virtual-service.yaml") && !strings.Contains(p.Error(), "weight") {
				return nil
			}
		}
		return fmt.Errorf("no decode problem reported: %v", f.cp.Problems())
	})
	if got := c.Distribution(t, 100); got["reviews-v1"] != 100 {
		t.Fatalf("routing changed after unparseable YAML: %v", got)
	}
}

func TestConsistentHashByHeader(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "destination-rule.yaml", subsetsRule(`  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
`))
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews}
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	// Wait for all three endpoints to be in use for some key.
	seen := map[string]bool{}
	framework.Eventually(t, 15*time.Second, func() error {
		for i := 0; i < 30; i++ {
			name, err := c.Call(context.Background(), "x-user", fmt.Sprintf("user-%d", i))
			if err == nil {
				seen[name] = true
			}
		}
		if len(seen) < 2 {
			return fmt.Errorf("hashing spreads users over too few backends: %v", seen)
		}
		return nil
	})
	for i := 0; i < 10; i++ {
		user := fmt.Sprintf("user-%d", i)
		got := c.Distribution(t, 30, "x-user", user)
		if len(got) != 1 {
			t.Errorf("%s: calls with one hash key spread over %v", user, got)
		}
	}
}

func TestRetriesHideFlakyBackend(t *testing.T) {
	f := newFixture(t)
	f.backends["v1"].FailEvery.Store(2) // every other call fails with UNAVAILABLE
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
    retries:
      attempts: 3
      retryOn: unavailable
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	waitFor(t, c, "reviews-v1")
	got := c.Distribution(t, 100)
	if got["reviews-v1"] != 100 {
		t.Errorf("with retries every call should succeed, got %v", got)
	}

	// Without the retry policy the failures surface.
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
    retries:
      attempts: 0
`))
	framework.Eventually(t, 15*time.Second, func() error {
		got := c.Distribution(t, 20)
		if got["error: Unavailable"] == 0 {
			return fmt.Errorf("failures still hidden: %v", got)
		}
		return nil
	})
}

func TestTimeout(t *testing.T) {
	f := newFixture(t)
	f.backends["v1"].Delay.Store(int64(2 * time.Second))
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
    timeout: 200ms
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	framework.Eventually(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Call(ctx)
		took := time.Since(start)
		if status.Code(err) != codes.DeadlineExceeded || took > time.Second {
			return fmt.Errorf("want DeadlineExceeded after ~200ms, got %v after %v", err, took)
		}
		return nil
	})
}

func TestFaultInjection(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
    fault:
      abort:
        grpcStatus: UNAVAILABLE
        percentage:
          value: 100
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	framework.Eventually(t, 15*time.Second, func() error {
		got := c.Distribution(t, 20)
		if got["error: Unavailable"] != 20 {
			return fmt.Errorf("want 20 aborted calls, got %v", got)
		}
		return nil
	})
	if n := f.backends["v1"].Calls.Load(); n != 0 {
		// Calls before the fault was in force may have reached it; after, none.
		before := n
		c.Distribution(t, 20)
		if f.backends["v1"].Calls.Load() != before {
			t.Errorf("aborted calls reached the backend")
		}
	}

	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
    fault:
      delay:
        fixedDelay: 300ms
        percentage:
          value: 100
`))
	framework.Eventually(t, 15*time.Second, func() error {
		start := time.Now()
		name, err := c.Call(context.Background())
		if err != nil || name != "reviews-v1" || time.Since(start) < 300*time.Millisecond {
			return fmt.Errorf("want a delayed success, got %q %v after %v", name, err, time.Since(start))
		}
		return nil
	})
}

// TestControlPlaneRestart: a running client keeps routing with its last
// configuration while the control plane is away, reconnects to the new
// instance on the same address and follows its configuration.
func TestControlPlaneRestart(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
`))
	addr := f.cp.XDSAddr().String()
	c := framework.DialXDS(t, addr, target, nil)
	waitFor(t, c, "reviews-v1")

	f.cp.Stop()
	if got := c.Distribution(t, 50); got["reviews-v1"] != 50 {
		t.Fatalf("with the control plane away the client should keep its routes: %v", got)
	}

	// A new control plane on the same address and directory, with changed
	// routing: the client reconnects by itself.
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v3}
`))
	framework.StartControlPlaneAt(t, f.cp.Dir, addr)
	waitFor(t, c, "reviews-v3")
}

// TestRelativeWeights: Istio's weights are relative (weight/sum), so 1 and 3
// split 25/75.
func TestRelativeWeights(t *testing.T) {
	f := newFixture(t)
	f.cp.WriteFile(t, "virtual-service.yaml", virtualService(`  - route:
    - destination: {host: reviews, subset: v1}
      weight: 1
    - destination: {host: reviews, subset: v3}
      weight: 3
`))
	c := framework.DialXDS(t, f.cp.XDSAddr().String(), target, nil)
	framework.Eventually(t, 15*time.Second, func() error {
		got := c.Distribution(t, 40)
		if got["reviews-v1"] == 0 || got["reviews-v3"] == 0 {
			return fmt.Errorf("split not in force yet: %v", got)
		}
		return nil
	})
	const n = 2000
	got := c.Distribution(t, n)
	share := float64(got["reviews-v1"]) / n
	t.Logf("distribution over %d RPCs: %v", n, got)
	if share < 0.20 || share > 0.30 {
		t.Errorf("v1 share = %.3f, want 0.25 ± 0.05 (%v)", share, got)
	}
}
