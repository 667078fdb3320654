package sidecar

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestAppHealth runs rewritten probes through the metrics port's handler
// of a real Sidecar: HTTP (with headers and a named Host), TCP, failures.
func TestAppHealth(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if r.Header.Get("X-Probe") != "live" || r.Host != "app.example" {
				http.Error(w, "missing header", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusOK)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	_, appPort, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "http://"))

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	probers := fmt.Sprintf(`{
	  "/app-health/web/livez": {"httpGet": {"path": "/healthz", "port": %[1]s, "httpHeaders": [{"name": "X-Probe", "value": "live"}, {"name": "Host", "value": "app.example"}]}, "timeoutSeconds": 2},
	  "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": %[1]s, "scheme": "HTTP"}},
	  "/app-health/web/startupz": {"tcpSocket": {"port": %[2]d}},
	  "/app-health/worker/livez": {"httpGet": {"path": "/moved", "port": %[1]s}},
	  "/app-health/worker/readyz": {"tcpSocket": {"port": %[3]d}}
	}`, appPort, tcp.Addr().(*net.TCPAddr).Port, closedPort)

	s, err := New(Config{XDSAddress: "127.0.0.1:1", Node: appHealthNode(t), BindAddress: "127.0.0.1", AppProbers: probers})
	if err != nil {
		t.Fatal(err)
	}
	h := s.metricsHandler()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/app-health/web/livez", http.StatusOK},
		{"/app-health/web/readyz", http.StatusServiceUnavailable}, // the application's own status
		{"/app-health/web/startupz", http.StatusOK},
		{"/app-health/worker/livez", http.StatusOK}, // a redirect is success, as for the kubelet
		{"/app-health/worker/readyz", http.StatusServiceUnavailable},
		{"/app-health/other/livez", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.path, rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
		}
	}
}

func TestAppHealthBadProbers(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`[]`, "not a JSON object of probes"},
		{`{"/healthz": {"tcpSocket": {"port": 1}}}`, `application probe "/healthz": want /app-health/<container>/livez`},
		{`{"/app-health/a/livez": {}}`, "want exactly one of httpGet and tcpSocket"},
		{`{"/app-health/a/livez": {"httpGet": {"port": 0}}}`, "httpGet.port 0 is not a port"},
		{`{"/app-health/a/livez": {"httpGet": {"port": 80, "scheme": "FTP"}}}`, `httpGet.scheme "FTP"`},
		{`{"/app-health/a/readyz": {"tcpSocket": {"port": 70000}}}`, "tcpSocket.port 70000 is not a port"},
	} {
		_, err := New(Config{XDSAddress: "127.0.0.1:1", Node: appHealthNode(t), AppProbers: tc.json})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probers %s: error %v, want it to contain %q", tc.json, err, tc.want)
		}
	}
}

func appHealthNode(t *testing.T) *corev3.Node {
	t.Helper()
	node, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop", WorkloadName: "web"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	return node
}
