package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
)

// maxResponseBody bounds what is read of the service's answer.
const maxResponseBody = 64 << 10

// alwaysSent are the request headers Envoy always includes in an HTTP
// check (besides the allowed ones).
var alwaysSent = map[string]bool{"authorization": true}

// hopByHop are never copied from the service's answer.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "trailer": true, "content-length": true, "host": true,
}

// httpCheck asks an HTTP authorization service.
type httpCheck struct {
	up                 router.Upstream
	cluster, host      string
	pathPrefix         string
	allowed            stringMatchers // nil: only the always-sent headers
	add                [][2]string
	upstream, upAppend stringMatchers
	client, clientOnOK stringMatchers
	clientAll          bool // allowed_client_headers unset: all headers
}

func newHTTPCheck(svc *extauthzv3.HttpService, topAllowed *matcherv3.ListStringMatcher, up router.Upstream) (*httpCheck, time.Duration, error) {
	uri := svc.GetServerUri()
	c := &httpCheck{up: up, cluster: uri.GetCluster(), pathPrefix: svc.GetPathPrefix()}
	if c.cluster == "" {
		return nil, 0, errors.New("http_service.server_uri.cluster: required")
	}
	if u, err := url.Parse(uri.GetUri()); err == nil && u.Host != "" {
		c.host = u.Host
	} else {
		c.host = c.cluster
	}
	if svc.GetPathOverride() != "" {
		return nil, 0, errors.New("http_service.path_override: not supported")
	}
	if svc.GetRetryPolicy() != nil {
		return nil, 0, errors.New("http_service.retry_policy: not supported")
	}
	allowed := topAllowed
	if allowed == nil {
		allowed = svc.GetAuthorizationRequest().GetAllowedHeaders()
	}
	var err error
	if c.allowed, err = compileMatchers(allowed); err != nil {
		return nil, 0, fmt.Errorf("allowed_headers: %w", err)
	}
	for _, h := range svc.GetAuthorizationRequest().GetHeadersToAdd() {
		c.add = append(c.add, [2]string{h.GetKey(), h.GetValue()})
	}
	resp := svc.GetAuthorizationResponse()
	for _, m := range []struct {
		name string
		in   *matcherv3.ListStringMatcher
		out  *stringMatchers
	}{
		{"allowed_upstream_headers", resp.GetAllowedUpstreamHeaders(), &c.upstream},
		{"allowed_upstream_headers_to_append", resp.GetAllowedUpstreamHeadersToAppend(), &c.upAppend},
		{"allowed_client_headers", resp.GetAllowedClientHeaders(), &c.client},
		{"allowed_client_headers_on_success", resp.GetAllowedClientHeadersOnSuccess(), &c.clientOnOK},
	} {
		if *m.out, err = compileMatchers(m.in); err != nil {
			return nil, 0, fmt.Errorf("authorization_response.%s: %w", m.name, err)
		}
	}
	c.clientAll = resp.GetAllowedClientHeaders() == nil
	timeout := defaultTimeout
	if t := uri.GetTimeout(); t != nil {
		timeout = t.AsDuration()
	}
	return c, timeout, nil
}

// Check implements checker.
func (c *httpCheck) Check(ctx context.Context, s *filter.Stream, body []byte) (*decision, error) {
	path := s.Routing.Path
	if path == "" {
		path = s.Request.URL.RequestURI()
	}
	req, err := http.NewRequestWithContext(ctx, s.Request.Method, "http://"+c.host+c.pathPrefix+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the check request: %w", err)
	}
	// The path is sent as the client sent it (after normalisation), not
	// re-escaped.
	p, query, _ := strings.Cut(c.pathPrefix+path, "?")
	if strings.HasPrefix(p, "//") {
		// (an opaque "//x" would be read as an authority)
		p = "/" + strings.TrimLeft(p, "/")
	}
	req.URL.Opaque, req.URL.RawQuery = p, query
	req.Host = s.Routing.Authority
	if req.Host == "" {
		req.Host = s.Request.Host
	}
	req.ContentLength = int64(len(body))
	for k, vs := range s.Request.Header {
		lk := strings.ToLower(k)
		if !alwaysSent[lk] && !c.allowed.match(lk) {
			continue
		}
		// Envoy builds the check from one value per header name, the
		// values of a repeated header joined by ",".
		req.Header.Set(k, strings.Join(vs, ","))
	}
	for _, kv := range c.add {
		req.Header.Set(kv[0], kv[1])
	}
	resp, _, err := c.up.RoundTrip(ctx, c.cluster, router.PickContext{}, req)
	if err != nil {
		return nil, fmt.Errorf("check request to %s: %w", c.cluster, err)
	}
	defer resp.Body.Close()
	rbody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("reading the check response from %s: %w", c.cluster, err)
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("check response from %s: status %d", c.cluster, resp.StatusCode)
	case resp.StatusCode == http.StatusOK:
		d := &decision{allow: true, upstreamSet: http.Header{}, upstreamAppend: http.Header{}, downstream: http.Header{}}
		for k, vs := range resp.Header {
			lk := strings.ToLower(k)
			if hopByHop[lk] {
				continue
			}
			if c.upstream.match(lk) {
				d.upstreamSet[k] = vs
			}
			if c.upAppend.match(lk) {
				d.upstreamAppend[k] = vs
			}
			if c.clientOnOK.match(lk) {
				d.downstream[k] = vs
			}
		}
		return d, nil
	}
	d := &decision{status: resp.StatusCode, header: http.Header{}, body: rbody}
	for k, vs := range resp.Header {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		if c.clientAll || c.client.match(lk) {
			d.header[k] = vs
		}
	}
	d.header.Set("Content-Length", strconv.Itoa(len(rbody)))
	return d, nil
}
