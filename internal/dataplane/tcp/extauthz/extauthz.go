package extauthz

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"

// MetadataNamespace is where an OK response's dynamic metadata is stored.
const MetadataNamespace = "envoy.filters.network.ext_authz"

// defaultTimeout is Envoy's check timeout when grpc_service has none.
const defaultTimeout = 200 * time.Millisecond

// Dialer connects to a host of a cluster: the cluster manager.
type Dialer interface {
	Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error)
}

// Filters builds network ext_authz filters (a listener.NetworkFilters).
// Upstream is required; Stats, LocalPrincipal and Logger are optional.
type Filters struct {
	Upstream Dialer
	Stats    rbac.Stats
	// LocalPrincipal is the proxy's own identity (its SPIFFE ID), sent as
	// the destination principal of TLS connections.
	LocalPrincipal string
	Logger         *slog.Logger
}

// Build implements listener.NetworkFilters. It does no I/O: the gRPC
// channel connects on the first check.
func (f Filters) Build(lf *listenerv3.Filter) (listener.ConnHandler, error) {
	msg := &extauthzv3.ExtAuthz{}
	if err := anypb.UnmarshalTo(lf.GetTypedConfig(), msg, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, fmt.Errorf("invalid ExtAuthz: %w", err)
	}
	switch {
	case msg.GetTransportApiVersion() != corev3.ApiVersion_V3 && msg.GetTransportApiVersion() != corev3.ApiVersion_AUTO:
		return nil, fmt.Errorf("transport_api_version: %v is not supported, use V3", msg.GetTransportApiVersion())
	case len(msg.GetTypedMetadataContextNamespaces()) > 0:
		return nil, errors.New("typed_metadata_context_namespaces: not supported")
	case msg.GetBootstrapMetadataLabelsKey() != "":
		return nil, errors.New("bootstrap_metadata_labels_key: not supported")
	case msg.GetSendTlsAlertOnDenial():
		return nil, errors.New("send_tls_alert_on_denial: not supported")
	case msg.GetShadowMode():
		return nil, errors.New("shadow_mode: not supported")
	case f.Upstream == nil:
		return nil, errors.New("grpc_service: this proxy has no cluster dialer")
	}
	g := msg.GetGrpcService()
	eg := g.GetEnvoyGrpc()
	if eg == nil {
		return nil, errors.New("grpc_service: only envoy_grpc is supported")
	}
	if len(g.GetInitialMetadata()) > 0 {
		return nil, errors.New("grpc_service.initial_metadata: not supported")
	}
	h := &Handler{
		failOpen:       msg.GetFailureModeAllow(),
		peerCert:       msg.GetIncludePeerCertificate(),
		tlsSession:     msg.GetIncludeTlsSession(),
		namespaces:     msg.GetMetadataContextNamespaces(),
		localPrincipal: f.LocalPrincipal,
		timeout:        defaultTimeout,
		stats:          f.Stats,
		names:          newStatNames(msg.GetStatPrefix()),
		log:            f.Logger,
	}
	if h.stats == nil {
		h.stats = rbac.NopStats{}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if t := g.GetTimeout(); t != nil {
		h.timeout = t.AsDuration()
	}
	if m := msg.GetFilterEnabledMetadata(); m != nil {
		em, err := rbac.CompileMetadataMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("filter_enabled_metadata: %w", err)
		}
		h.enabled = em
	}
	cluster := eg.GetClusterName()
	authority := eg.GetAuthority()
	if authority == "" {
		authority = cluster
	}
	conn, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return f.Upstream.Dial(ctx, cluster, nil)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc_service: channel to %q: %w", cluster, err)
	}
	h.conn, h.client = conn, authv3.NewAuthorizationClient(conn)
	return h, nil
}

// statNames are the filter's counters, resolved once.
type statNames struct {
	total, ok, denied, errs, failureModeAllowed, disabled, cxClosed string
}

func newStatNames(prefix string) statNames {
	base := "ext_authz." + strings.TrimSuffix(prefix, ".") + "."
	return statNames{
		total: base + "total", ok: base + "ok", denied: base + "denied", errs: base + "error",
		failureModeAllowed: base + "failure_mode_allowed", disabled: base + "disabled", cxClosed: base + "cx_closed",
	}
}

// Handler is a compiled network ext_authz filter; Wrap puts it in front
// of the rest of the chain. It is immutable but for the gRPC channel it
// owns (closed by Close).
type Handler struct {
	conn           *grpc.ClientConn
	client         authv3.AuthorizationClient
	timeout        time.Duration
	enabled        *rbac.MetadataMatcher
	failOpen       bool
	peerCert       bool
	tlsSession     bool
	namespaces     []string
	localPrincipal string
	stats          rbac.Stats
	names          statNames
	log            *slog.Logger
	next           listener.ConnHandler
}

var (
	_ listener.Wrapper = (*Handler)(nil)
)

// Wrap implements listener.Wrapper.
func (h *Handler) Wrap(next listener.ConnHandler) listener.ConnHandler {
	c := *h
	c.next = next
	return &c
}

// Close releases the gRPC channel.
func (h *Handler) Close() error { return h.conn.Close() }

// Serve implements listener.ConnHandler: it checks the connection, then
// hands it on or returns (the listener closes it).
func (h *Handler) Serve(ctx context.Context, c *listener.Conn) {
	md := rbac.MetadataFromContext(ctx)
	if h.enabled != nil && !h.enabled.Match(md) {
		h.stats.Inc(h.names.disabled)
		h.serveNext(ctx, c)
		return
	}
	h.stats.Inc(h.names.total)
	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	resp, err := h.client.Check(cctx, h.request(c, md))
	cancel()
	switch {
	case err != nil:
		h.stats.Inc(h.names.errs)
		if ctx.Err() != nil {
			return // the listener is closing
		}
		h.log.Debug("ext_authz check failed", "listener", c.Listener, "source", c.Source, "error", err)
		if !h.failOpen {
			h.stats.Inc(h.names.cxClosed)
			return
		}
		h.stats.Inc(h.names.failureModeAllowed)
	case resp.GetStatus().GetCode() != int32(code.Code_OK):
		h.stats.Inc(h.names.denied)
		h.stats.Inc(h.names.cxClosed)
		return
	default:
		h.stats.Inc(h.names.ok)
		if dm := resp.GetDynamicMetadata(); len(dm.GetFields()) > 0 {
			if md == nil {
				md = rbac.Metadata{}
				ctx = rbac.ContextWithMetadata(ctx, md)
			}
			md[MetadataNamespace] = dm.AsMap()
		}
	}
	h.serveNext(ctx, c)
}

func (h *Handler) serveNext(ctx context.Context, c *listener.Conn) {
	if h.next != nil {
		h.next.Serve(ctx, c)
	}
}

// request is the CheckRequest of a connection, as Envoy's createTcpCheck
// builds it.
func (h *Handler) request(c *listener.Conn, md rbac.Metadata) *authv3.CheckRequest {
	src := &authv3.AttributeContext_Peer{Address: socketAddress(c.Source)}
	if c.MutualTLS {
		src.Principal = c.PeerIdentity
	}
	if h.peerCert && c.TLS != nil && len(c.TLS.PeerCertificates) > 0 {
		src.Certificate = url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.PeerCertificates[0].Raw})))
	}
	dst := &authv3.AttributeContext_Peer{Address: socketAddress(c.Destination)}
	if c.TLS != nil {
		dst.Principal = h.localPrincipal
	}
	attrs := &authv3.AttributeContext{Source: src, Destination: dst}
	if h.tlsSession && c.SNI != "" {
		attrs.TlsSession = &authv3.AttributeContext_TLSSession{Sni: c.SNI}
	}
	if len(h.namespaces) > 0 && md != nil {
		fm := map[string]*structpb.Struct{}
		for _, ns := range h.namespaces {
			v, ok := md[ns]
			if !ok {
				continue
			}
			s, err := structpb.NewStruct(v)
			if err != nil {
				h.log.Debug("ext_authz: metadata not sent", "namespace", ns, "error", err)
				continue
			}
			fm[ns] = s
		}
		if len(fm) > 0 {
			attrs.MetadataContext = &corev3.Metadata{FilterMetadata: fm}
		}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func socketAddress(a netip.AddrPort) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: a.Addr().Unmap().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())},
	}}}
}
