package tlssock_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
)

// BenchmarkHandshake measures one full mutual-TLS handshake between the
// contexts Istio gives a sidecar pair (ISTIO_MUTUAL: the client's SVID
// "default", its bundle "ROOTCA" and the server's exact SPIFFE ID; the
// server's STRICT inbound: client certificate required, the trust
// domain's prefix), with ECDSA P-256 SVIDs, on a new loopback TCP
// connection: both sides' CPU, signatures and chain verification
// included. "TCPOnly" is the same connection without TLS, the baseline to
// subtract. The proxy offers no resumption (the client keeps no session
// cache, and each server handshake has its own tls.Config, hence its own
// ticket keys), so every new connection between sidecars pays this.
func BenchmarkHandshake(b *testing.B) {
	ca := tlstest.NewCA(b, "mesh")
	srvStore := tlstest.Mesh(ca.SPIFFE(b, "cluster.local", "shop", "shop"), ca)
	cliStore := tlstest.Mesh(ca.SPIFFE(b, "cluster.local", "web", "frontend"), ca)
	for _, tc := range []struct {
		name string
		max  tlsv3.TlsParameters_TlsProtocol
	}{
		{"TLS1.3", tlsv3.TlsParameters_TLS_AUTO}, // Envoy's and Istio's default maximum
		{"TLS1.2", tlsv3.TlsParameters_TLSv1_2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srvCtx := &tlsv3.DownstreamTlsContext{
				RequireClientCertificate: wrapperspb.Bool(true),
				CommonTlsContext: &tlsv3.CommonTlsContext{
					AlpnProtocols:                  []string{"istio-peer-exchange", "h2", "http/1.1"},
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
					ValidationContextType:          sans(uriPrefix("spiffe://cluster.local/")),
					TlsParams:                      &tlsv3.TlsParameters{TlsMaximumProtocolVersion: tc.max},
				},
			}
			cliCtx := meshClient("spiffe://cluster.local/ns/shop/sa/shop")
			cliCtx.CommonTlsContext.TlsParams = &tlsv3.TlsParameters{TlsMaximumProtocolVersion: tc.max}
			srv, err := tlssock.CompileServer(benchSocket(b, srvCtx))
			if err != nil {
				b.Fatal(err)
			}
			cli, err := tlssock.CompileClient(benchSocket(b, cliCtx))
			if err != nil {
				b.Fatal(err)
			}
			want := uint16(tls.VersionTLS13)
			if tc.max == tlsv3.TlsParameters_TLSv1_2 {
				want = tls.VersionTLS12
			}
			ln := listen(b)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				errc := make(chan error, 1)
				go func() {
					raw, err := ln.Accept()
					if err != nil {
						errc <- err
						return
					}
					defer raw.Close()
					_, err = srv.Handshake(ctx, raw, srvStore)
					errc <- err
				}()
				raw, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				cc, err := cli.Handshake(ctx, raw, cliStore, nil)
				if err != nil {
					b.Fatalf("client handshake: %v", err)
				}
				// TLS 1.3: the server verifies the client's certificate
				// after the client is done; wait for it.
				if err := <-errc; err != nil {
					b.Fatalf("server handshake: %v", err)
				}
				if v := cc.ConnectionState().Version; v != want {
					b.Fatalf("negotiated version %x, want %x", v, want)
				}
				raw.Close()
			}
		})
	}
	b.Run("TCPOnly", func(b *testing.B) {
		ln := listen(b)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			errc := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err == nil {
					raw.Close()
				}
				errc <- err
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			raw.Close()
		}
	})
}

// benchSocket is socket for benchmarks.
func benchSocket(b *testing.B, m proto.Message) *corev3.TransportSocket {
	b.Helper()
	a, err := anypb.New(m)
	if err != nil {
		b.Fatal(err)
	}
	return &corev3.TransportSocket{Name: tlssock.Name, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func listen(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}
