package inject

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// prober is one original application probe, as the proxy's
// /app-health/<container>/<kind> handler on the metrics port reads it from
// ISTIO_KUBE_APP_PROBERS (Istio's format: the port resolved to a number).
type prober struct {
	HTTPGet        *httpGet   `json:"httpGet,omitempty"`
	TCPSocket      *tcpSocket `json:"tcpSocket,omitempty"`
	TimeoutSeconds int32      `json:"timeoutSeconds,omitempty"`
}

type httpGet struct {
	Path        string       `json:"path,omitempty"`
	Port        int32        `json:"port"`
	Host        string       `json:"host,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []httpHeader `json:"httpHeaders,omitempty"`
}

type httpHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type tcpSocket struct {
	Port int32  `json:"port"`
	Host string `json:"host,omitempty"`
}

// appHealthPath is the proxy path a rewritten probe points at.
func appHealthPath(container, kind string) string {
	return "/app-health/" + container + "/" + kind
}

// rewriteProbes points the HTTP and TCP liveness, readiness and startup
// probes of the application containers at the proxy's metrics port and
// returns the originals, keyed by their new path, as the JSON value of
// ISTIO_KUBE_APP_PROBERS ("" when nothing was rewritten). Under STRICT mTLS
// the kubelet's plain-text probe would be refused by the inbound listener
// (HTTP), or answered by the proxy whatever the application's state (TCP);
// the proxy runs the original probe from inside the pod instead. Exec and
// gRPC probes are left alone: exec needs no network, and gRPC probing is
// not implemented by the proxy yet.
func rewriteProbes(spec *corev1.PodSpec) (string, error) {
	probers := map[string]prober{}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if c.Name == ProxyContainer {
			continue
		}
		for _, p := range []struct {
			probe *corev1.Probe
			kind  string
		}{{c.LivenessProbe, "livez"}, {c.ReadinessProbe, "readyz"}, {c.StartupProbe, "startupz"}} {
			if p.probe == nil {
				continue
			}
			path := appHealthPath(c.Name, p.kind)
			pr, ok := original(c, p.probe)
			if !ok {
				continue
			}
			pr.TimeoutSeconds = p.probe.TimeoutSeconds
			probers[path] = pr
			p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path:   path,
				Port:   intstr.FromInt32(MetricsPort),
				Scheme: corev1.URISchemeHTTP,
			}}
		}
	}
	if len(probers) == 0 {
		return "", nil
	}
	data, err := json.Marshal(probers) // map keys sorted: stable output
	if err != nil {
		return "", fmt.Errorf("encoding the application probes: %w", err)
	}
	return string(data), nil
}

// original returns the prober for an HTTP or TCP probe whose port
// resolves; other probes are not rewritten.
func original(c *corev1.Container, p *corev1.Probe) (prober, bool) {
	switch {
	case p.HTTPGet != nil:
		port, ok := resolvePort(c, p.HTTPGet.Port)
		if !ok {
			return prober{}, false
		}
		h := &httpGet{Path: p.HTTPGet.Path, Port: port, Host: p.HTTPGet.Host, Scheme: string(p.HTTPGet.Scheme)}
		for _, hh := range p.HTTPGet.HTTPHeaders {
			h.HTTPHeaders = append(h.HTTPHeaders, httpHeader{Name: hh.Name, Value: hh.Value})
		}
		return prober{HTTPGet: h}, true
	case p.TCPSocket != nil:
		port, ok := resolvePort(c, p.TCPSocket.Port)
		if !ok {
			return prober{}, false
		}
		return prober{TCPSocket: &tcpSocket{Port: port, Host: p.TCPSocket.Host}}, true
	}
	return prober{}, false
}

// resolvePort turns a probe port (number or container port name) into a
// number. A name the container does not declare is not resolved: the
// probe is left as it is, and fails as it would without a sidecar.
func resolvePort(c *corev1.Container, port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, port.IntVal > 0 && port.IntVal < 65536
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return cp.ContainerPort, true
		}
	}
	// A number written as a string ("8080") is accepted by the kubelet too.
	if n := intstr.Parse(strings.TrimSpace(port.StrVal)); n.Type == intstr.Int && n.IntVal > 0 && n.IntVal < 65536 {
		return n.IntVal, true
	}
	return 0, false
}
