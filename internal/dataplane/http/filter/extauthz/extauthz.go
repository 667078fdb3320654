package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"

// defaultTimeout is Envoy's check timeout when none is configured.
const defaultTimeout = 200 * time.Millisecond

// Response code details, Envoy's.
const (
	detailsDenied = "ext_authz_denied"
	detailsError  = "ext_authz_error"
)

// ClusterDialer is implemented by the cluster manager: a connection to a
// host of a cluster.
type ClusterDialer interface {
	Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error)
}

// Factory builds ext_authz filters. Upstream sends HTTP checks; Dial
// connects gRPC channels (when nil and Upstream is a ClusterDialer, its
// Dial is used).
type Factory struct {
	Upstream router.Upstream
	Dial     func(ctx context.Context, cluster string) (net.Conn, error)
	Logger   *slog.Logger
}

// Build decodes and validates the filter's ExtAuthz.
func (f Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	msg := &extauthzv3.ExtAuthz{}
	if config != nil {
		if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
	}
	if err := pgv.ValidateAll(msg); err != nil {
		return nil, fmt.Errorf("invalid ExtAuthz: %w", err)
	}
	if msg.GetFilterEnabled() != nil {
		return nil, errors.New("filter_enabled: runtime fractions are not supported")
	}
	if msg.GetDenyAtDisable() != nil {
		return nil, errors.New("deny_at_disable: not supported")
	}
	out := &Filter{
		failOpen:      msg.GetFailureModeAllow(),
		statusOnError: http.StatusForbidden,
		log:           f.Logger,
	}
	if out.log == nil {
		out.log = slog.Default()
	}
	if c := msg.GetStatusOnError().GetCode(); c != 0 {
		out.statusOnError = int(c)
	}
	if m := msg.GetFilterEnabledMetadata(); m != nil {
		em, err := rbac.CompileMetadataMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("filter_enabled_metadata: %w", err)
		}
		out.enabled = em
	}
	if b := msg.GetWithRequestBody(); b != nil {
		out.withBody, out.maxBody, out.partial, out.packAsBytes = true, int(b.GetMaxRequestBytes()), b.GetAllowPartialMessage(), b.GetPackAsBytes()
	}
	var err error
	switch s := msg.GetServices().(type) {
	case *extauthzv3.ExtAuthz_HttpService:
		if f.Upstream == nil {
			return nil, errors.New("http_service: this proxy has no upstream")
		}
		out.check, out.timeout, err = newHTTPCheck(s.HttpService, msg.GetAllowedHeaders(), f.Upstream)
	case *extauthzv3.ExtAuthz_GrpcService:
		dial := f.Dial
		if dial == nil {
			if d, ok := f.Upstream.(ClusterDialer); ok {
				dial = func(ctx context.Context, cluster string) (net.Conn, error) { return d.Dial(ctx, cluster, nil) }
			}
		}
		var g *grpcCheck
		g, err = newGRPCCheck(s.GrpcService, dial, out.packAsBytes)
		if err == nil {
			out.check, out.timeout, out.closer = g, g.timeout, g
		}
	default:
		return nil, errors.New("services: http_service or grpc_service required")
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Filter is a compiled ext_authz filter. It is immutable but for the gRPC
// channel it owns (closed by Close).
type Filter struct {
	check         checker
	closer        io.Closer
	timeout       time.Duration
	enabled       *rbac.MetadataMatcher
	failOpen      bool
	statusOnError int
	withBody      bool
	maxBody       int
	partial       bool
	packAsBytes   bool
	log           *slog.Logger
}

// checker asks the authorization service about one request.
type checker interface {
	Check(ctx context.Context, s *filter.Stream, body []byte) (*decision, error)
}

// decision is the service's answer.
type decision struct {
	allow bool
	// allowed requests: headers set, appended and removed upstream, and
	// added to the downstream response.
	upstreamSet, upstreamAppend http.Header
	upstreamRemove              []string
	downstream                  http.Header
	// denied requests: the local reply.
	status int
	header http.Header
	body   []byte
}

// Close releases the gRPC channel.
func (f *Filter) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// Wrap implements filter.Filter.
func (f *Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		if f.enabled != nil && !f.enabled.Match(s.Metadata) {
			next.ServeStream(s)
			return
		}
		var body []byte
		if f.withBody {
			var ok bool
			if body, ok = f.bufferBody(s); !ok {
				s.Respond(filter.Reply{Status: http.StatusRequestEntityTooLarge, Body: "Payload Too Large", Details: "request_payload_too_large"})
				return
			}
		}
		ctx, cancel := context.WithTimeout(s.Context(), f.timeout)
		d, err := f.check.Check(ctx, s, body)
		cancel()
		if err != nil {
			if s.Context().Err() != nil {
				s.Fail()
				return
			}
			f.log.Debug("ext_authz check failed", "error", err)
			if f.failOpen {
				next.ServeStream(s)
				return
			}
			s.Respond(filter.Reply{Status: f.statusOnError, Details: detailsError})
			return
		}
		if !d.allow {
			deny(s, d)
			return
		}
		h := s.Request.Header
		for _, k := range d.upstreamRemove {
			h.Del(k)
		}
		for k, vs := range d.upstreamSet {
			h[k] = vs
		}
		for k, vs := range d.upstreamAppend {
			h[k] = append(h[k], vs...)
		}
		if len(d.downstream) > 0 {
			s.OnResponseHeaders(func(_ int, rh http.Header) {
				for k, vs := range d.downstream {
					rh[k] = append(rh[k], vs...)
				}
			})
		}
		next.ServeStream(s)
	})
}

// deny sends the service's denial: its status (403 when it gave none),
// headers and body.
func deny(s *filter.Stream, d *decision) {
	status := d.status
	if status < 200 || status > 599 {
		status = http.StatusForbidden
	}
	if s.GRPC {
		s.Respond(filter.Reply{Status: status, Body: string(d.body), Header: d.header, Details: detailsDenied})
		return
	}
	s.Record.Details = detailsDenied
	w := s.Writer()
	for k, vs := range d.header {
		w.Header()[k] = vs
	}
	w.Header().Del("Transfer-Encoding")
	w.Header().Set("Content-Length", fmt.Sprint(len(d.body)))
	w.WriteHeader(status)
	if s.Request.Method != http.MethodHead {
		_, _ = w.Write(d.body)
	}
}

// bufferBody reads up to maxBody bytes of the request body for the check
// and puts what it read back in front of the rest. ok is false when the
// body is longer and partial messages are not allowed.
func (f *Filter) bufferBody(s *filter.Stream) ([]byte, bool) {
	r := s.Request
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	read, err := io.ReadAll(io.LimitReader(r.Body, int64(f.maxBody)+1))
	check := read
	if len(read) > f.maxBody {
		if !f.partial {
			return nil, false
		}
		check = read[:f.maxBody]
	}
	var rest io.Reader = r.Body
	if err != nil {
		rest = errReader{err}
	}
	r.Body = readCloser{Reader: io.MultiReader(bytes.NewReader(read), rest), Closer: r.Body}
	return check, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// stringMatchers is a compiled ListStringMatcher over header names.
type stringMatchers []func(string) bool

func compileMatchers(l *matcherv3.ListStringMatcher) (stringMatchers, error) {
	var out stringMatchers
	for i, m := range l.GetPatterns() {
		fold := m.GetIgnoreCase()
		norm := func(v string) string {
			if fold {
				return strings.ToLower(v)
			}
			return v
		}
		switch p := m.GetMatchPattern().(type) {
		case *matcherv3.StringMatcher_Exact:
			want := norm(p.Exact)
			out = append(out, func(v string) bool { return norm(v) == want })
		case *matcherv3.StringMatcher_Prefix:
			want := norm(p.Prefix)
			out = append(out, func(v string) bool { return strings.HasPrefix(norm(v), want) })
		case *matcherv3.StringMatcher_Suffix:
			want := norm(p.Suffix)
			out = append(out, func(v string) bool { return strings.HasSuffix(norm(v), want) })
		case *matcherv3.StringMatcher_Contains:
			want := norm(p.Contains)
			out = append(out, func(v string) bool { return strings.Contains(norm(v), want) })
		case *matcherv3.StringMatcher_SafeRegex:
			re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
			if err != nil {
				return nil, fmt.Errorf("patterns[%d]: %w", i, err)
			}
			out = append(out, re.MatchString)
		default:
			return nil, fmt.Errorf("patterns[%d]: unsupported matcher", i)
		}
	}
	return out, nil
}

// match reports whether a (canonical or lower-case) header name matches.
func (m stringMatchers) match(name string) bool {
	n := strings.ToLower(name)
	for _, f := range m {
		if f(n) {
			return true
		}
	}
	return false
}

// grpcTimeout reads a GrpcService timeout.
func grpcTimeout(g *corev3.GrpcService) time.Duration {
	if t := g.GetTimeout(); t != nil {
		return t.AsDuration()
	}
	return defaultTimeout
}
