package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestNode(t *testing.T) {
	n, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}, ServiceAccount: "web"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	if want := "sidecar~10.0.0.7~web-1.shop~shop.svc.cluster.local"; n.GetId() != want {
		t.Errorf("id = %q, want %q", n.GetId(), want)
	}
	md := n.GetMetadata().GetFields()
	if md["NAMESPACE"].GetStringValue() != "shop" || md["INSTANCE_IPS"].GetStringValue() != "10.0.0.7" ||
		md["SERVICE_ACCOUNT"].GetStringValue() != "web" || md["LABELS"].GetStructValue().GetFields()["app"].GetStringValue() != "web" ||
		md["INTERCEPTION_MODE"].GetStringValue() != "REDIRECT" {
		t.Errorf("metadata = %v", md)
	}
	tp, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop", InterceptionMode: "TPROXY"}.Node()
	if err != nil || tp.GetMetadata().GetFields()["INTERCEPTION_MODE"].GetStringValue() != "TPROXY" {
		t.Errorf("TPROXY node: %v, %v", tp.GetMetadata(), err)
	}
	for _, bad := range []NodeConfig{{IP: "nope", PodName: "p", Namespace: "n"}, {IP: "10.0.0.1", Namespace: "n"}, {IP: "10.0.0.1", PodName: "p"},
		{IP: "10.0.0.1", PodName: "p", Namespace: "n", InterceptionMode: "tproxy"}} {
		if _, err := bad.Node(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels("app=web, version=v1,,")
	if err != nil || len(got) != 2 || got["app"] != "web" || got["version"] != "v1" {
		t.Errorf("ParseLabels = %v, %v", got, err)
	}
	if _, err := ParseLabels("app"); err == nil {
		t.Error("label without '=': want an error")
	}
}

func TestRebind(t *testing.T) {
	s := &Sidecar{cfg: Config{BindAddress: "127.0.0.9"}}
	mk := func(addr string, bind *bool) *listenerv3.Listener {
		l := &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001}}}}}
		if bind != nil {
			l.BindToPort = wrapperspb.Bool(*bind)
		}
		return l
	}
	no := false
	for _, tc := range []struct {
		name string
		in   *listenerv3.Listener
		want string
	}{
		{"wildcard bound", mk("0.0.0.0", nil), "127.0.0.9"},
		{"not bound", mk("0.0.0.0", &no), "0.0.0.0"},
		{"specific address", mk("10.0.0.1", nil), "10.0.0.1"},
	} {
		in := tc.in
		got := s.rebind(in).GetAddress().GetSocketAddress().GetAddress()
		if got != tc.want {
			t.Errorf("%s: address = %q, want %q", tc.name, got, tc.want)
		}
		if tc.want != "0.0.0.0" && tc.want != "10.0.0.1" && in.GetAddress().GetSocketAddress().GetAddress() != "0.0.0.0" {
			t.Errorf("%s: rebind modified its input", tc.name)
		}
	}
}

// testAdmin is the admin handler of a sidecar that is never started.
func testAdmin(t *testing.T) http.Handler {
	t.Helper()
	node, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{XDSAddress: "127.0.0.1:1", Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return s.adminHandler(context.Background(), &sync.WaitGroup{})
}

func TestAdminRefusesRemoteCallers(t *testing.T) {
	h := testAdmin(t)
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"192.0.2.10:4000", http.StatusForbidden},
		{"[2001:db8::1]:4000", http.StatusForbidden},
		{"127.0.0.1:4000", http.StatusMethodNotAllowed}, // reaches the handler: GET is not allowed
	} {
		req := httptest.NewRequest(http.MethodGet, "/quitquitquit", nil)
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.remote, rec.Code, tc.want)
		}
	}
}
