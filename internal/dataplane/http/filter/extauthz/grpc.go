package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// grpcCheck asks a gRPC authorization service over one channel.
type grpcCheck struct {
	conn        *grpc.ClientConn
	client      authv3.AuthorizationClient
	timeout     time.Duration
	packAsBytes bool
}

func newGRPCCheck(g *corev3.GrpcService, dial func(context.Context, string) (net.Conn, error), packAsBytes bool) (*grpcCheck, error) {
	eg := g.GetEnvoyGrpc()
	if eg == nil {
		return nil, errors.New("grpc_service: only envoy_grpc is supported")
	}
	if len(g.GetInitialMetadata()) > 0 {
		return nil, errors.New("grpc_service.initial_metadata: not supported")
	}
	cluster := eg.GetClusterName()
	if dial == nil {
		return nil, errors.New("grpc_service.envoy_grpc: this proxy has no cluster dialer")
	}
	authority := eg.GetAuthority()
	if authority == "" {
		authority = cluster
	}
	// grpc.NewClient does no I/O: the channel connects on first use.
	conn, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, cluster) }),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc_service: channel to %q: %w", cluster, err)
	}
	return &grpcCheck{conn: conn, client: authv3.NewAuthorizationClient(conn), timeout: grpcTimeout(g), packAsBytes: packAsBytes}, nil
}

// Close closes the channel.
func (c *grpcCheck) Close() error { return c.conn.Close() }

// Check implements checker.
func (c *grpcCheck) Check(ctx context.Context, s *filter.Stream, body []byte) (*decision, error) {
	resp, err := c.client.Check(ctx, c.request(s, body))
	if err != nil {
		return nil, fmt.Errorf("Authorization/Check: %w", err)
	}
	if resp.GetStatus().GetCode() == int32(code.Code_OK) {
		d := &decision{allow: true, upstreamSet: http.Header{}, upstreamAppend: http.Header{}, downstream: http.Header{}}
		ok := resp.GetOkResponse()
		for _, h := range ok.GetHeaders() {
			k, v := h.GetHeader().GetKey(), headerValue(h.GetHeader())
			if h.GetAppend().GetValue() || h.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				d.upstreamAppend.Add(k, v)
			} else {
				d.upstreamSet.Set(k, v)
			}
		}
		d.upstreamRemove = ok.GetHeadersToRemove()
		for _, h := range ok.GetResponseHeadersToAdd() {
			d.downstream.Add(h.GetHeader().GetKey(), headerValue(h.GetHeader()))
		}
		return d, nil
	}
	den := resp.GetDeniedResponse()
	d := &decision{status: int(den.GetStatus().GetCode()), header: http.Header{}, body: []byte(den.GetBody())}
	if d.status == 0 {
		d.status = http.StatusForbidden
	}
	for _, h := range den.GetHeaders() {
		k := h.GetHeader().GetKey()
		if hopByHop[strings.ToLower(k)] {
			continue
		}
		if h.GetAppend().GetValue() {
			d.header.Add(k, headerValue(h.GetHeader()))
		} else {
			d.header.Set(k, headerValue(h.GetHeader()))
		}
	}
	return d, nil
}

func headerValue(h *corev3.HeaderValue) string {
	if h.GetValue() != "" {
		return h.GetValue()
	}
	return string(h.GetRawValue())
}

// request is the CheckRequest of a stream.
func (c *grpcCheck) request(s *filter.Stream, body []byte) *authv3.CheckRequest {
	r := s.Request
	headers := make(map[string]string, len(r.Header)+3)
	for k, vs := range r.Header {
		// One entry per header name, repeated values joined by ",".
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	path := s.Routing.Path
	if path == "" {
		path = r.URL.RequestURI()
	}
	host := s.Routing.Authority
	if host == "" {
		host = r.Host
	}
	headers[":method"], headers[":path"], headers[":authority"] = r.Method, path, host
	scheme := s.Routing.Scheme
	if scheme != "" {
		headers[":scheme"] = scheme
	}
	req := &authv3.AttributeContext_HttpRequest{
		Id:       r.Header.Get("X-Request-Id"),
		Method:   r.Method,
		Headers:  headers,
		Path:     path,
		Host:     host,
		Scheme:   scheme,
		Protocol: r.Proto,
		Size:     r.ContentLength,
	}
	if _, query, ok := strings.Cut(path, "?"); ok {
		req.Query = query
	}
	if body != nil {
		if c.packAsBytes {
			req.RawBody = body
		} else {
			req.Body = string(body)
		}
	}
	attrs := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: req}}
	if conn := s.Conn; conn != nil {
		attrs.Source = &authv3.AttributeContext_Peer{Address: socketAddress(conn.Source.Addr().String(), conn.Source.Port())}
		if conn.MutualTLS {
			attrs.Source.Principal = conn.PeerIdentity
		}
		attrs.Destination = &authv3.AttributeContext_Peer{Address: socketAddress(conn.Destination.Addr().String(), conn.Destination.Port())}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func socketAddress(ip string, port uint16) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}
