package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube/cacert"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
	"github.com/trellismesh/trellis/internal/kube/rootcm"
	"github.com/trellismesh/trellis/internal/kube/webhook"
	"github.com/trellismesh/trellis/internal/testing/runready"
)

// startPlane runs a full control plane on cluster c (CA, webhooks,
// leader election with short timings) and returns it once ready, with a
// function that stops it.
func startPlane(t *testing.T, c *kubetest.Cluster, id string) (*Server, func()) {
	t.Helper()
	s, err := New(Config{
		Kube:              c.Client,
		XDSAddress:        "127.0.0.1:0",
		MonitoringAddress: "-",
		SecureGRPCAddress: "127.0.0.1:0",
		Debounce:          10 * time.Millisecond,
		Webhook: &WebhookConfig{
			Address: "127.0.0.1:0",
			Injector: inject.Config{
				Image: "ghcr.io/trellismesh/trellis-proxy:test", XDSAddress: "istiod.istio-system.svc:15012", CAAddress: "istiod.istio-system.svc:15012",
			},
			NativeSidecarAuto: true,
			IPs:               []net.IP{net.IPv4(127, 0, 0, 1)},
			BundleInterval:    200 * time.Millisecond,
		},
		Leader: LeaderConfig{
			Identity:      id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			RootInterval: 200 * time.Millisecond,
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", id),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	stop := runready.Start(t, s, kubeWait, id)
	eventuallyKube(t, id+" webhook listening", func() error {
		if s.WebhookAddr() == nil {
			return fmt.Errorf("no address yet")
		}
		return nil
	})
	return s, stop
}

// TestKubernetesControlPlane is the cluster mode's end-to-end proof: the CA
// in a Secret shared by two replicas, one leader that publishes the root
// ConfigMap and keeps the webhook's caBundle, a Pod injected through the
// webhook, and service-account tokens authenticating CreateCertificate.
func TestKubernetesControlPlane(t *testing.T) {
	c := kubetest.Start(t)
	kubetest.InstallCRDs(t, c)
	kc := c.Client.Kube
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{inject.NamespaceLabel: "enabled"}}},
	} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	s1, stop1 := startPlane(t, c, "replica-1")
	s2, stop2 := startPlane(t, c, "replica-2")

	// Both replicas sign under the root stored in istio-ca-secret.
	sec, err := kc.CoreV1().Secrets("istio-system").Get(ctx, cacert.SelfSignedSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the CA Secret: %v", err)
	}
	root := sec.Data[ca.RootFile]
	for _, s := range []*Server{s1, s2} {
		if string(s.authority.Roots().PEM()) != string(root) {
			t.Fatal("a replica does not use the root in istio-ca-secret")
		}
	}

	// Exactly one leader.
	var leader, follower *Server
	eventuallyKube(t, "a leader", func() error {
		switch {
		case s1.Leading() && s2.Leading():
			t.Fatal("both replicas lead")
		case s1.Leading():
			leader, follower = s1, s2
		case s2.Leading():
			leader, follower = s2, s1
		default:
			return fmt.Errorf("no leader")
		}
		return nil
	})

	// The root ConfigMap reaches a new namespace.
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyKube(t, "the root ConfigMap in namespace fresh", func() error {
		cm, err := kc.CoreV1().ConfigMaps("fresh").Get(ctx, rootcm.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[rootcm.Key] != string(root) {
			return fmt.Errorf("holds %q", cm.Data[rootcm.Key])
		}
		return nil
	})

	// The webhook: registered by URL without a caBundle; the leader's
	// syncer fills it in and the API server injects through it.
	mut, err := webhook.MutatingConfig(webhook.MutatingName, webhook.Target{URL: "https://" + leader.WebhookAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mut, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	val, err := webhook.ValidatingConfig(webhook.ValidatingName, webhook.Target{URL: "https://" + follower.WebhookAddr().String()}, schema.Istio())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, val, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", GenerateName: "web-"},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
	var injected *corev1.Pod
	eventuallyKube(t, "a Pod injected through the webhook", func() error {
		p, err := kc.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if p.Annotations[inject.StatusAnnotation] == "" {
			return fmt.Errorf("not injected")
		}
		injected = p
		return nil
	})
	// kube-apiserver 1.31: the proxy is a native sidecar.
	native := false
	for _, ic := range injected.Spec.InitContainers {
		if ic.Name == inject.ProxyContainer && ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			native = true
		}
	}
	if !native {
		t.Errorf("proxy not injected as a native sidecar on Kubernetes 1.31: init containers %v", names(injected.Spec.InitContainers))
	}
	got, err := kc.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhook.ValidatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Webhooks[0].ClientConfig.CABundle) != string(root) {
		t.Error("the validating webhook's caBundle was not synced")
	}

	// Service-account tokens: a certificate for the token's own account
	// whatever the CSR asks; another audience refused.
	if _, err := kc.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(aud string) string {
		tr, err := kc.CoreV1().ServiceAccounts("shop").CreateToken(ctx, "web", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr(int64(600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	for _, s := range []*Server{follower, leader} {
		chain, err := createCertificate(ctx, s, pool, token(cacert.DefaultAudience), "spiffe://cluster.local/ns/kube-system/sa/admin")
		if err != nil {
			t.Fatalf("CreateCertificate with an istio-ca token: %v", err)
		}
		if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != "spiffe://cluster.local/ns/shop/sa/web" {
			t.Errorf("certificate for %v, want spiffe://cluster.local/ns/shop/sa/web", chain[0].URIs)
		}
		if _, err := createCertificate(ctx, s, pool, token("other"), ""); status.Code(err) != codes.Unauthenticated {
			t.Errorf("CreateCertificate with a token for another audience: %v, want Unauthenticated", err)
		}
	}

	// The leader stops: the other replica takes over within a bound.
	if leader == s1 {
		stop1()
	} else {
		stop2()
	}
	start := time.Now()
	eventuallyKube(t, "the remaining replica to lead", func() error {
		if !follower.Leading() {
			return fmt.Errorf("not leading")
		}
		return nil
	})
	t.Logf("take-over after %v", time.Since(start))
	// The new leader writes: a namespace created now gets its ConfigMap.
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyKube(t, "the root ConfigMap in namespace later", func() error {
		_, err := kc.CoreV1().ConfigMaps("later").Get(ctx, rootcm.Name, metav1.GetOptions{})
		return err
	})
}

// createCertificate asks s's CA for a certificate with a bearer token and
// a CSR asking for uri (empty: none).
func createCertificate(ctx context.Context, s *Server, roots *x509.CertPool, token, uri string) ([]*x509.Certificate, error) {
	cc, err := grpc.NewClient(s.SecureGRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, err
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	})
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, p := range resp.CertChain {
		b, _ := pem.Decode([]byte(p))
		if b == nil {
			return nil, fmt.Errorf("chain entry not PEM")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	return chain, nil
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}
