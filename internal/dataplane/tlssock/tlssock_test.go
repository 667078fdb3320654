package tlssock_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
)

func socket(t *testing.T, m proto.Message) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: tlssock.Name, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func sans(ms ...*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext_CombinedValidationContext {
	return &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
		ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
	}}
}

func uri(exact string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: exact}}}
}

func uriPrefix(p string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}}
}

// meshServer is Istio's inbound context: default/ROOTCA, spiffe prefix.
func meshServer() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType:          sans(uriPrefix("spiffe://cluster.local/")),
			TlsParams: &tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				CipherSuites:              []string{"ECDHE-ECDSA-AES256-GCM-SHA384", "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"},
			},
		},
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(d *tlsv3.DownstreamTlsContext)
		want   string
	}{
		{"no certificate", func(d *tlsv3.DownstreamTlsContext) { d.CommonTlsContext.TlsCertificateSdsSecretConfigs = nil }, "a server needs a certificate"},
		{"unknown cipher", func(d *tlsv3.DownstreamTlsContext) {
			d.CommonTlsContext.TlsParams.CipherSuites = []string{"ECDHE-ECDSA-AES256-GCM-SHA384", "DES-CBC3-SHA"}
		}, `common_tls_context: tls_params: cipher_suites: [1]: unknown or unsupported cipher suite "DES-CBC3-SHA"`},
		{"min above max", func(d *tlsv3.DownstreamTlsContext) {
			d.CommonTlsContext.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_3
			d.CommonTlsContext.TlsParams.TlsMaximumProtocolVersion = tlsv3.TlsParameters_TLSv1_2
		}, "tls_minimum_protocol_version TLSv1_3 is above tls_maximum_protocol_version TLSv1_2"},
		{"bad regex", func(d *tlsv3.DownstreamTlsContext) {
			d.CommonTlsContext.ValidationContextType = sans(&tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}})
		}, "combined_validation_context.default_validation_context: match_typed_subject_alt_names[0]: matcher: safe_regex"},
		{"spki pinning", func(d *tlsv3.DownstreamTlsContext) {
			d.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.VerifyCertificateSpki = []string{"x"}
		}, "verify_certificate_spki is not supported"},
		{"inline trust bundle", func(d *tlsv3.DownstreamTlsContext) {
			d.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}
		}, "validation_context: inline trust bundles are not supported"},
		{"client cert without validation", func(d *tlsv3.DownstreamTlsContext) { d.CommonTlsContext.ValidationContextType = nil }, "require_client_certificate needs a validation context"},
		{"ecdh curves", func(d *tlsv3.DownstreamTlsContext) { d.CommonTlsContext.TlsParams.EcdhCurves = []string{"X25519"} }, "tls_params: ecdh_curves is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := meshServer()
			tc.mutate(d)
			_, err := tlssock.CompileServer(socket(t, d))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), `transport_socket "envoy.transport_sockets.tls": DownstreamTlsContext: `) {
				t.Errorf("error %q does not name the socket and context", err)
			}
		})
	}
	if _, err := tlssock.CompileServer(socket(t, meshServer())); err != nil {
		t.Fatalf("Istio's inbound context: %v", err)
	}
	_, err := tlssock.CompileClient(socket(t, &tlsv3.UpstreamTlsContext{AutoHostSni: true}))
	if err == nil || !strings.Contains(err.Error(), "UpstreamTlsContext: auto_host_sni is not supported") {
		t.Errorf("auto_host_sni: %v", err)
	}
}

// handshake runs server and client over a real TCP connection and returns
// both results.
func handshake(t *testing.T, srv *tlssock.Server, srvStore *tlstest.Store, cli *tlssock.Client, cliStore *tlstest.Store, alpn []string) (*tls.Conn, error, *tls.Conn, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *tls.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			ch <- res{err: err}
			return
		}
		c, err := srv.Handshake(ctx, raw, srvStore)
		if err != nil {
			raw.Close()
		} else {
			t.Cleanup(func() { c.Close() })
		}
		ch <- res{c, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	cc, cerr := cli.Handshake(ctx, raw, cliStore, alpn)
	r := <-ch
	return r.c, r.err, cc, cerr
}

func client(t *testing.T, u *tlsv3.UpstreamTlsContext) *tlssock.Client {
	t.Helper()
	c, err := tlssock.CompileClient(socket(t, u))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func meshClient(sanExact string) *tlsv3.UpstreamTlsContext {
	return &tlsv3.UpstreamTlsContext{
		Sni: "outbound_.80_._.svc.default.svc.cluster.local",
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType:          sans(uri(sanExact)),
		},
	}
}

func TestHandshake(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	srvStore := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "shop", "shop"), ca)
	cliStore := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "web", "frontend"), ca)
	srv, err := tlssock.CompileServer(socket(t, meshServer()))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("mutual, no ALPN in common", func(t *testing.T) {
		sc, serr, cc, cerr := handshake(t, srv, srvStore, client(t, meshClient("spiffe://cluster.local/ns/shop/sa/shop")), cliStore, nil)
		if serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
		st := sc.ConnectionState()
		if got := tlssock.PeerIdentity(&st); got != "spiffe://cluster.local/ns/web/sa/frontend" {
			t.Errorf("server saw %q", got)
		}
		if st.NegotiatedProtocol != "" || cc.ConnectionState().NegotiatedProtocol != "" {
			t.Errorf("negotiated %q", st.NegotiatedProtocol)
		}
	})
	t.Run("ALPN override", func(t *testing.T) {
		sc, serr, _, cerr := handshake(t, srv, srvStore, client(t, meshClient("spiffe://cluster.local/ns/shop/sa/shop")), cliStore, []string{"istio-h2", "istio", "h2"})
		if serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
		if got := sc.ConnectionState().NegotiatedProtocol; got != "h2" {
			t.Errorf("negotiated %q, want h2", got)
		}
	})
	t.Run("secure naming", func(t *testing.T) {
		_, _, _, cerr := handshake(t, srv, srvStore, client(t, meshClient("spiffe://cluster.local/ns/shop/sa/other")), cliStore, nil)
		if tlssock.Reason(cerr) != tlssock.ReasonSANMismatch {
			t.Fatalf("client error %v (reason %q)", cerr, tlssock.Reason(cerr))
		}
	})
	t.Run("server from another root", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		_, _, _, cerr := handshake(t, srv, tlstest.Mesh(other.SPIFFE(t, "cluster.local", "shop", "shop"), ca),
			client(t, meshClient("spiffe://cluster.local/ns/shop/sa/shop")), cliStore, nil)
		if tlssock.Reason(cerr) != tlssock.ReasonUnknownCA {
			t.Fatalf("client error %v (reason %q)", cerr, tlssock.Reason(cerr))
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		u := meshClient("")
		u.CommonTlsContext.ValidationContextType = nil
		other := tlstest.NewCA(t, "other")
		_, serr, _, cerr := handshake(t, srv, tlstest.Mesh(other.SPIFFE(t, "x", "y", "z"), ca), client(t, u), cliStore, nil)
		if cerr != nil {
			t.Fatalf("client without validation context: %v (server %v)", cerr, serr)
		}
	})
	t.Run("DNS wildcard and IP SANs", func(t *testing.T) {
		dnsStore := tlstest.Mesh(ca.Issue(t, tlstest.Leaf{DNSNames: []string{"*.example.com"}, IPs: []net.IP{net.ParseIP("192.0.2.1")}}), ca)
		for _, m := range []*tlsv3.SubjectAltNameMatcher{
			{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "api.example.com"}}},
			{SanType: tlsv3.SubjectAltNameMatcher_IP_ADDRESS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "192.0.2.1"}}},
		} {
			u := meshClient("")
			u.CommonTlsContext.ValidationContextType = sans(m)
			plain := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}}}}
			s, err := tlssock.CompileServer(socket(t, plain))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, cerr := handshake(t, s, dnsStore, client(t, u), cliStore, nil); cerr != nil {
				t.Errorf("%v: %v", m.GetSanType(), cerr)
			}
		}
	})
	t.Run("client certificate rotation", func(t *testing.T) {
		store := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "web", "v1"), ca)
		cli := client(t, meshClient("spiffe://cluster.local/ns/shop/sa/shop"))
		sc, serr, _, _ := handshake(t, srv, srvStore, cli, store, nil)
		if serr != nil {
			t.Fatal(serr)
		}
		st := sc.ConnectionState()
		if got := tlssock.PeerIdentity(&st); got != "spiffe://cluster.local/ns/web/sa/v1" {
			t.Fatalf("first: %q", got)
		}
		store.SetCertificate("default", ca.SPIFFE(t, "cluster.local", "web", "v2"))
		sc, serr, _, _ = handshake(t, srv, srvStore, cli, store, nil)
		if serr != nil {
			t.Fatal(serr)
		}
		st = sc.ConnectionState()
		if got := tlssock.PeerIdentity(&st); got != "spiffe://cluster.local/ns/web/sa/v2" {
			t.Errorf("after rotation: %q", got)
		}
	})
}

// TestHandshakeUsage: a peer certificate must allow the use its side of
// the handshake makes of it (SECURITY.md D7): extended key usage clientAuth
// for a client and serverAuth for a server, key usage digitalSignature.
func TestHandshakeUsage(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	srv, err := tlssock.CompileServer(socket(t, meshServer()))
	if err != nil {
		t.Fatal(err)
	}
	const shop = "spiffe://cluster.local/ns/shop/sa/shop"
	leaf := func(uri string, ku x509.KeyUsage, eku ...x509.ExtKeyUsage) *tls.Certificate {
		return ca.Issue(t, tlstest.Leaf{URIs: []string{uri}, KeyUsage: ku, ExtKeyUsage: eku})
	}
	goodServer := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "shop", "shop"), ca)
	goodClient := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "web", "frontend"), ca)
	const ds = x509.KeyUsageDigitalSignature
	for _, tc := range []struct {
		name               string
		srvStore, cliStore *tlstest.Store
		serverErr          bool // the server refuses the client's certificate
		clientErr          bool // the client refuses the server's certificate
	}{
		{"client certificate for client auth only", goodServer, tlstest.Mesh(leaf("spiffe://cluster.local/ns/web/sa/frontend", ds, x509.ExtKeyUsageClientAuth), ca), false, false},
		{"server certificate for server auth only", tlstest.Mesh(leaf(shop, ds, x509.ExtKeyUsageServerAuth), ca), goodClient, false, false},
		{"client certificate for server auth only", goodServer, tlstest.Mesh(leaf("spiffe://cluster.local/ns/web/sa/frontend", ds, x509.ExtKeyUsageServerAuth), ca), true, false},
		{"client certificate without digitalSignature", goodServer, tlstest.Mesh(leaf("spiffe://cluster.local/ns/web/sa/frontend", x509.KeyUsageKeyEncipherment), ca), true, false},
		{"server certificate for client auth only", tlstest.Mesh(leaf(shop, ds, x509.ExtKeyUsageClientAuth), ca), goodClient, false, true},
		{"client certificate with a NUL in its URI SAN", goodServer, tlstest.Mesh(ca.Issue(t, tlstest.Leaf{RawURI: "spiffe://cluster.local/ns/web/sa/frontend\x00.evil"}), ca), true, false},
		{"server certificate without digitalSignature", tlstest.Mesh(leaf(shop, x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement), ca), goodClient, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, serr, _, cerr := handshake(t, srv, tc.srvStore, client(t, meshClient(shop)), tc.cliStore, nil)
			if tc.clientErr {
				if tlssock.Reason(cerr) != tlssock.ReasonBadCertificate {
					t.Fatalf("client error %v (reason %q), want bad_certificate", cerr, tlssock.Reason(cerr))
				}
				return
			}
			if cerr != nil && !tc.serverErr {
				t.Fatalf("client: %v", cerr)
			}
			if !tc.serverErr {
				if serr != nil {
					t.Fatalf("server: %v", serr)
				}
				return
			}
			if tlssock.Reason(serr) != tlssock.ReasonBadCertificate {
				t.Fatalf("server error %v (reason %q), want bad_certificate", serr, tlssock.Reason(serr))
			}
		})
	}
}
