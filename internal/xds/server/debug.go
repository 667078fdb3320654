package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/opaque"
	"github.com/trellismesh/trellis/internal/xds"
)

// Sync states of one xDS type on one stream, as istioctl proxy-status
// prints them.
const (
	// StateSynced: the last response sent was ACKed.
	StateSynced = "SYNCED"
	// StateStale: a response was sent and neither ACKed nor NACKed yet.
	StateStale = "STALE"
	// StateNACKed: the last response sent was rejected.
	StateNACKed = "NACKED"
	// StateNotSent: the proxy asked for the type and nothing was sent
	// (nothing subscribed, or no snapshot yet).
	StateNotSent = "NOT SENT"
)

// State is the type's sync state: SYNCED, STALE, NACKED or NOT SENT.
func (t TypeStatus) State() string {
	switch {
	case t.SentNonce == "":
		return StateNotSent
	case t.Acked:
		return StateSynced
	case t.NACKed:
		return StateNACKed
	}
	return StateStale
}

// SyncStatus is one connected stream in /debug/syncz.
type SyncStatus struct {
	// Proxy is the full node ID, Name its pod.namespace part.
	Proxy        string `json:"proxy"`
	Name         string `json:"name"`
	ConnectionID string `json:"connection_id"`
	ProxyType    string `json:"proxy_type"`
	ClusterID    string `json:"cluster_id,omitempty"`
	Namespace    string `json:"namespace,omitempty"`
	ProxyVersion string `json:"proxy_version,omitempty"`
	// ControlPlane names the control plane instance serving the stream.
	ControlPlane string    `json:"control_plane"`
	Delta        bool      `json:"delta"`
	ConnectedAt  time.Time `json:"connected_at"`
	// XDS lists the types the proxy asked for, in push order.
	XDS []XDSSync `json:"xds"`
}

// XDSSync is the state of one type of one stream in /debug/syncz.
type XDSSync struct {
	// Type is the short name (CDS, EDS, LDS, RDS).
	Type         string `json:"type"`
	TypeURL      string `json:"type_url"`
	Status       string `json:"status"`
	SentVersion  string `json:"sent_version,omitempty"`
	SentNonce    string `json:"sent_nonce,omitempty"`
	AckedVersion string `json:"acked_version,omitempty"`
	AckedNonce   string `json:"acked_nonce,omitempty"`
	// LastNACK is the error of the most recent NACK of the type on this
	// stream, kept after later ACKs.
	LastNACK string `json:"last_nack,omitempty"`
}

// DebugConfig configures DebugHandler.
type DebugConfig struct {
	// Instance names this control plane in syncz (istiod's pod name in
	// Istio). Default: the host name.
	Instance string
	// InspectTimeout bounds the wait for a stream goroutine to hand over its
	// state for a config dump (default 5s).
	InspectTimeout time.Duration
}

// DebugHandler serves the control plane's xDS debug endpoints (mount it
// under /debug/, for local callers only):
//
//	/debug/syncz                    every connected stream with, per type, the
//	                                versions and nonces sent and ACKed, the sync
//	                                state and the last NACK error (JSON)
//	/debug/config_dump?proxyID=ID   the resources the control plane sends that
//	                                proxy, as an Envoy admin ConfigDump (JSON);
//	                                ID is the node ID, the connection ID or the
//	                                proxy's pod.namespace name
func (s *Server) DebugHandler(cfg DebugConfig) http.Handler {
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
	}
	if cfg.InspectTimeout <= 0 {
		cfg.InspectTimeout = 5 * time.Second
	}
	d := &debug{s: s, cfg: cfg, types: &opaque.Resolver{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/syncz", d.syncz)
	mux.HandleFunc("GET /debug/config_dump", d.configDump)
	return mux
}

type debug struct {
	s   *Server
	cfg DebugConfig
	// types resolves the Any types of resources; extension configs the
	// generators emit by type URL alone print as their "@type" only.
	types *opaque.Resolver
}

// Syncz returns the sync status of every connected stream, sorted by proxy
// ID then connection ID; instance names the control plane.
func (s *Server) Syncz(instance string) []SyncStatus {
	clients := s.Clients()
	out := make([]SyncStatus, 0, len(clients))
	for _, c := range clients {
		st := SyncStatus{
			Proxy: c.ProxyID, Name: c.Name, ConnectionID: c.ConnectionID, ProxyType: c.Type,
			ClusterID: c.ClusterID, Namespace: c.Namespace, ProxyVersion: c.Version,
			ControlPlane: instance, Delta: c.Delta, ConnectedAt: c.ConnectedAt,
			XDS: make([]XDSSync, 0, len(c.Types)),
		}
		for _, t := range c.Types {
			st.XDS = append(st.XDS, XDSSync{
				Type: xds.ShortName(t.TypeURL), TypeURL: t.TypeURL, Status: t.State(),
				SentVersion: t.SentVersion, SentNonce: t.SentNonce,
				AckedVersion: t.AckedVersion, AckedNonce: t.AckedNonce, LastNACK: t.LastNACK,
			})
		}
		out = append(out, st)
	}
	return out
}

func (d *debug) syncz(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(d.s.Syncz(d.cfg.Instance), "", "  ")
	if err != nil {
		http.Error(w, "encoding syncz: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// httpError is an error with the HTTP status it maps to.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func (d *debug) configDump(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("proxyID")
	dump, err := d.dump(r.Context(), id)
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		}
		http.Error(w, err.Error(), code)
		return
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", Resolver: d.types}.Marshal(dump)
	if err != nil {
		http.Error(w, fmt.Sprintf("encoding config dump of %q: %v", id, err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// dump builds the config dump of the proxy named id.
func (d *debug) dump(ctx context.Context, id string) (*adminv3.ConfigDump, error) {
	if id == "" {
		return nil, &httpError{http.StatusBadRequest, "config_dump: the proxyID query parameter is required (a node ID, connection ID or pod.namespace; see /debug/syncz)"}
	}
	c, err := d.s.find(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.InspectTimeout)
	defer cancel()
	v, err := c.inspectState(ctx)
	if err != nil {
		return nil, err
	}
	if v.snap == nil {
		return nil, &httpError{http.StatusServiceUnavailable, fmt.Sprintf("config_dump: proxy %q: the control plane has no configuration snapshot yet", c.proxy.ID)}
	}
	return d.s.configDump(c.proxy, c.delta, v)
}

// find returns the connection a debug request names: by node ID, else by
// connection ID, else by the proxy's pod.namespace name. Of several streams
// of one proxy, the newest wins.
func (s *Server) find(id string) (*connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var byID, byConn, byName []*connection
	for c := range s.conns {
		switch {
		case c.proxy.ID == id:
			byID = append(byID, c)
		case c.id == id:
			byConn = append(byConn, c)
		case c.proxy.Name == id:
			byName = append(byName, c)
		}
	}
	for _, cs := range [][]*connection{byID, byConn, byName} {
		if len(cs) == 0 {
			continue
		}
		newest := cs[0]
		proxies := map[string]bool{}
		for _, c := range cs {
			proxies[c.proxy.ID] = true
			if c.since.After(newest.since) {
				newest = c
			}
		}
		if len(proxies) > 1 {
			ids := make([]string, 0, len(proxies))
			for p := range proxies {
				ids = append(ids, p)
			}
			slices.Sort(ids)
			return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("config_dump: proxyID %q is ambiguous: it names %s; give the full node ID", id, strings.Join(ids, ", "))}
		}
		return newest, nil
	}
	return nil, &httpError{http.StatusNotFound, fmt.Sprintf("config_dump: proxy %q is not connected to this control plane (%d connected; see /debug/syncz)", id, len(s.conns))}
}

// view is a copy of a connection's per-type state, taken on its stream
// goroutine, from which its config is generated again.
type view struct {
	// snap is the snapshot of the last push event the stream processed.
	snap  *model.Snapshot
	types [numTypes]typeView
}

type typeView struct {
	present bool
	wild    bool
	names   []string // subscribed names (named types), sorted
	version string   // version of the last response
	// acked, nacked: the last response's outcome; nack is the last NACK.
	acked, nacked bool
	nack          string
}

// view copies the connection's state. It runs on the stream goroutine,
// which owns the per-type state.
func (c *connection) view() view {
	v := view{snap: c.snap}
	for i, ts := range c.types {
		if ts == nil {
			continue
		}
		tv := typeView{present: true, wild: ts.wild, version: ts.version, nack: ts.nack,
			acked:  ts.nonce != 0 && ts.ackedNonce == ts.nonce,
			nacked: ts.nonce != 0 && ts.nackedNonce == ts.nonce}
		if !ts.wild {
			if c.delta {
				tv.names = make([]string, len(ts.entries))
				for k, e := range ts.entries {
					tv.names[k] = e.name
				}
			} else {
				tv.names = slices.Clone(ts.names)
			}
		}
		v.types[i] = tv
	}
	if v.snap == nil {
		v.snap = c.s.current()
	}
	return v
}

// inspectState asks the stream goroutine for a copy of its state.
func (c *connection) inspectState(ctx context.Context) (view, error) {
	reply := make(chan view, 1)
	select {
	case c.inspect <- reply:
	case <-c.quit:
		return view{}, &httpError{http.StatusNotFound, fmt.Sprintf("config_dump: proxy %q disconnected", c.proxy.ID)}
	case <-ctx.Done():
		return view{}, &httpError{http.StatusServiceUnavailable, fmt.Sprintf("config_dump: proxy %q: its stream is busy (a send to the proxy is blocked): %v", c.proxy.ID, ctx.Err())}
	}
	// The stream goroutine answers at once into the buffered reply.
	return <-reply, nil
}

// configDump generates the proxy's resources from the view, as Envoy's
// admin /config_dump shows them: one section per type the proxy asked for,
// each resource with the version of the type's last response, its client
// status (ACKED, NACKED, or REQUESTED while the response is unanswered) and,
// for a NACKed type, the NACK's error.
func (s *Server) configDump(p *model.Proxy, delta bool, v view) (*adminv3.ConfigDump, error) {
	out := &adminv3.ConfigDump{}
	for i := range numTypes {
		tv := v.types[i]
		if !tv.present {
			continue
		}
		var res []xds.Resource
		if tv.wild || len(tv.names) > 0 {
			if err := s.acquire(); err != nil {
				return nil, &httpError{http.StatusServiceUnavailable, "config_dump: control plane is stopping"}
			}
			var err error
			res, err = s.gen.Generate(v.snap, p, typeURLAt(i), tv.names)
			s.release()
			if err != nil {
				return nil, fmt.Errorf("config_dump: generating %s for proxy %q from snapshot %s: %w",
					xds.ShortName(typeURLAt(i)), p.ID, v.snap.Version, err)
			}
			if !tv.wild && wildcardType(i) {
				res = onlyNamed(res, tv.names)
			}
		}
		section, err := dumpSection(i, tv, delta, res)
		if err != nil {
			return nil, fmt.Errorf("config_dump: proxy %q: %w", p.ID, err)
		}
		out.Configs = append(out.Configs, section)
	}
	return out, nil
}

// dumpSection builds the ConfigDump section of type i.
func dumpSection(i int, tv typeView, delta bool, res []xds.Resource) (*anypb.Any, error) {
	status := adminv3.ClientResourceStatus_REQUESTED
	switch {
	case tv.acked:
		status = adminv3.ClientResourceStatus_ACKED
	case tv.nacked:
		status = adminv3.ClientResourceStatus_NACKED
	}
	var failure *adminv3.UpdateFailureState
	if tv.nacked {
		failure = &adminv3.UpdateFailureState{Details: tv.nack, VersionInfo: tv.version}
	}
	version := func(r *xds.Resource) string {
		if delta {
			return r.Version
		}
		return tv.version
	}
	var m proto.Message
	switch typeURLAt(i) {
	case xds.ClusterType:
		d := &adminv3.ClustersConfigDump{VersionInfo: tv.version}
		for k := range res {
			d.DynamicActiveClusters = append(d.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
				VersionInfo: version(&res[k]), Cluster: res[k].Body, ClientStatus: status, ErrorState: failure})
		}
		m = d
	case xds.EndpointType:
		d := &adminv3.EndpointsConfigDump{}
		for k := range res {
			d.DynamicEndpointConfigs = append(d.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: version(&res[k]), EndpointConfig: res[k].Body, ClientStatus: status, ErrorState: failure})
		}
		m = d
	case xds.ListenerType:
		d := &adminv3.ListenersConfigDump{VersionInfo: tv.version}
		for k := range res {
			d.DynamicListeners = append(d.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
				Name:         res[k].Name,
				ActiveState:  &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: version(&res[k]), Listener: res[k].Body},
				ClientStatus: status, ErrorState: failure})
		}
		m = d
	case xds.RouteType:
		d := &adminv3.RoutesConfigDump{}
		for k := range res {
			d.DynamicRouteConfigs = append(d.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
				VersionInfo: version(&res[k]), RouteConfig: res[k].Body, ClientStatus: status, ErrorState: failure})
		}
		m = d
	default:
		return nil, fmt.Errorf("no config dump section for type %s", typeURLAt(i))
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("wrapping %s section: %w", xds.ShortName(typeURLAt(i)), err)
	}
	return a, nil
}

// agentOf names the proxy's software version: its ISTIO_VERSION metadata,
// else the node's user agent name and version.
func agentOf(p *model.Proxy, n *core.Node) string {
	if v := p.Metadata[model.MetaIstioVersion]; v != "" {
		return v
	}
	ver := n.GetUserAgentVersion()
	if bv := n.GetUserAgentBuildVersion().GetVersion(); ver == "" && bv != nil {
		ver = fmt.Sprintf("%d.%d.%d", bv.GetMajorNumber(), bv.GetMinorNumber(), bv.GetPatch())
	}
	return strings.TrimSpace(n.GetUserAgentName() + " " + ver)
}
