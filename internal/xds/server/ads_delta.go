package server

import (
	"slices"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

type deltaStream = grpc.BidiStreamingServer[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]

// streamDelta serves DeltaAggregatedResources (incremental xDS).
func (s *Server) streamDelta(stream deltaStream, auth StreamAuth) error {
	return serve(s, stream.Context(), true, auth, stream.Recv,
		func(r *discovery.DeltaDiscoveryRequest) *core.Node { return r.GetNode() },
		func(c *connection) handler[discovery.DeltaDiscoveryRequest] { return &delta{c: c, stream: stream} })
}

// delta implements incremental ADS semantics:
//
//   - per type, the connection keeps a sorted list of (name, version hash):
//     what the proxy has (wildcard CDS/LDS) or subscribed to (EDS/RDS);
//     only resources whose version differs are sent, and names that
//     disappeared are listed in removed_resources (also for subscribed names
//     that do not exist, which is how delta signals "does not exist");
//   - initial_resource_versions of a type's first request on the stream
//     seed that list, so a reconnecting proxy is not resent what it has;
//   - resource_names_subscribe / _unsubscribe apply in every request,
//     whatever its nonce: in delta they are increments the client will not
//     repeat, so dropping them with a stale nonce would lose them. The nonce
//     only decides whether the request ACKs/NACKs the last response;
//   - subscribing to a name already subscribed resends it;
//   - CDS and LDS are wildcard: subscription lists are ignored. The first
//     request of a wildcard type is always answered, even with nothing.
type delta struct {
	c      *connection
	stream deltaStream
}

func (h *delta) request(req *discovery.DeltaDiscoveryRequest) error {
	c := h.c
	i := typeIndex(req.GetTypeUrl())
	if i < 0 {
		c.s.log.Debug("xds delta request for unknown type ignored", "proxy", c.proxy.ID, "type", req.GetTypeUrl())
		return nil
	}
	ts, created := c.state(i)
	if !created && req.GetResponseNonce() != "" {
		if n := parseNonce(req.GetResponseNonce()); n != 0 && n == ts.nonce {
			if d := req.GetErrorDetail(); d != nil {
				c.nack(i, ts, d.GetMessage())
			} else {
				c.ack(i, ts)
			}
		} else {
			c.expired(i, req.GetResponseNonce())
		}
	}
	if created {
		if err := h.seed(i, ts, req); err != nil {
			return err
		}
		return h.respond(i, c.s.current(), h.c.wildcard(i), time.Time{})
	}
	if h.c.wildcard(i) {
		return nil
	}
	changed, err := h.subscribe(i, ts, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	if err != nil || !changed {
		return err
	}
	return h.respond(i, c.s.current(), false, time.Time{})
}

// seed builds the state of a type from its first request.
func (h *delta) seed(i int, ts *typeState, req *discovery.DeltaDiscoveryRequest) error {
	initial := req.GetInitialResourceVersions()
	if err := h.c.checkNames(i, len(initial)); err != nil {
		return err
	}
	ts.wild = wildcardType(i) && wildcardRequest(req.GetResourceNamesSubscribe())
	if h.c.wildcard(i) {
		ts.entries = make([]entry, 0, len(initial))
		for name, v := range initial {
			ts.entries = append(ts.entries, entry{name: name, ver: versionHash(v)})
		}
		slices.SortFunc(ts.entries, compareEntries)
		return nil
	}
	sub := req.GetResourceNamesSubscribe()
	if err := h.c.checkNames(i, len(sub)); err != nil {
		return err
	}
	names := sortedNames(sub)
	ts.entries = make([]entry, len(names))
	for k, n := range names {
		ts.entries[k] = entry{name: n, ver: verPending}
		if v, ok := initial[n]; ok {
			ts.entries[k].ver = versionHash(v)
		}
	}
	return nil
}

func compareEntries(a, b entry) int {
	switch {
	case a.name < b.name:
		return -1
	case a.name > b.name:
		return 1
	}
	return 0
}

// subscribe applies subscription changes of a named type. It reports
// whether names were (re)subscribed, which needs a response.
func (h *delta) subscribe(i int, ts *typeState, sub, unsub []string) (bool, error) {
	if len(sub) > 0 {
		if err := h.c.checkNames(i, len(sub)); err != nil {
			return false, err
		}
		add := sortedNames(sub)
		merged := make([]entry, 0, len(ts.entries)+len(add))
		j := 0
		for _, e := range ts.entries {
			for j < len(add) && add[j] < e.name {
				merged = append(merged, entry{name: add[j], ver: verPending})
				j++
			}
			if j < len(add) && add[j] == e.name {
				e.ver = verPending // asked again: resend
				j++
			}
			merged = append(merged, e)
		}
		for ; j < len(add); j++ {
			merged = append(merged, entry{name: add[j], ver: verPending})
		}
		if err := h.c.checkNames(i, len(merged)); err != nil {
			return false, err
		}
		if cap(merged)-len(merged) > len(merged)/8 {
			merged = slices.Clone(merged) // re-subscriptions: keep the state compact
		}
		ts.entries = merged
	}
	if len(unsub) > 0 {
		drop := sortedNames(unsub)
		ts.entries = slices.DeleteFunc(ts.entries, func(e entry) bool {
			_, found := slices.BinarySearch(drop, e.name)
			return found
		})
		if cap(ts.entries) > 2*len(ts.entries)+8 {
			ts.entries = slices.Clone(ts.entries)
		}
	}
	return len(sub) > 0, nil
}

func (h *delta) push(ev *pushEvent) error {
	return h.c.onPush(ev, func(i int, snap *model.Snapshot, start time.Time) error {
		ts := h.c.types[i]
		return h.respond(i, snap, h.c.wildcard(i) && !ts.responded, start)
	})
}

// respond generates type i and sends the resources whose version changed
// and the names removed. With force, a response goes out even when empty.
func (h *delta) respond(i int, snap *model.Snapshot, force bool, start time.Time) error {
	c := h.c
	ts := c.types[i]
	if snap == nil {
		ts.stale = true
		return nil
	}
	began := time.Now()
	var names []string
	if !h.c.wildcard(i) {
		if len(ts.entries) == 0 {
			ts.stale = false
			return nil
		}
		names = make([]string, len(ts.entries))
		for k := range ts.entries {
			names[k] = ts.entries[k].name
		}
	}
	res, ok, err := c.generateNamed(snap, i, names)
	if err != nil || !ok {
		ts.stale = !ok
		return err
	}
	ts.stale = false
	res = byName(res)

	var out []*discovery.Resource
	var removed []string
	if h.c.wildcard(i) {
		out, removed = diffWildcard(ts, res)
	} else {
		out, removed = diffNamed(ts, res)
	}
	if len(out) == 0 && len(removed) == 0 && !force {
		return nil
	}
	nonce := c.nextNonce()
	resp := &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: snap.Version,
		TypeUrl:           typeURLAt(i),
		Resources:         out,
		RemovedResources:  removed,
		Nonce:             formatNonce(nonce),
	}
	if err := c.send(h.stream.Context(), i, func() error { return h.stream.Send(resp) }); err != nil {
		return err
	}
	c.sent(ts, snap.Version, nonce, start)
	c.s.metrics.typePushTime.WithLabelValues(metricType(i)).Observe(time.Since(began).Seconds())
	return nil
}

func deltaResource(r *xds.Resource) *discovery.Resource {
	return &discovery.Resource{Name: r.Name, Version: r.Version, Resource: r.Body}
}

// diffWildcard compares the generated set (sorted) with what the proxy has
// and replaces ts.entries with the new set. The new entries reference the
// generated resources' name strings.
func diffWildcard(ts *typeState, res []xds.Resource) (out []*discovery.Resource, removed []string) {
	old := ts.entries
	next := make([]entry, 0, len(res))
	j := 0
	for k := range res {
		r := &res[k]
		if k > 0 && res[k-1].Name == r.Name {
			continue // duplicate name: the first wins
		}
		for ; j < len(old) && old[j].name < r.Name; j++ {
			removed = append(removed, old[j].name)
		}
		prev := verAbsent
		if j < len(old) && old[j].name == r.Name {
			prev = old[j].ver
			j++
		}
		v := versionHash(r.Version)
		if v != prev {
			out = append(out, deltaResource(r))
		}
		next = append(next, entry{name: r.Name, ver: v})
	}
	for ; j < len(old); j++ {
		removed = append(removed, old[j].name)
	}
	ts.entries = slices.Clip(next)
	return out, removed
}

// diffNamed compares the generated resources (sorted) with the
// subscription, updating ts.entries in place. Generated names that are not
// subscribed are ignored.
func diffNamed(ts *typeState, res []xds.Resource) (out []*discovery.Resource, removed []string) {
	k := 0
	for j := range ts.entries {
		e := &ts.entries[j]
		for k < len(res) && res[k].Name < e.name {
			k++
		}
		if k < len(res) && res[k].Name == e.name {
			r := &res[k]
			v := versionHash(r.Version)
			if v != e.ver {
				out = append(out, deltaResource(r))
			}
			e.name, e.ver = r.Name, v // share the generated name string
			for k < len(res) && res[k].Name == e.name {
				k++
			}
			continue
		}
		if e.ver != verAbsent {
			removed = append(removed, e.name)
			e.ver = verAbsent
		}
	}
	return out, removed
}
