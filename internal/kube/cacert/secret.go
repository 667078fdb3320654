package cacert

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellismesh/trellis/internal/ca"
)

// Secret names, as Istio names them.
const (
	// SelfSignedSecret holds the CA the control plane generated.
	SelfSignedSecret = "istio-ca-secret"
	// PluggedSecret holds an operator's CA; it takes precedence.
	PluggedSecret = "cacerts"
)

// cert-manager's keys in a CA Secret it manages.
const (
	tlsCert = "tls.crt"
	tlsKey  = "tls.key"
	tlsCA   = "ca.crt"
)

// Loaded is the CA material found (or created) in the cluster.
type Loaded struct {
	Issuer *ca.Issuer
	// Secret is the Secret it came from (namespace/name); Form is "istio"
	// or "cert-manager".
	Secret string
	Form   string
	// Created is true when this call generated the self-signed root.
	Created bool
}

// Load returns the CA to sign with from the Secrets of namespace ns (see
// the package doc), generating and storing a self-signed root (opts) when
// neither Secret exists.
func Load(ctx context.Context, c kubernetes.Interface, ns string, opts ca.SelfSigned, now time.Time) (*Loaded, error) {
	l, err := Read(ctx, c, ns, now)
	if err == nil || !errors.Is(err, ErrNoCA) {
		return l, err
	}
	is, err := ca.NewSelfSigned(opts, now, rand.Reader)
	if err != nil {
		return nil, err
	}
	files, err := is.PEM()
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SelfSignedSecret, Labels: map[string]string{"app.kubernetes.io/managed-by": "trellis"}},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			ca.CertFile: files.Cert, ca.KeyFile: files.Key, ca.ChainFile: files.Chain, ca.RootFile: files.Root,
		},
	}
	_, err = c.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{FieldManager: "trellis"})
	switch {
	case err == nil:
		return &Loaded{Issuer: is, Secret: ns + "/" + SelfSignedSecret, Form: "istio", Created: true}, nil
	case apierrors.IsAlreadyExists(err):
		// Another replica won the race: use its root.
		return Read(ctx, c, ns, now)
	}
	return nil, fmt.Errorf("creating Secret %s/%s: %w", ns, SelfSignedSecret, err)
}

// ErrNoCA means neither Secret exists.
var ErrNoCA = errors.New("no CA Secret")

// Read returns the CA of the Secrets in ns without creating anything:
// cacerts first, then istio-ca-secret; ErrNoCA when neither exists.
func Read(ctx context.Context, c kubernetes.Interface, ns string, now time.Time) (*Loaded, error) {
	for _, name := range []string{PluggedSecret, SelfSignedSecret} {
		sec, err := c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
		}
		return parse(sec, now)
	}
	return nil, fmt.Errorf("%w: neither %s/%s nor %s/%s exists", ErrNoCA, ns, PluggedSecret, ns, SelfSignedSecret)
}

// parse reads a CA Secret in Istio's or cert-manager's form.
func parse(sec *corev1.Secret, now time.Time) (*Loaded, error) {
	where := "Secret " + sec.Namespace + "/" + sec.Name
	d := sec.Data
	if _, ok := d[ca.CertFile]; ok {
		for _, k := range []string{ca.KeyFile, ca.RootFile} {
			if len(d[k]) == 0 {
				return nil, fmt.Errorf("%s: key %s missing or empty (Istio's form needs %s, %s, %s, %s)", where, k, ca.CertFile, ca.KeyFile, ca.ChainFile, ca.RootFile)
			}
		}
		is, err := ca.ParseIssuer(where, ca.PEMFiles{Cert: d[ca.CertFile], Key: d[ca.KeyFile], Chain: d[ca.ChainFile], Root: d[ca.RootFile]}, now)
		if err != nil {
			return nil, err
		}
		return &Loaded{Issuer: is, Secret: sec.Namespace + "/" + sec.Name, Form: "istio"}, nil
	}
	if _, ok := d[tlsCert]; ok {
		for _, k := range []string{tlsKey, tlsCA} {
			if len(d[k]) == 0 {
				return nil, fmt.Errorf("%s: key %s missing or empty (cert-manager's form needs %s, %s, %s)", where, k, tlsCert, tlsKey, tlsCA)
			}
		}
		// tls.crt is the CA certificate, possibly followed by its chain.
		certs, err := ca.ParseCertificates(d[tlsCert])
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("%s: key %s: no certificate: %v", where, tlsCert, err)
		}
		is, err := ca.ParseIssuer(where, ca.PEMFiles{
			Cert: ca.EncodeCertificates(certs[0]), Key: d[tlsKey], Chain: d[tlsCert], Root: d[tlsCA],
		}, now)
		if err != nil {
			return nil, err
		}
		return &Loaded{Issuer: is, Secret: sec.Namespace + "/" + sec.Name, Form: "cert-manager"}, nil
	}
	return nil, fmt.Errorf("%s: neither %s (Istio's form) nor %s (cert-manager's form)", where, ca.CertFile, tlsCert)
}
