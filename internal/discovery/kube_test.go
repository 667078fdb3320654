package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	apinetworking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/trellismesh/trellis/internal/config"
	trellisschema "github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
	kuberegistry "github.com/trellismesh/trellis/internal/registry/kube"
	"github.com/trellismesh/trellis/internal/testing/runready"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// kubeWait bounds waits that involve a real API server on a loaded machine.
const kubeWait = 60 * time.Second

// shopSidecar is a proxy in namespace shop (not one of the Pods: it only
// consumes the services).
const shopSidecar = "sidecar~10.1.9.9~productpage-0.shop~shop.svc.cluster.local"

const (
	shopReviewsHost    = "reviews.shop.svc.cluster.local"
	shopReviewsCluster = "outbound|9080||" + shopReviewsHost
)

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// startKube runs a control plane serving cluster c (no config directory)
// and waits until it is ready.
func startKube(t *testing.T, c *kubetest.Cluster) *Server {
	t.Helper()
	s, err := New(Config{
		Kube:              c.Client,
		XDSAddress:        "127.0.0.1:0",
		MonitoringAddress: "127.0.0.1:0",
		Debounce:          10 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runready.Start(t, s, kubeWait, "")
	return s
}

// fetch opens a new ADS stream as shopSidecar, returns the first response
// for typeURL and names (the control plane's current state) and closes the
// stream.
func fetch(t *testing.T, s *Server, typeURL string, names ...string) *discoverypb.DiscoveryResponse {
	t.Helper()
	conn, err := grpc.NewClient(s.XDSAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := discoverypb.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoverypb.DiscoveryRequest{Node: &core.Node{Id: shopSidecar}, TypeUrl: typeURL, ResourceNames: names}); err != nil {
		t.Fatalf("sending %s request: %v", xds.ShortName(typeURL), err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatalf("%s response: %v", xds.ShortName(typeURL), err)
	}
	if r.TypeUrl != typeURL {
		t.Fatalf("response of type %s, want %s", xds.ShortName(r.TypeUrl), xds.ShortName(typeURL))
	}
	return r
}

// eventuallyKube is eventually with the longer kubeWait.
func eventuallyKube(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(kubeWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, kubeWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusters returns the names of the CDS clusters served now.
func clusters(t *testing.T, s *Server) []string {
	return clusterNames(t, fetch(t, s, xds.ClusterType))
}

// endpoints returns the addresses ("ip:port") of one EDS cluster.
func endpoints(t *testing.T, s *Server, name string) []string {
	t.Helper()
	r := fetch(t, s, xds.EndpointType, name)
	var out []string
	for _, a := range r.Resources {
		var cla endpoint.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		if cla.ClusterName != name {
			continue
		}
		for _, loc := range cla.Endpoints {
			for _, ep := range loc.LbEndpoints {
				sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
				e := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
				if h := ep.GetHealthStatus(); h != core.HealthStatus_HEALTHY {
					e += " " + h.String()
				}
				out = append(out, e)
			}
		}
	}
	slices.Sort(out)
	return out
}

// reviewsRoute describes the first route of the reviews virtual host in
// the port's RDS route config: "cluster=weight ..." or "cluster".
func reviewsRoute(t *testing.T, s *Server) string {
	t.Helper()
	r := fetch(t, s, xds.RouteType, listener.RouteName(9080))
	for _, a := range r.Resources {
		var rc route.RouteConfiguration
		if err := a.UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		for _, vh := range rc.VirtualHosts {
			if !slices.Contains(vh.Domains, shopReviewsHost) || len(vh.Routes) == 0 {
				continue
			}
			var parts []string
			for _, rt := range vh.Routes {
				action := rt.GetRoute()
				if wc := action.GetWeightedClusters(); wc != nil {
					for _, c := range wc.Clusters {
						parts = append(parts, fmt.Sprintf("%s=%d", c.Name, c.GetWeight().GetValue()))
					}
				} else {
					parts = append(parts, action.GetCluster())
				}
			}
			return strings.Join(parts, " ")
		}
	}
	return "<no reviews virtual host>"
}

// createReviews creates what a Deployment, the scheduler, the kubelet and
// the EndpointSlice controller would: namespace shop, Service reviews
// (port http 9080), two Ready Pods (version v1 and v2) and their slice.
func createReviews(t *testing.T, kc *kube.Client) {
	t.Helper()
	ctx := context.Background()
	core := kc.Kube.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080, Protocol: corev1.ProtocolTCP}},
		},
	}
	if _, err := core.Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-1", Namespace: "shop",
			Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for i, version := range []string{"v1", "v2"} {
		ip := fmt.Sprintf("10.1.0.%d", i+1)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "reviews-" + version, Namespace: "shop",
				Labels: map[string]string{"app": "reviews", "version": version}},
			Spec: corev1.PodSpec{
				ServiceAccountName: "bookinfo-reviews",
				Containers:         []corev1.Container{{Name: "app", Image: "example.invalid/reviews"}},
			},
		}
		created, err := core.Pods("shop").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}
		if _, err := core.Pods("shop").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "reviews-" + version},
		})
	}
	if _, err := kc.Kube.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The subsets the VirtualServices route to, through the typed client.
	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: apinetworking.DestinationRule{Host: "reviews", Subsets: []*apinetworking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}},
			{Name: "v2", Labels: map[string]string{"version": "v2"}},
		}},
	}
	if _, err := kc.Istio.NetworkingV1().DestinationRules("shop").Create(ctx, dr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// applyYAML creates or updates an object from YAML through the dynamic
// client, as kubectl does: no typed client, no validation but the CRD's
// schema (there is no validating webhook yet).
func applyYAML(t *testing.T, kc *kube.Client, gvr schema.GroupVersionResource, doc string) {
	t.Helper()
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := kc.Dynamic.Resource(gvr).Namespace(obj.GetNamespace())
	cur, err := api.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		if _, err := api.Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", obj.GetName(), err)
		}
		return
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	if _, err := api.Update(ctx, &obj, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating %s: %v", obj.GetName(), err)
	}
}

func reviewsVirtualService(v1, v2 int, uriRegex string) string {
	match := ""
	if uriRegex != "" {
		match = fmt.Sprintf("\n  - match: [{uri: {regex: %q}}]\n    route:", uriRegex)
	} else {
		match = "\n  - route:"
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:%s
    - destination: {host: reviews, subset: v1}
      weight: %d
    - destination: {host: reviews, subset: v2}
      weight: %d
`, match, v1, v2)
}

// TestKubernetesCluster is the proof against a real API server:
// the cluster's Service, EndpointSlice and Pods reach a connected xDS
// client (CDS, EDS); a VirtualService written through the API changes
// routing (RDS); an invalid one is reported as a problem with its field
// while the previous routing keeps serving.
func TestKubernetesCluster(t *testing.T) {
	c := kubetest.Start(t)
	kubetest.InstallCRDs(t, c)
	// The system namespace holds the leader Lease: this control plane runs
	// no CA and still elects itself to write status.
	if _, err := c.Client.Kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := startKube(t, c)
	createReviews(t, c.Client)
	eventuallyKube(t, "leading without the CA", func() error {
		if !s.Leading() {
			return fmt.Errorf("not leading")
		}
		return nil
	})

	// Services and endpoints from the cluster.
	eventuallyKube(t, "reviews in CDS", func() error {
		if names := clusters(t, s); !slices.Contains(names, shopReviewsCluster) {
			return fmt.Errorf("CDS %v has no %s", names, shopReviewsCluster)
		}
		return nil
	})
	eventuallyKube(t, "reviews endpoints in EDS", func() error {
		want := []string{"10.1.0.1:9080", "10.1.0.2:9080"}
		if got := endpoints(t, s, shopReviewsCluster); !slices.Equal(got, want) {
			return fmt.Errorf("EDS %s = %v, want %v", shopReviewsCluster, got, want)
		}
		return nil
	})
	eventuallyKube(t, "subset endpoints in EDS", func() error {
		name := "outbound|9080|v2|" + shopReviewsHost
		if got, want := endpoints(t, s, name), []string{"10.1.0.2:9080"}; !slices.Equal(got, want) {
			return fmt.Errorf("EDS %s = %v, want %v", name, got, want)
		}
		return nil
	})
	if got := reviewsRoute(t, s); got != shopReviewsCluster {
		t.Errorf("route before any VirtualService: %q, want %s", got, shopReviewsCluster)
	}

	// A VirtualService written through the API (as kubectl would) changes
	// routing.
	applyYAML(t, c.Client, vsGVR, reviewsVirtualService(80, 20, ""))
	const split8020 = "outbound|9080|v1|" + shopReviewsHost + "=80 outbound|9080|v2|" + shopReviewsHost + "=20"
	eventuallyKube(t, "80/20 split in RDS", func() error {
		if got := reviewsRoute(t, s); got != split8020 {
			return fmt.Errorf("route %q, want %q", got, split8020)
		}
		return nil
	})

	// An invalid update is reported with its field, and the 80/20 split
	// keeps serving.
	applyYAML(t, c.Client, vsGVR, reviewsVirtualService(10, 90, "a("))
	key := config.Key{Kind: trellisschema.VirtualService, Namespace: "shop", Name: "reviews"}
	eventuallyKube(t, "the problem", func() error {
		for _, p := range s.Problems() {
			if p.Key == key && p.Field == "spec.http[0].match[0].uri.regex" && strings.Contains(p.Message, "invalid RE2") {
				return nil
			}
		}
		return fmt.Errorf("problems %v", s.Problems())
	})
	_, page := get(t, s, "/dashboard/config")
	if !strings.Contains(page, "spec.http[0].match[0].uri.regex") {
		t.Errorf("the dashboard's configuration page does not show the problem:\n%s", page)
	}
	if got := reviewsRoute(t, s); got != split8020 {
		t.Errorf("route after an invalid update: %q, want the last valid %q", got, split8020)
	}
	// The leader writes the analysis into the object's status, as istiod
	// does: IST0106 SchemaValidationError.
	eventuallyKube(t, "IST0106 in the VirtualService's status", func() error {
		if got := vsStatusCodes(t, c, "reviews"); !slices.Equal(got, []string{"IST0106"}) {
			return fmt.Errorf("status.validationMessages %v, want [IST0106]", got)
		}
		return nil
	})

	// The fix is applied and clears the problem.
	applyYAML(t, c.Client, vsGVR, reviewsVirtualService(30, 70, "^/reviews"))
	const split3070 = "outbound|9080|v1|" + shopReviewsHost + "=30 outbound|9080|v2|" + shopReviewsHost + "=70"
	eventuallyKube(t, "the fix in RDS", func() error {
		if got := reviewsRoute(t, s); got != split3070 {
			return fmt.Errorf("route %q, want %q", got, split3070)
		}
		return nil
	})
	for _, p := range s.Problems() {
		if p.Key == key {
			t.Errorf("problem left after the fix: %v", p)
		}
	}
	eventuallyKube(t, "status cleared by the fix", func() error {
		if got := vsStatusCodes(t, c, "reviews"); len(got) != 0 {
			return fmt.Errorf("status.validationMessages %v, want none", got)
		}
		return nil
	})

	// A Gateway API route is stored (its problems would be reported) but
	// not translated yet: it stays out of snapshots.
	hrGVR := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	applyYAML(t, c.Client, hrGVR, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
`)
	eventuallyKube(t, "the HTTPRoute stored", func() error {
		if _, ok := s.store.Get(trellisschema.HTTPRoute, "shop", "reviews"); !ok {
			return fmt.Errorf("not in the store")
		}
		return nil
	})
	if n := len(s.Snapshot().Configs(trellisschema.HTTPRoute)); n != 0 {
		t.Errorf("%d HTTPRoutes in the snapshot, want none until they are translated", n)
	}

	// Endpoint changes reach EDS: reviews-v1 stops being ready.
	ctx := context.Background()
	sl, err := c.Client.Kube.DiscoveryV1().EndpointSlices("shop").Get(ctx, "reviews-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints[0].Conditions.Ready = ptr(false)
	if _, err := c.Client.Kube.DiscoveryV1().EndpointSlices("shop").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyKube(t, "v1 gone from EDS", func() error {
		if got, want := endpoints(t, s, shopReviewsCluster), []string{"10.1.0.2:9080"}; !slices.Equal(got, want) {
			return fmt.Errorf("EDS %v, want %v", got, want)
		}
		return nil
	})

	// reviews-v1 terminates while still serving, and reviews uses
	// persistent sessions: it comes back as DRAINING (proxies send it no
	// new requests), as Istio publishes it.
	if sl, err = c.Client.Kube.DiscoveryV1().EndpointSlices("shop").Get(ctx, "reviews-1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	sl.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}
	if _, err := c.Client.Kube.DiscoveryV1().EndpointSlices("shop").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Client.Kube.CoreV1().Services("shop").Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Labels = map[string]string{kuberegistry.LabelPersistentSession: "JSESSIONID"}
	if _, err := c.Client.Kube.CoreV1().Services("shop").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyKube(t, "v1 draining in EDS", func() error {
		if got, want := endpoints(t, s, shopReviewsCluster), []string{"10.1.0.1:9080 DRAINING", "10.1.0.2:9080"}; !slices.Equal(got, want) {
			return fmt.Errorf("EDS %v, want %v", got, want)
		}
		return nil
	})
}

// vsStatusCodes returns the codes in the status.validationMessages of
// VirtualService shop/name.
func vsStatusCodes(t *testing.T, c *kubetest.Cluster, name string) []string {
	t.Helper()
	v, err := c.Client.Istio.NetworkingV1().VirtualServices("shop").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range v.Status.ValidationMessages {
		out = append(out, m.GetType().GetCode())
	}
	return out
}
