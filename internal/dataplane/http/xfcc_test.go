package http

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	nethttp "net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func peerCert(t *testing.T, uri string, dns ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{}, URIs: []*url.URL{u}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSetClientCert: the x-forwarded-client-cert entry of a mutual TLS
// peer, as Envoy writes it for Istio's inbound sidecars (APPEND_FORWARD,
// Subject/URI/DNS): appended to what the trusted peer forwarded, alone
// under SANITIZE_SET, nothing without a peer certificate or in the other
// modes.
func TestSetClientCert(t *testing.T) {
	c := peerCert(t, "spiffe://cluster.local/ns/b/sa/client", "client.b.svc")
	sum := sha256.Sum256(c.Raw)
	hash := hex.EncodeToString(sum[:])
	istio := &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	entry := "By=spiffe://cluster.local/ns/a/sa/server;Hash=" + hash + `;Subject="";URI=spiffe://cluster.local/ns/b/sa/client;DNS=client.b.svc`
	mtls := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	for _, tc := range []struct {
		name    string
		mode    hcmv3.HttpConnectionManager_ForwardClientCertDetails
		details *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails
		ts      *tls.ConnectionState
		in      []string
		want    []string
	}{
		{"append to forwarded", hcmv3.HttpConnectionManager_APPEND_FORWARD, istio, mtls, []string{"By=x;URI=y"}, []string{"By=x;URI=y," + entry}},
		{"append, none forwarded", hcmv3.HttpConnectionManager_APPEND_FORWARD, istio, mtls, nil, []string{entry}},
		{"sanitize set", hcmv3.HttpConnectionManager_SANITIZE_SET, istio, mtls, nil, []string{entry}},
		{"hash only", hcmv3.HttpConnectionManager_SANITIZE_SET, nil, mtls, nil, []string{"By=spiffe://cluster.local/ns/a/sa/server;Hash=" + hash}},
		{"no peer certificate", hcmv3.HttpConnectionManager_APPEND_FORWARD, istio, &tls.ConnectionState{}, nil, nil},
		{"plaintext", hcmv3.HttpConnectionManager_SANITIZE_SET, istio, nil, nil, nil},
		{"forward only", hcmv3.HttpConnectionManager_FORWARD_ONLY, istio, mtls, []string{"By=x"}, []string{"By=x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{cfg: settings{fwd: forwarding{clientCert: tc.mode, certDetails: tc.details}, localIdentity: "spiffe://cluster.local/ns/a/sa/server"}}
			h := nethttp.Header{}
			if tc.in != nil {
				h["X-Forwarded-Client-Cert"] = tc.in
			}
			m.setClientCert(&exchange{}, h, tc.ts)
			if got := h["X-Forwarded-Client-Cert"]; strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("x-forwarded-client-cert\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// The same peer again (another connection: another *x509.Certificate
	// with the same bytes) gets the cached entry; another peer its own.
	m := &Manager{cfg: settings{fwd: forwarding{clientCert: hcmv3.HttpConnectionManager_SANITIZE_SET, certDetails: istio}, localIdentity: "spiffe://cluster.local/ns/a/sa/server"}}
	again, _ := x509.ParseCertificate(c.Raw)
	other := peerCert(t, "spiffe://cluster.local/ns/c/sa/other")
	for i, peer := range []*x509.Certificate{c, again, other, c} {
		h := nethttp.Header{}
		m.setClientCert(&exchange{}, h, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}})
		if want := "URI=" + peer.URIs[0].String(); !strings.Contains(h.Get("X-Forwarded-Client-Cert"), want) {
			t.Errorf("request %d: %q, want the entry of %s", i, h.Get("X-Forwarded-Client-Cert"), want)
		}
	}
	// Requests of connections from different peers, interleaved, each get
	// their connection's entry; a connection served by a Manager with
	// other certificate details gets that Manager's.
	conns := []*connState{{}, {}}
	peers := []*x509.Certificate{c, other}
	hashOnly := &Manager{cfg: settings{fwd: forwarding{clientCert: hcmv3.HttpConnectionManager_SANITIZE_SET}, localIdentity: "spiffe://cluster.local/ns/a/sa/server"}}
	for i := range 6 {
		k := i % 2
		mgr := m
		if i >= 4 {
			mgr = hashOnly
		}
		h := nethttp.Header{}
		mgr.setClientCert(&exchange{cs: conns[k]}, h, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peers[k]}})
		got := h.Get("X-Forwarded-Client-Cert")
		want := clientCertEntry(mgr.cfg.localIdentity, peers[k:k+1], mgr.cfg.fwd.certDetails)
		if got != want {
			t.Errorf("request %d on connection %d: %q, want %q", i, k, got, want)
		}
	}
	// Cert and Chain are URL-encoded PEM in quotes.
	e := clientCertEntry("", []*x509.Certificate{c, c}, &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true, Chain: true})
	if !strings.HasPrefix(e, "Hash="+hash+`;Cert="-----BEGIN+CERTIFICATE-----%0A`) || strings.Count(e, "BEGIN+CERTIFICATE") != 3 {
		t.Errorf("Cert/Chain entry %q", e)
	}
}
