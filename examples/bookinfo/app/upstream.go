package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ForwardedHeaders are the request headers every Bookinfo service copies
// from the request it serves onto each call it makes: the union of what
// Istio's productpage and reviews propagate (request id, Lightstep,
// Datadog, W3C trace context, Cloud Trace, gRPC binary context, B3 in both
// forms, SkyWalking) plus the identity and session headers (end-user,
// user-agent, cookie, authorization, jwt). Values are copied verbatim, so
// a trace started by the caller's proxy continues through every hop.
func ForwardedHeaders() []string {
	return []string{
		"x-request-id",
		"x-ot-span-context",
		"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
		"traceparent", "tracestate",
		"x-cloud-trace-context",
		"grpc-trace-bin",
		"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
		"sw8",
		"end-user", "user-agent",
		"cookie", "authorization", "jwt",
	}
}

// forward returns the headers of in that are to be propagated.
func forward(in http.Header) http.Header {
	out := make(http.Header)
	for _, name := range ForwardedHeaders() {
		if v := in.Values(name); len(v) > 0 {
			out[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
		}
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = []string{""} // don't invent one: net/http would send Go-http-client
	}
	return out
}

// maxBody bounds what is read from an upstream answer.
const maxBody = 1 << 20

// upstream makes the calls of one service to the others.
type upstream struct {
	client *http.Client
}

// newUpstream returns a client whose connections go to outbound when it is
// set (the request's URL still names the service, so Host carries the
// service name the sidecar routes on) and to the URL's host otherwise.
// Environment proxies are ignored: where calls go is the flags' business.
func newUpstream(outbound string) *upstream {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if outbound != "" {
				addr = outbound
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return &upstream{client: &http.Client{
		Transport: tr,
		// Redirects from a service are an answer, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is an upstream answer read in full.
type response struct {
	status int
	body   []byte
}

// get sends one GET with the given headers and timeout. A transport
// error or timeout is an error; any HTTP status is a response.
func (u *upstream) get(ctx context.Context, url string, hdr http.Header, timeout time.Duration) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, fmt.Errorf("building request GET %s: %w", url, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	res, err := u.client.Do(req)
	if err != nil {
		return response{}, err // a *url.Error: names the method and URL
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return response{}, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	return response{status: res.StatusCode, body: b}, nil
}

func (u *upstream) close() { u.client.CloseIdleConnections() }
