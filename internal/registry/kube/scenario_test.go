package kube

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store/memory"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
	"github.com/trellismesh/trellis/internal/registry/aggregate"
	"github.com/trellismesh/trellis/internal/registry/serviceentry"
)

// env runs a kube Registry joined with a ServiceEntry registry (through
// registry/aggregate) over one client bundle, fake or real.
type env struct {
	t       *testing.T
	kc      kubernetes.Interface
	reg     *Registry
	agg     *aggregate.Registry
	se      *memory.Store
	mu      sync.Mutex
	changes []registry.Change
}

func newEnv(t *testing.T, client *kube.Client) *env {
	t.Helper()
	inf := kube.NewInformers(client, 0)
	reg, err := New(Config{Informers: inf})
	if err != nil {
		t.Fatal(err)
	}
	st, err := memory.New(memory.Config{Schemas: schema.Istio(), Validate: func(config.Config) ([]string, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	se, err := serviceentry.New(serviceentry.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregate.New(reg, se)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kc: client.Kube, reg: reg, agg: agg, se: st}
	agg.RegisterHandler(func(c registry.Change) {
		e.mu.Lock()
		e.changes = append(e.changes, c)
		e.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { st.Run(ctx) })
	wg.Go(func() { agg.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		inf.Shutdown()
	})
	e.waitFor("registries synced", agg.HasSynced)
	return e
}

// waitFor polls cond until it holds; 30s covers a loaded machine with a
// real API server.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEndpoints waits until the service's endpoints, as a list of
// address/labels/etc. projections, equal want.
func (e *env) waitEndpoints(key model.ServiceKey, want []*model.Endpoint) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.agg.Endpoints(key)
		diff := cmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("endpoints of %v (-want +got):\n%s", key, diff)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shopServices returns the host names of the services in namespace shop
// (a real API server also has default/kubernetes).
func (e *env) shopServices() []string {
	var hosts []string
	for _, s := range e.agg.Services() {
		if s.Namespace == "shop" {
			hosts = append(hosts, s.Hostname)
		}
	}
	return hosts
}

func (e *env) service(key model.ServiceKey) *model.Service {
	e.t.Helper()
	for _, s := range e.reg.Services() {
		if s.Key() == key {
			return s
		}
	}
	e.t.Fatalf("no service %v", key)
	return nil
}

func (e *env) sawChange(key model.ServiceKey, endpointsOnly bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.changes {
		if c.EndpointsOnly == endpointsOnly && slices.Contains(c.Services, key) {
			return true
		}
	}
	return false
}

func (e *env) resetChanges() {
	e.mu.Lock()
	e.changes = nil
	e.mu.Unlock()
}

func (e *env) check(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// createPod creates a Pod and then sets its status, as a kubelet would.
func (e *env) createPod(ctx context.Context, p *corev1.Pod) {
	e.t.Helper()
	status := p.Status
	created, err := e.kc.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	e.check(err)
	created.Status = status
	_, err = e.kc.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	e.check(err)
}

func pod(name, ip, sa string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeName:           "node-a",
			Containers:         []corev1.Container{{Name: "app", Image: "example.invalid/app"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			PodIPs:     []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func sliceEndpoint(ip, podName string, ready, serving, terminating bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{
		Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{
			Ready: ptr(ready), Serving: ptr(serving), Terminating: ptr(terminating),
		},
		NodeName: ptr("node-a"),
	}
	if podName != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: podName}
	}
	return ep
}

// runScenario drives the cluster through creates, updates and deletes and
// checks what the joined registry publishes after each.
func runScenario(t *testing.T, client *kube.Client) {
	ctx := t.Context()
	kc := client.Kube
	mustCreate := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Objects that exist before the registry starts.
	mustCreate(kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "istio-system", Labels: map[string]string{labelNetwork: "net1"}}}, metav1.CreateOptions{}))
	mustCreate(kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}))
	mustCreate(kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{
		corev1.LabelTopologyRegion: "eu", corev1.LabelTopologyZone: "eu-a"}}}, metav1.CreateOptions{}))
	mustCreate(kc.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.100.10",
			Selector:  map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080), Protocol: corev1.ProtocolTCP},
				{Name: "api", Port: 9090, TargetPort: intstr.FromString("api"), AppProtocol: ptr("grpc"), Protocol: corev1.ProtocolTCP},
			},
		},
	}, metav1.CreateOptions{}))

	e := newEnv(t, client)
	e.createPod(ctx, pod("reviews-v1", "10.1.0.1", "reviews", map[string]string{"app": "reviews", "version": "v1"}))
	e.createPod(ctx, pod("reviews-v2", "10.1.0.2", "reviews", map[string]string{"app": "reviews", "version": "v2"}))
	e.createPod(ctx, pod("reviews-old", "10.1.0.3", "reviews", map[string]string{"app": "reviews", "version": "v0"}))
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-abc", Namespace: "shop",
			Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			sliceEndpoint("10.1.0.1", "reviews-v1", true, true, false),
			sliceEndpoint("10.1.0.2", "reviews-v2", false, false, false), // not ready
			sliceEndpoint("10.1.0.3", "reviews-old", false, true, true),  // draining
			sliceEndpoint("10.1.0.4", "reviews-v3", true, true, false),   // Pod not created yet
		},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("http"), Port: ptr(int32(9080)), Protocol: ptr(corev1.ProtocolTCP)},
			{Name: ptr("api"), Port: ptr(int32(9091)), Protocol: ptr(corev1.ProtocolTCP)},
		},
	}
	es, err := kc.DiscoveryV1().EndpointSlices("shop").Create(ctx, es, metav1.CreateOptions{})
	e.check(err)

	// A ServiceEntry next to the Kubernetes services.
	_, err = e.se.Create(ctx, config.Config{
		Meta: config.Meta{Kind: schema.ServiceEntry, Namespace: "shop", Name: "payments"},
		Spec: &networking.ServiceEntry{
			Hosts:      []string{"payments.example.com"},
			Ports:      []*networking.ServicePort{{Number: 443, Name: "tls", Protocol: "TLS"}},
			Resolution: networking.ServiceEntry_DNS,
		},
	})
	e.check(err)

	reviews := model.ServiceKey{Hostname: "reviews.shop.svc.cluster.local", Namespace: "shop"}
	ports := map[string]uint32{"http": 9080, "api": 9091}
	endpointFor := func(ip, name string, labels map[string]string, locality string) *model.Endpoint {
		return &model.Endpoint{
			Address: ip, Ports: ports, Labels: labels, Network: "net1", Locality: locality,
			ServiceAccount: "reviews", Namespace: "shop", WorkloadName: name, TLSMode: "disabled",
		}
	}
	v1 := endpointFor("10.1.0.1", "reviews-v1", map[string]string{"app": "reviews", "version": "v1"}, "eu/eu-a")
	e.waitEndpoints(reviews, []*model.Endpoint{v1})

	t.Run("services", func(t *testing.T) {
		e.waitFor("both registries' services", func() bool { return len(e.shopServices()) == 2 })
		if hosts, want := e.shopServices(), []string{"payments.example.com", "reviews.shop.svc.cluster.local"}; !reflect.DeepEqual(hosts, want) {
			t.Fatalf("services = %v, want %v", hosts, want)
		}
		svc := e.service(reviews)
		want := []model.Port{
			{Name: "http", Number: 9080, Protocol: model.ProtocolHTTP, TargetPort: 9080},
			{Name: "api", Number: 9090, Protocol: model.ProtocolGRPC},
		}
		if diff := cmp.Diff(want, svc.Ports); diff != "" {
			t.Errorf("ports (-want +got):\n%s", diff)
		}
		if !reflect.DeepEqual(svc.Addresses, []string{"10.96.100.10"}) {
			t.Errorf("addresses = %v", svc.Addresses)
		}
	})

	t.Run("pod arrives", func(t *testing.T) {
		e.resetChanges()
		e.createPod(ctx, pod("reviews-v3", "10.1.0.4", "reviews", map[string]string{"app": "reviews", "version": "v3"}))
		v3 := endpointFor("10.1.0.4", "reviews-v3", map[string]string{"app": "reviews", "version": "v3"}, "eu/eu-a")
		e.waitEndpoints(reviews, []*model.Endpoint{v1, v3})
		e.waitFor("an endpoints-only change", func() bool { return e.sawChange(reviews, true) })
	})

	t.Run("endpoint becomes ready", func(t *testing.T) {
		es.Endpoints[1] = sliceEndpoint("10.1.0.2", "reviews-v2", true, true, false)
		es, err = kc.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{})
		e.check(err)
		e.waitFor("three endpoints", func() bool { return len(e.agg.Endpoints(reviews)) == 3 })
	})

	t.Run("pod relabelled", func(t *testing.T) {
		p, err := kc.CoreV1().Pods("shop").Get(ctx, "reviews-v1", metav1.GetOptions{})
		e.check(err)
		p.Labels["version"] = "v1b"
		_, err = kc.CoreV1().Pods("shop").Update(ctx, p, metav1.UpdateOptions{})
		e.check(err)
		e.waitFor("new labels", func() bool {
			eps := e.agg.Endpoints(reviews)
			return len(eps) == 3 && eps[0].Labels["version"] == "v1b"
		})
	})

	t.Run("node relabelled", func(t *testing.T) {
		n, err := kc.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		e.check(err)
		n.Labels[corev1.LabelTopologyZone] = "eu-b"
		_, err = kc.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		e.check(err)
		e.waitFor("new locality", func() bool {
			for _, ep := range e.agg.Endpoints(reviews) {
				if ep.Locality != "eu/eu-b" {
					return false
				}
			}
			return true
		})
	})

	t.Run("service updated", func(t *testing.T) {
		e.resetChanges()
		svc, err := kc.CoreV1().Services("shop").Get(ctx, "reviews", metav1.GetOptions{})
		e.check(err)
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "db", Port: 3306, Protocol: corev1.ProtocolTCP})
		_, err = kc.CoreV1().Services("shop").Update(ctx, svc, metav1.UpdateOptions{})
		e.check(err)
		e.waitFor("a full change", func() bool { return e.sawChange(reviews, false) })
		if p, ok := e.service(reviews).Port(3306); !ok || p.Protocol != model.ProtocolTCP {
			t.Errorf("port 3306 = %+v, %v", p, ok)
		}
	})

	t.Run("slice deleted", func(t *testing.T) {
		e.check(kc.DiscoveryV1().EndpointSlices("shop").Delete(ctx, "reviews-abc", metav1.DeleteOptions{}))
		e.waitEndpoints(reviews, nil)
	})

	t.Run("service deleted", func(t *testing.T) {
		e.check(kc.CoreV1().Services("shop").Delete(ctx, "reviews", metav1.DeleteOptions{}))
		e.waitFor("service gone", func() bool { return len(e.shopServices()) == 1 })
		if hosts := e.shopServices(); hosts[0] != "payments.example.com" {
			t.Errorf("remaining services %v", hosts)
		}
		if !e.sawChange(reviews, false) {
			t.Errorf("no change reported for %v", reviews)
		}
	})
}
