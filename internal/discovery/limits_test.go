package discovery

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/xds/server"
	"github.com/trellismesh/trellis/internal/xds/server/h2raw"
)

// TestXDSPortLimits checks that both xDS ports enforce xdsLimits: a
// connection opening more streams than allowed has the extra ones
// refused, and a ping flood gets GOAWAY too_many_pings.
func TestXDSPortLimits(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	s := runCA(t, caDir)
	is, err := ca.LoadDir(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := xdsLimits().MaxRecvMsgSize; got != maxXDSRequestBytes {
		t.Fatalf("xDS message limit %d, want %d", got, maxXDSRequestBytes)
	}
	dial := map[string]func() (net.Conn, error){
		"plaintext": func() (net.Conn, error) { return net.Dial("tcp", s.XDSAddr().String()) },
		"secure": func() (net.Conn, error) {
			return tls.Dial("tcp", s.SecureGRPCAddr().String(), &tls.Config{
				RootCAs: is.Trusted.Pool(), ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"},
			})
		},
	}
	open := func(t *testing.T, port string) *h2raw.Conn {
		c, err := dial[port]()
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
	for _, port := range []string{"plaintext", "secure"} {
		t.Run(port+"/streams", func(t *testing.T) {
			c := open(t, port)
			n := uint32(server.DefaultMaxConcurrentStreams)
			for i := range n + 1 {
				if err := c.OpenGRPC(2*i+1, "istiod", "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"); err != nil {
					t.Fatal(err)
				}
			}
			f, err := c.Wait(waitFor, func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
			if err != nil {
				t.Fatalf("no RST_STREAM: %v", err)
			}
			if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 2*n+1 || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v, want stream %d REFUSED_STREAM", rst.StreamID, rst.ErrCode, 2*n+1)
			}
		})
		t.Run(port+"/ping flood", func(t *testing.T) {
			c := open(t, port)
			for i := range 5 {
				if err := c.Framer.WritePing(false, [8]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			f, err := c.Wait(waitFor, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
			if err != nil {
				t.Fatalf("no GOAWAY: %v", err)
			}
			if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(ga.DebugData()), "too_many_pings") {
				t.Fatalf("GOAWAY %v %q", ga.ErrCode, ga.DebugData())
			}
		})
	}
}
