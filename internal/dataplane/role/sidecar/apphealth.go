package sidecar

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// appProber is one original application probe, as the injector writes it
// into ISTIO_KUBE_APP_PROBERS (Istio's format, ports resolved to numbers).
type appProber struct {
	HTTPGet *struct {
		Path        string `json:"path"`
		Port        int    `json:"port"`
		Host        string `json:"host"`
		Scheme      string `json:"scheme"`
		HTTPHeaders []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"httpHeaders"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port int    `json:"port"`
		Host string `json:"host"`
	} `json:"tcpSocket"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

var appHealthPathRE = regexp.MustCompile(`^/app-health/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(livez|readyz|startupz)$`)

// appHealth serves /app-health/<container>/<livez|readyz|startupz> on the
// metrics port: the kubelet's rewritten probes land here, in plain text,
// and the proxy runs the application's original probe from inside the pod
// (where STRICT mTLS does not apply: the proxy's own traffic is not
// captured). 200 when the application answers 2xx/3xx (HTTP) or accepts
// the connection (TCP); the application's status, or 503 when it cannot
// be reached. Probes are immutable after construction.
type appHealth struct {
	probers map[string]appProber
	host    string // where the application listens: localhost in a pod
}

// newAppHealth parses the probers' JSON (ISTIO_KUBE_APP_PROBERS); host is
// the application's address when a probe names none.
func newAppHealth(probersJSON, host string) (*appHealth, error) {
	var probers map[string]appProber
	if err := json.Unmarshal([]byte(probersJSON), &probers); err != nil {
		return nil, fmt.Errorf("application probes: not a JSON object of probes: %w", err)
	}
	paths := make([]string, 0, len(probers))
	for p := range probers {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		p := probers[path]
		if !appHealthPathRE.MatchString(path) {
			return nil, fmt.Errorf("application probe %q: want /app-health/<container>/livez, readyz or startupz", path)
		}
		switch {
		case (p.HTTPGet == nil) == (p.TCPSocket == nil):
			return nil, fmt.Errorf("application probe %q: want exactly one of httpGet and tcpSocket", path)
		case p.HTTPGet != nil && (p.HTTPGet.Port < 1 || p.HTTPGet.Port > 65535):
			return nil, fmt.Errorf("application probe %q: httpGet.port %d is not a port", path, p.HTTPGet.Port)
		case p.HTTPGet != nil && p.HTTPGet.Scheme != "" && !strings.EqualFold(p.HTTPGet.Scheme, "http") && !strings.EqualFold(p.HTTPGet.Scheme, "https"):
			return nil, fmt.Errorf("application probe %q: httpGet.scheme %q: want HTTP or HTTPS", path, p.HTTPGet.Scheme)
		case p.TCPSocket != nil && (p.TCPSocket.Port < 1 || p.TCPSocket.Port > 65535):
			return nil, fmt.Errorf("application probe %q: tcpSocket.port %d is not a port", path, p.TCPSocket.Port)
		case p.TimeoutSeconds < 0:
			return nil, fmt.Errorf("application probe %q: timeoutSeconds must not be negative", path)
		}
	}
	if host == "" {
		host = "localhost"
	}
	return &appHealth{probers: probers, host: host}, nil
}

func (a *appHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := a.probers[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second // the kubelet's default
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if p.TCPSocket != nil {
		host := p.TCPSocket.Host
		if host == "" {
			host = a.host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p.TCPSocket.Port)))
		if err != nil {
			http.Error(w, "application probe: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		conn.Close()
		w.WriteHeader(http.StatusOK)
		return
	}
	status, err := a.httpProbe(ctx, p)
	if err != nil {
		http.Error(w, "application probe: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if status < 200 || status >= 400 {
		http.Error(w, "application probe: status "+strconv.Itoa(status), status)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// httpProbe runs an HTTP(S) probe as the kubelet does: GET, redirects not
// followed (a 3xx is success), certificates not verified.
func (a *appHealth) httpProbe(ctx context.Context, p appProber) (int, error) {
	g := p.HTTPGet
	scheme := "http"
	if strings.EqualFold(g.Scheme, "https") {
		scheme = "https"
	}
	host := g.Host
	if host == "" {
		host = a.host
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(g.Port))+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "kube-probe/trellis")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the kubelet does not verify either
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
