package webhook

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	istionet "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

// TestWebhooksAPIServer runs the webhook server in-process on loopback,
// registers both webhook configurations with a real kube-apiserver (which
// calls the server over HTTPS, trusting the caBundle the syncer wrote),
// and checks injection and validation through ordinary API calls.
func TestWebhooksAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	kubetest.InstallCRDs(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := NewCerts(CertsConfig{Authority: authority, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	injector, err := inject.New(inject.Config{
		Image:      "ghcr.io/trellismesh/trellis-proxy:test",
		XDSAddress: "istiod.istio-system.svc:15012",
		CAAddress:  "istiod.istio-system.svc:15012",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Address: "127.0.0.1:0", Injector: injector, Certs: certs})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The configurations are created without a caBundle, as an installer
	// that does not know the CA yet would; the syncer fills it in.
	target := Target{URL: "https://" + addr.String()}
	mut, err := MutatingConfig(MutatingName, target)
	if err != nil {
		t.Fatal(err)
	}
	val, err := ValidatingConfig(ValidatingName, target, schema.Istio())
	if err != nil {
		t.Fatal(err)
	}
	kc := c.Client.Kube
	if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mut, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, val, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	syncer, err := NewBundleSyncer(BundleConfig{Client: kc, Mutating: MutatingName, Validating: ValidatingName, Bundle: certs.CABundle})
	if err != nil {
		t.Fatal(err)
	}
	if err := syncer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	gotMut, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, MutatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range gotMut.Webhooks {
		if string(w.ClientConfig.CABundle) != string(authority.Roots().PEM()) {
			t.Fatalf("webhook %s: caBundle not synced", w.Name)
		}
	}

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "injected", Labels: map[string]string{inject.NamespaceLabel: "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(ns, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			// No ServiceAccount admission plugin in the test cluster: name
			// the account it would have set (the projected token needs one).
			Spec: corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{
				Name: "app", Image: "example.com/app:1",
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}},
			}}},
		}
	}

	// The API server picks new webhook configurations up asynchronously:
	// wait until a dry-run creation comes back injected.
	poll(t, ctx, "the injection webhook to take effect", func() (bool, error) {
		p, err := kc.CoreV1().Pods("injected").Create(ctx, pod("injected", "probe", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		return hasProxy(p), nil
	})

	created, err := kc.CoreV1().Pods("injected").Create(ctx, pod("injected", "web", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := kc.CoreV1().Pods("injected").Get(ctx, created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProxy(got) || len(got.Spec.InitContainers) == 0 || got.Spec.InitContainers[0].Name != inject.InitContainer {
		t.Fatalf("pod in a labelled namespace not injected: containers %v, init %v", names(got.Spec.Containers), names(got.Spec.InitContainers))
	}
	if got.Annotations[inject.StatusAnnotation] == "" {
		t.Errorf("injected pod has no %s annotation", inject.StatusAnnotation)
	}
	if p := got.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Path != "/app-health/app/readyz" || p.Port.IntValue() != inject.MetricsPort {
		t.Errorf("application probe not rewritten: %+v", p)
	}
	caps := got.Spec.InitContainers[0].SecurityContext.Capabilities
	if len(caps.Add) != 2 || caps.Add[0] != "NET_ADMIN" || caps.Add[1] != "NET_RAW" {
		t.Errorf("init container capabilities = %+v", caps)
	}

	// Opting out in a labelled namespace, and an unlabelled namespace.
	for _, tc := range []struct {
		ns, name string
		labels   map[string]string
		want     bool
	}{
		{"injected", "opted-out", map[string]string{inject.InjectKey: "false"}, false},
		{"plain", "plain", nil, false},
		{"plain", "opted-in", map[string]string{inject.InjectKey: "true"}, true},
	} {
		p, err := kc.CoreV1().Pods(tc.ns).Create(ctx, pod(tc.ns, tc.name, tc.labels), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.ns, tc.name, err)
		}
		if hasProxy(p) != tc.want {
			t.Errorf("%s/%s: injected = %v, want %v (containers %v)", tc.ns, tc.name, hasProxy(p), tc.want, names(p.Spec.Containers))
		}
	}

	// Validation: an invalid VirtualService is refused with its field
	// error; a valid one is accepted.
	vs := func(name, regex string) *networkingv1.VirtualService {
		return &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Namespace: "plain", Name: name},
			Spec: istionet.VirtualService{
				Hosts: []string{"reviews"},
				Http: []*istionet.HTTPRoute{{
					Match: []*istionet.HTTPMatchRequest{{Uri: &istionet.StringMatch{MatchType: &istionet.StringMatch_Regex{Regex: regex}}}},
					Route: []*istionet.HTTPRouteDestination{{Destination: &istionet.Destination{Host: "reviews"}}},
				}},
			},
		}
	}
	vsAPI := c.Client.Istio.NetworkingV1().VirtualServices("plain")
	var refusal error
	poll(t, ctx, "the validating webhook to take effect", func() (bool, error) {
		_, refusal = vsAPI.Create(ctx, vs("bad", "a("), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return refusal != nil, nil
	})
	if _, err := vsAPI.Create(ctx, vs("bad", "a("), metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "denied the request") ||
		!strings.Contains(err.Error(), "spec.http[0].match[0].uri.regex: invalid RE2 regex") {
		t.Errorf("invalid VirtualService: error %v, want a refusal naming spec.http[0].match[0].uri.regex", err)
	}
	if _, err := vsAPI.Create(ctx, vs("good", "^/api/.*"), metav1.CreateOptions{}); err != nil {
		t.Errorf("valid VirtualService refused: %v", err)
	}
}

func hasProxy(p *corev1.Pod) bool {
	for _, c := range append(p.Spec.Containers, p.Spec.InitContainers...) {
		if c.Name == inject.ProxyContainer {
			return true
		}
	}
	return false
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// poll calls f until it reports true, failing the test with the last
// error when ctx ends.
func poll(t *testing.T, ctx context.Context, what string, f func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := f()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, errors.Join(ctx.Err(), last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
