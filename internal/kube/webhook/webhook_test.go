package webhook

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/inject"
)

func testAuthority(t *testing.T, now func() time.Time) *ca.Authority {
	t.Helper()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testServer(t *testing.T) *Server {
	t.Helper()
	certs, err := NewCerts(CertsConfig{Authority: testAuthority(t, time.Now), DNSNames: ServiceDNSNames("istiod", "istio-system")})
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(inject.Config{Image: "proxy:test", XDSAddress: "istiod.istio-system.svc:15012"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Injector: in, Certs: certs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func review(t *testing.T, h http.Handler, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("%s: response %+v does not answer request %s", path, out.Response, req.UID)
	}
	return out.Response
}

func podRequest(t *testing.T, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID: types.UID("req-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Operation: admissionv1.Create, Namespace: pod.Namespace, Object: runtime.RawExtension{Raw: raw},
	}
}

func TestInjectEndpoint(t *testing.T) {
	h := testServer(t).Handler()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", GenerateName: "web-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	resp := review(t, h, InjectPath, podRequest(t, pod))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v: want allowed with a JSON patch", resp)
	}
	for _, want := range []string{`"path":"/spec/initContainers"`, `"name":"istio-proxy"`, `"sidecar.istio.io/status"`} {
		if !strings.Contains(string(resp.Patch), want) {
			t.Errorf("patch lacks %s:\n%s", want, resp.Patch)
		}
	}

	optOut := pod.DeepCopy()
	optOut.Labels = map[string]string{inject.InjectKey: "false"}
	if resp := review(t, h, InjectPath, podRequest(t, optOut)); !resp.Allowed || resp.Patch != nil {
		t.Errorf("opted-out pod: %+v, want allowed without patch", resp)
	}

	bad := pod.DeepCopy()
	bad.Annotations = map[string]string{"sidecar.istio.io/proxyCPU": "lots"}
	resp = review(t, h, InjectPath, podRequest(t, bad))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "annotation sidecar.istio.io/proxyCPU") {
		t.Errorf("pod with a bad annotation: %+v, want refused naming the annotation", resp)
	}
}

func vsRequest(op admissionv1.Operation, obj string) *admissionv1.AdmissionRequest {
	var raw []byte
	if obj != "" {
		raw = []byte(obj)
	}
	return &admissionv1.AdmissionRequest{
		UID: "req-2", Kind: metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
		Operation: op, Namespace: "shop", Name: "reviews", Object: runtime.RawExtension{Raw: raw},
	}
}

func TestValidateEndpoint(t *testing.T) {
	h := testServer(t).Handler()
	const meta = `"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews","namespace":"shop","uid":"u","generation":1,"creationTimestamp":"2026-01-02T03:04:05Z","managedFields":[]}`
	cases := []struct {
		name    string
		op      admissionv1.Operation
		obj     string
		allowed bool
		message string
	}{
		{"valid", admissionv1.Create, `{` + meta + `,"spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"}}]}]}}`, true, ""},
		{"semantic error", admissionv1.Update, `{` + meta + `,"spec":{"hosts":["a_b"],"http":[{"route":[{"destination":{"host":"reviews"}}]}]}}`, false,
			`invalid VirtualService shop/reviews: spec.hosts[0]: invalid hostname "a_b"`},
		{"decode error", admissionv1.Create, `{` + meta + `,"spec":{"hosts":["reviews"],"htp":[]}}`, false, `spec.htp: unknown field`},
		{"delete", admissionv1.Delete, ``, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := review(t, h, ValidatePath, vsRequest(tc.op, tc.obj))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.message != "" && !strings.Contains(resp.Result.Message, tc.message) {
				t.Errorf("message %q, want it to contain %q", resp.Result.Message, tc.message)
			}
		})
	}
}

func TestReviewRequestErrors(t *testing.T) {
	h := testServer(t).Handler()
	for _, tc := range []struct {
		name, method, ctype, body string
		want                      int
	}{
		{"get", http.MethodGet, "application/json", "", http.StatusMethodNotAllowed},
		{"content type", http.MethodPost, "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"not json", http.MethodPost, "application/json", "{", http.StatusBadRequest},
		{"no request", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest},
	} {
		r := httptest.NewRequest(tc.method, ValidatePath, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
}

// TestCertsRotation: the certificate is reused until half its lifetime,
// then replaced; a change of the CA's roots replaces it at once.
func TestCertsRotation(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := testAuthority(t, clock)
	certs, err := NewCerts(CertsConfig{Authority: a, DNSNames: []string{"istiod.istio-system.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, TTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	first, err := certs.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Leaf.DNSNames; len(got) != 1 || got[0] != "istiod.istio-system.svc" {
		t.Errorf("DNS names %v", got)
	}
	if _, err := first.Leaf.Verify(x509Opts(a, "istiod.istio-system.svc", now)); err != nil {
		t.Errorf("certificate does not verify under the caBundle: %v", err)
	}
	now = now.Add(20 * time.Minute)
	if again, _ := certs.Current(); again != first {
		t.Errorf("certificate replaced before half its lifetime")
	}
	now = now.Add(20 * time.Minute) // past NotBefore (backdated 5m) + 30m
	renewed, err := certs.Current()
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first {
		t.Errorf("certificate not renewed after half its lifetime")
	}
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetIssuer(is); err != nil {
		t.Fatal(err)
	}
	rotated, err := certs.Current()
	if err != nil {
		t.Fatal(err)
	}
	if rotated == renewed {
		t.Errorf("certificate not reissued after the CA's roots changed")
	}
	if _, err := rotated.Leaf.Verify(x509Opts(a, "istiod.istio-system.svc", now)); err != nil {
		t.Errorf("reissued certificate does not verify under the new caBundle: %v", err)
	}
}

func TestBundleSyncer(t *testing.T) {
	target := Target{Service: &ServiceRef{Namespace: "istio-system", Name: "istiod"}}
	mut, err := MutatingConfig(MutatingName, target)
	if err != nil {
		t.Fatal(err)
	}
	val, err := ValidatingConfig(ValidatingName, target, schema.Istio())
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(mut, val)
	bundle := []byte("bundle-1")
	s, err := NewBundleSyncer(BundleConfig{Client: client, Mutating: MutatingName, Validating: ValidatingName, Bundle: func() []byte { return bundle }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	check := func(want string) {
		t.Helper()
		m, _ := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, MutatingName, metav1.GetOptions{})
		v, _ := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, ValidatingName, metav1.GetOptions{})
		for _, w := range m.Webhooks {
			if string(w.ClientConfig.CABundle) != want {
				t.Errorf("mutating %s caBundle %q, want %q", w.Name, w.ClientConfig.CABundle, want)
			}
		}
		if got := string(v.Webhooks[0].ClientConfig.CABundle); got != want {
			t.Errorf("validating caBundle %q, want %q", got, want)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check("bundle-1")
	writes := len(client.Actions())
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions()[writes:] {
		if a.GetVerb() != "get" {
			t.Errorf("an unchanged bundle caused a %s", a.GetVerb())
		}
	}
	bundle = []byte("bundle-2")
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	check("bundle-2")

	// Configurations not installed yet are not an error.
	empty, _ := NewBundleSyncer(BundleConfig{Client: fake.NewClientset(), Mutating: "x", Validating: "y", Bundle: func() []byte { return bundle }})
	if err := empty.Sync(ctx); err != nil {
		t.Errorf("missing configurations: %v", err)
	}
}

func TestConfigs(t *testing.T) {
	if _, err := MutatingConfig("m", Target{}); err == nil {
		t.Errorf("no target accepted")
	}
	if _, err := MutatingConfig("m", Target{URL: "http://x"}); err == nil {
		t.Errorf("plain http URL accepted")
	}
	m, err := MutatingConfig("m", Target{Service: &ServiceRef{Namespace: "istio-system", Name: "istiod"}, Revision: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Webhooks) != 1 || m.Webhooks[0].Name != "rev.namespace.sidecar-injector.istio.io" {
		t.Errorf("a non-default revision gets only the revision webhook, got %d", len(m.Webhooks))
	}
	v, err := ValidatingConfig("v", Target{URL: "https://127.0.0.1:1"}, schema.Istio())
	if err != nil {
		t.Fatal(err)
	}
	var resources []string
	for _, r := range v.Webhooks[0].Rules {
		resources = append(resources, r.Resources...)
	}
	if len(resources) != len(schema.Istio().All()) {
		t.Errorf("validating rules cover %v, want every Istio kind", resources)
	}
	if *v.Webhooks[0].FailurePolicy != "Fail" || *m.Webhooks[0].FailurePolicy != "Fail" {
		t.Errorf("failure policy is not Fail")
	}
}

func TestRevisionNames(t *testing.T) {
	for _, tc := range []struct{ rev, mutating, validating string }{
		{"", MutatingName, ValidatingName},
		{"default", MutatingName, ValidatingName},
		{"canary", MutatingName + "-canary", ValidatingName + "-canary"},
	} {
		if got := MutatingNameFor(tc.rev); got != tc.mutating {
			t.Errorf("MutatingNameFor(%q) = %q, want %q", tc.rev, got, tc.mutating)
		}
		if got := ValidatingNameFor(tc.rev); got != tc.validating {
			t.Errorf("ValidatingNameFor(%q) = %q, want %q", tc.rev, got, tc.validating)
		}
	}
}
