package server

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/xds/server/h2raw"
)

const createMethod = "/istio.v1.auth.IstioCertificateService/CreateCertificate"

// rawTLS opens a raw HTTP/2 connection to the CA over TLS (ALPN h2).
func (e *env) rawTLS(t *testing.T) *h2raw.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, &tls.Config{
		RootCAs: e.auth.Roots().Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hc, err := h2raw.Handshake(c)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// TestServerOptionsLimits drives the CA's gRPC server (built with
// ServerOptions) past its transport limits with a raw HTTP/2 client, then
// checks that a well-behaved client still gets a certificate.
func TestServerOptionsLimits(t *testing.T) {
	e := start(t, nil)

	t.Run("streams over DefaultMaxStreams are refused", func(t *testing.T) {
		c := e.rawTLS(t)
		// Each call waits for its request message, holding its stream.
		for i := range uint32(DefaultMaxStreams + 1) {
			if err := c.OpenGRPC(2*i+1, serverName, createMethod); err != nil {
				t.Fatal(err)
			}
		}
		f, err := c.Wait(10*time.Second, func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
		if err != nil {
			t.Fatalf("no RST_STREAM: %v", err)
		}
		if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 2*DefaultMaxStreams+1 || rst.ErrCode != http2.ErrCodeRefusedStream {
			t.Fatalf("RST_STREAM %d %v, want stream %d REFUSED_STREAM", rst.StreamID, rst.ErrCode, 2*DefaultMaxStreams+1)
		}
	})

	t.Run("ping flood gets GOAWAY too_many_pings", func(t *testing.T) {
		c := e.rawTLS(t)
		for i := range 5 {
			if err := c.Framer.WritePing(false, [8]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		f, err := c.Wait(10*time.Second, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), "too_many_pings") {
			t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
		}
	})

	t.Run("message claiming 4 GiB is refused from its prefix", func(t *testing.T) {
		c := e.rawTLS(t)
		if err := c.OpenGRPC(1, serverName, createMethod); err != nil {
			t.Fatal(err)
		}
		if err := c.Framer.WriteData(1, false, append(h2raw.GRPCPrefix(1<<32-1), "abc"...)); err != nil {
			t.Fatal(err)
		}
		f, err := c.Wait(10*time.Second, func(f http2.Frame) bool { _, ok := h2raw.GRPCStatus(f); return ok })
		if err != nil {
			t.Fatalf("no grpc-status: %v", err)
		}
		if code, _ := h2raw.GRPCStatus(f); code != "8" { // RESOURCE_EXHAUSTED
			t.Fatalf("grpc-status %s, want 8 (RESOURCE_EXHAUSTED)", code)
		}
	})

	// The CA still serves.
	if _, err := e.client(t, nil).CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t))}); err != nil {
		t.Fatalf("CreateCertificate after the abuse: %v", err)
	}
}
