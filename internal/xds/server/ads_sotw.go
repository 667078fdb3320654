package server

import (
	"slices"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

type sotwStream = grpc.BidiStreamingServer[discovery.DiscoveryRequest, discovery.DiscoveryResponse]

// streamSotw serves StreamAggregatedResources (state of the world).
func (s *Server) streamSotw(stream sotwStream, auth StreamAuth) error {
	return serve(s, stream.Context(), false, auth, stream.Recv,
		func(r *discovery.DiscoveryRequest) *core.Node { return r.GetNode() },
		func(c *connection) handler[discovery.DiscoveryRequest] { return &sotw{c: c, stream: stream} })
}

// sotw implements state-of-the-world ADS semantics:
//
//   - every response carries the full set of a type; version_info is a
//     digest of the set's names and versions, the nonce is unique per stream;
//   - a request with the nonce of the type's last response is an ACK, or a
//     NACK when error_detail is set; a request with an older (stale) nonce
//     is ignored entirely, as the protocol asks: the client will send its
//     current subscription again when it handles the newer response;
//   - a request with no nonce, the first of a type on the stream, or one
//     whose resource_names differ from the subscription (named types) is
//     answered at once, even if the content is unchanged;
//   - CDS and LDS are wildcard when first requested with no names (or
//     "*"): resource_names is then ignored. Requested by name, as
//     proxyless gRPC does, they are named subscriptions like EDS and RDS.
type sotw struct {
	c      *connection
	stream sotwStream
}

func (h *sotw) request(req *discovery.DiscoveryRequest) error {
	c := h.c
	i := typeIndex(req.GetTypeUrl())
	if i < 0 {
		c.s.log.Debug("xds request for unknown type ignored", "proxy", c.proxy.ID, "type", req.GetTypeUrl())
		return nil
	}
	ts, created := c.state(i)
	if !created && req.GetResponseNonce() != "" {
		if n := parseNonce(req.GetResponseNonce()); n == 0 || n != ts.nonce {
			c.expired(i, req.GetResponseNonce())
			return nil
		}
		if d := req.GetErrorDetail(); d != nil {
			c.nack(i, ts, d.GetMessage())
		} else {
			c.ack(i, ts)
		}
		if h.c.wildcard(i) {
			return nil
		}
		if err := c.checkNames(i, len(req.GetResourceNames())); err != nil {
			return err
		}
		names := sortedNames(req.GetResourceNames())
		if slices.Equal(names, ts.names) {
			return nil // plain ACK/NACK
		}
		ts.names = names
		return h.respond(i, c.s.current(), true, time.Time{})
	}
	// First request of the type, or a re-request without nonce.
	if created {
		ts.wild = wildcardType(i) && wildcardRequest(req.GetResourceNames())
	}
	if !h.c.wildcard(i) {
		if err := c.checkNames(i, len(req.GetResourceNames())); err != nil {
			return err
		}
		ts.names = sortedNames(req.GetResourceNames())
	}
	return h.respond(i, c.s.current(), true, time.Time{})
}

func (h *sotw) push(ev *pushEvent) error {
	return h.c.onPush(ev, func(i int, snap *model.Snapshot, start time.Time) error {
		return h.respond(i, snap, !h.c.types[i].responded, start)
	})
}

// respond generates type i and sends it if force is set or the content
// differs from the last response. start, if set, is the time of the change
// being pushed (for the convergence metric).
func (h *sotw) respond(i int, snap *model.Snapshot, force bool, start time.Time) error {
	c := h.c
	ts := c.types[i]
	if snap == nil {
		ts.stale = true // answered on the first push
		return nil
	}
	began := time.Now()
	var names []string
	if !h.c.wildcard(i) {
		names = ts.names
		if len(names) == 0 && !force {
			ts.stale = false
			return nil
		}
	}
	res, ok, err := c.generateNamed(snap, i, names)
	if err != nil || !ok {
		ts.stale = !ok
		return err
	}
	ts.stale = false
	digest := c.s.digests.of(snap.Version, res)
	if !force && ts.responded && digest == ts.digest {
		return nil
	}
	internNames(ts.names, res)
	bodies := make([]*anypb.Any, len(res))
	for k := range res {
		bodies[k] = res[k].Body
	}
	nonce := c.nextNonce()
	resp := &discovery.DiscoveryResponse{
		VersionInfo: formatDigest(digest),
		TypeUrl:     typeURLAt(i),
		Resources:   bodies,
		Nonce:       formatNonce(nonce),
	}
	if err := c.send(h.stream.Context(), i, func() error { return h.stream.Send(resp) }); err != nil {
		return err
	}
	ts.digest = digest
	c.sent(ts, resp.VersionInfo, nonce, start)
	c.s.metrics.typePushTime.WithLabelValues(metricType(i)).Observe(time.Since(began).Seconds())
	return nil
}

// generateNamed generates type i; named types with nothing subscribed
// generate nothing.
func (c *connection) generateNamed(snap *model.Snapshot, i int, names []string) ([]xds.Resource, bool, error) {
	if !c.wildcard(i) && len(names) == 0 {
		return nil, true, nil
	}
	return c.generate(snap, i, names)
}
