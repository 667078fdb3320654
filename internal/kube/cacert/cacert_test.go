package cacert

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

const ns = "istio-system"

func mustCreateNS(t *testing.T, kc kubernetes.Interface, name string) {
	t.Helper()
	if _, err := kc.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestCAAndTokensAPIServer runs the CA Secret logic and the token reviewer
// against a real API server.
func TestCAAndTokensAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	kc := c.Client.Kube
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mustCreateNS(t, kc, ns)

	t.Run("replicas racing share one generated root", func(t *testing.T) {
		const n = 4
		res := make([]*Loaded, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { res[i], errs[i] = Load(ctx, kc, ns, ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now()) })
		}
		wg.Wait()
		created := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("replica %d: %v", i, errs[i])
			}
			if res[i].Created {
				created++
			}
			if !res[i].Issuer.Root.Equal(res[0].Issuer.Root) {
				t.Errorf("replica %d signs under another root", i)
			}
			if res[i].Secret != ns+"/"+SelfSignedSecret {
				t.Errorf("replica %d: from %s", i, res[i].Secret)
			}
		}
		if created != 1 {
			t.Errorf("%d replicas created the root, want 1", created)
		}
		sec, err := kc.CoreV1().Secrets(ns).Get(ctx, SelfSignedSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{ca.CertFile, ca.KeyFile, ca.ChainFile, ca.RootFile} {
			if len(sec.Data[k]) == 0 {
				t.Errorf("Secret %s: key %s empty", SelfSignedSecret, k)
			}
		}
	})

	self, err := Read(ctx, kc, ns, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Config{Issuer: self.Issuer, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	follower := NewFollower(FollowerConfig{Client: kc, Namespace: ns, Authority: authority})
	if follower.Check(ctx) {
		t.Error("Check changed the issuer while nothing changed")
	}

	t.Run("a plugged-in cacerts in cert-manager's form takes precedence", func(t *testing.T) {
		plugged, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f, err := plugged.PEM()
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: PluggedSecret},
			Data:       map[string][]byte{"tls.crt": f.Cert, "tls.key": f.Key, "ca.crt": f.Root},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := Load(ctx, kc, ns, ca.SelfSigned{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if l.Form != "cert-manager" || l.Secret != ns+"/"+PluggedSecret || !l.Issuer.Root.Equal(plugged.Root) || l.Created {
			t.Fatalf("Load = %s %s created=%v, want the plugged-in CA", l.Secret, l.Form, l.Created)
		}
		if !follower.Check(ctx) || !authority.Issuer().Root.Equal(plugged.Root) {
			t.Error("the follower did not switch to the plugged-in CA")
		}
	})

	t.Run("a broken cacerts is an error naming it and the last issuer keeps serving", func(t *testing.T) {
		sec, err := kc.CoreV1().Secrets(ns).Get(ctx, PluggedSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := authority.Issuer()
		sec.Data = map[string][]byte{ca.CertFile: []byte("junk")}
		if _, err := kc.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err = Load(ctx, kc, ns, ca.SelfSigned{}, time.Now())
		if err == nil || !strings.Contains(err.Error(), "Secret istio-system/cacerts") || !strings.Contains(err.Error(), ca.KeyFile) {
			t.Errorf("Load = %v, want an error naming the Secret and the missing key", err)
		}
		if follower.Check(ctx) || authority.Issuer() != before {
			t.Error("a broken Secret replaced the issuer")
		}
	})

	t.Run("token review", func(t *testing.T) {
		mustCreateNS(t, kc, "shop")
		if _, err := kc.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		token := func(aud string) string {
			tr, err := kc.CoreV1().ServiceAccounts("shop").CreateToken(ctx, "web", &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr.To[int64](600)},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status.Token
		}
		r := Reviewer{Client: kc}
		gotNS, gotSA, err := r.Review(ctx, token(DefaultAudience))
		if err != nil || gotNS != "shop" || gotSA != "web" {
			t.Errorf("Review(istio-ca token) = %q, %q, %v; want shop, web", gotNS, gotSA, err)
		}
		if _, _, err := r.Review(ctx, token("other")); err == nil {
			t.Error("a token for another audience was accepted")
		}
		if _, _, err := r.Review(ctx, "a.b.c"); err == nil {
			t.Error("a forged token was accepted")
		}
	})
}

func TestParseForms(t *testing.T) {
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f, err := is.PEM()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		form    string
		wantErr string
	}{
		{"istio", map[string][]byte{ca.CertFile: f.Cert, ca.KeyFile: f.Key, ca.ChainFile: f.Chain, ca.RootFile: f.Root}, "istio", ""},
		{"istio without chain", map[string][]byte{ca.CertFile: f.Cert, ca.KeyFile: f.Key, ca.RootFile: f.Root}, "istio", ""},
		{"cert-manager", map[string][]byte{"tls.crt": f.Cert, "tls.key": f.Key, "ca.crt": f.Root}, "cert-manager", ""},
		{"istio missing root", map[string][]byte{ca.CertFile: f.Cert, ca.KeyFile: f.Key}, "", "key root-cert.pem missing"},
		{"cert-manager missing ca.crt", map[string][]byte{"tls.crt": f.Cert, "tls.key": f.Key}, "", "key ca.crt missing"},
		{"wrong key", map[string][]byte{"tls.crt": f.Cert, "tls.key": []byte("junk"), "ca.crt": f.Root}, "", "ca-key.pem"},
		{"unknown", map[string][]byte{"x": nil}, "", "neither ca-cert.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parse(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cacerts"}, Data: tc.data}, time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "Secret ns/cacerts") {
					t.Fatalf("err = %v, want one naming the Secret and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Form != tc.form || !l.Issuer.Root.Equal(is.Root) {
				t.Errorf("form %s", l.Form)
			}
		})
	}
}
