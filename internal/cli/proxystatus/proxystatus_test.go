package proxystatus

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellismesh/trellis/internal/xds/server"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update to create it)", name, err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("golden %s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

var now = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)

// fixture is what /debug/syncz returns for three streams: one synced, one
// with a NACKed LDS and a STALE RDS, one proxyless client that asked for
// no routes.
func fixture() []server.SyncStatus {
	typ := func(name, status, nack string) server.XDSSync {
		x := server.XDSSync{Type: name, Status: status, SentVersion: "5", SentNonce: "a", AckedVersion: "5", AckedNonce: "a", LastNACK: nack}
		switch status {
		case server.StateStale:
			x.SentVersion, x.SentNonce = "6", "b"
		case server.StateNACKed:
			x.SentVersion, x.SentNonce, x.AckedVersion, x.AckedNonce = "6", "c", "", ""
		}
		return x
	}
	return []server.SyncStatus{
		{Proxy: "sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local", Name: "productpage-v1.default",
			ConnectionID: "sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local-1", ProxyType: "sidecar",
			ClusterID: "Kubernetes", ControlPlane: "cp-0", ProxyVersion: "1.31.0", Delta: true, ConnectedAt: now.Add(-3 * time.Hour),
			XDS: []server.XDSSync{typ("CDS", server.StateSynced, ""), typ("EDS", server.StateSynced, ""), typ("LDS", server.StateSynced, ""), typ("RDS", server.StateSynced, "")}},
		{Proxy: "sidecar~10.0.0.3~reviews-v1.default~default.svc.cluster.local", Name: "reviews-v1.default",
			ConnectionID: "sidecar~10.0.0.3~reviews-v1.default~default.svc.cluster.local-2", ProxyType: "sidecar",
			ControlPlane: "cp-0", ConnectedAt: now.Add(-42 * time.Second),
			XDS: []server.XDSSync{typ("CDS", server.StateSynced, "old cluster error"), typ("EDS", server.StateSynced, ""),
				typ("LDS", server.StateNACKed, "listener 0.0.0.0_9080: unknown filter"), typ("RDS", server.StateStale, "")}},
		{Proxy: "sidecar~10.0.0.9~client.default~default.svc.cluster.local", Name: "client.default",
			ConnectionID: "sidecar~10.0.0.9~client.default~default.svc.cluster.local-3", ProxyType: "sidecar",
			ControlPlane: "cp-0", ProxyVersion: "gRPC Go 1.79.0", ConnectedAt: now.Add(-90 * time.Minute),
			XDS: []server.XDSSync{typ("LDS", server.StateSynced, "")}},
	}
}

func TestTableGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		wide bool
	}{{"table", false}, {"wide", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeTable(&buf, fixture(), tc.wide, now); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, buf.Bytes())
		})
	}
}

func TestDetailGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDetail(&buf, Select(fixture(), "reviews-v1.default")); err != nil {
		t.Fatal(err)
	}
	golden(t, "detail", buf.Bytes())
}

func TestSelect(t *testing.T) {
	st := fixture()
	for _, name := range []string{"reviews-v1.default", st[1].Proxy, st[1].ConnectionID} {
		if got := Select(st, name); len(got) != 1 || got[0].Name != "reviews-v1.default" {
			t.Errorf("Select(%q) = %d streams", name, len(got))
		}
	}
	if got := Select(st, "reviews-v1"); len(got) != 0 {
		t.Errorf("a partial name matched %d streams", len(got))
	}
}
