package sidecar

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/internal/localonly"
	"github.com/trellismesh/trellis/internal/opaque"
)

// adminHandler serves the admin endpoint (bound to loopback by default):
//
//	/ready              200 LIVE once listeners are configured, else 503
//	                    (DRAINING while terminating or health checks fail)
//	/config_dump        the accepted xDS resources, by type, as JSON
//	/clusters           clusters and their hosts as Envoy's text form
//	                    (<cluster>::<host>::<field>::<value> lines);
//	                    ?format=json: Envoy's envoy.admin.v3.Clusters
//	                    (istioctl proxy-config endpoint reads it);
//	                    ?format=trellis: Trellis's own view (JSON) with
//	                    connection pools, breaker usage, outlier counters,
//	                    priority load and warming state
//	/xds_status         the xDS client's status (JSON)
//	/debug/pprof/       CPU, heap, allocation and goroutine profiles
//	/drain_listeners    POST, ?inboundonly ?graceful: Envoy's listener drain
//	/healthcheck/fail   POST: fail readiness (Envoy's), /healthcheck/ok undoes it
//	/quitquitquit       POST: stop the proxy at once
//	/stats/prometheus   Istio's standard metrics
//
// runCtx and bg own the goroutines that graceful drains start.
func (s *Sidecar) adminHandler(runCtx context.Context, bg *sync.WaitGroup) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", s.ready)
	mux.HandleFunc("/config_dump", s.configDump)
	mux.HandleFunc("/clusters", s.adminClusters)
	mux.HandleFunc("/xds_status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.xds.Status())
	})
	mux.Handle("/stats/prometheus", s.metrics.Handler())
	// Profiles of the proxy itself; the admin port binds loopback by default.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/drain_listeners", s.drainListeners(runCtx, bg))
	mux.HandleFunc("/healthcheck/fail", s.healthcheck(true))
	mux.HandleFunc("/healthcheck/ok", s.healthcheck(false))
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		// Stop makes Run close the admin server, and with it this
		// connection, possibly before the handler has returned: the
		// response is complete (Content-Length) and flushed to the socket
		// first, and the request body read, so that the close sends the
		// response and a FIN, not a reset over unread input.
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "3")
		w.Header().Set("Connection", "close")
		w.Write([]byte("OK\n"))
		http.NewResponseController(w).Flush()
		s.Stop()
	})
	// Config dumps, profiles, drains and quitquitquit are for local
	// operators only, whatever address the admin endpoint binds.
	return localonly.Wrap(mux, "the admin endpoint")
}

// metricsHandler serves the merged metrics port (15020): the proxy's
// metrics, followed by the application's when AppMetricsURL is set.
func (s *Sidecar) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	if s.app != nil {
		mux.Handle("/stats/prometheus", s.app.merged(s.metrics.Registry()))
	} else {
		mux.Handle("/stats/prometheus", s.metrics.Handler())
	}
	if s.appHealth != nil {
		mux.Handle("/app-health/", s.appHealth)
	}
	return mux
}

// healthHandler serves Istio's readiness path on the health port.
func (s *Sidecar) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", s.ready)
	return mux
}

func (s *Sidecar) ready(w http.ResponseWriter, _ *http.Request) {
	if why := s.readiness(); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("LIVE\n"))
}

// configDump writes {"<type short name>": {"<name>": <resource JSON>}}.
// The xDS client keeps resources serialized; each dump decodes them.
func (s *Sidecar) configDump(w http.ResponseWriter, _ *http.Request) {
	out := map[string]map[string]json.RawMessage{}
	types := &opaque.Resolver{} // extension configs this binary does not link print as their @type
	for short, typeURL := range map[string]string{
		"clusters":  xdsclient.ClusterType,
		"endpoints": xdsclient.EndpointType,
		"listeners": xdsclient.ListenerType,
		"routes":    xdsclient.RouteType,
	} {
		res, err := s.xds.Resources(typeURL) // decoded from the kept bytes
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		m := map[string]json.RawMessage{}
		for _, n := range names {
			b, err := protojson.MarshalOptions{Resolver: types}.Marshal(res[n])
			if err != nil {
				b, _ = json.Marshal(map[string]string{"error": err.Error()})
			}
			m[n] = b
		}
		out[short] = m
	}
	writeJSON(w, out)
}

// adminClusters serves /clusters in Envoy's forms (text by default,
// ?format=json) or Trellis's own (?format=trellis). As in Envoy, any other
// format is the text form.
func (s *Sidecar) adminClusters(w http.ResponseWriter, r *http.Request) {
	clusters := s.clusters.Clusters()
	switch r.URL.Query().Get("format") {
	case "trellis":
		writeJSON(w, clusters)
	case "json":
		b, err := manager.EnvoyJSON(clusters)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		manager.WriteEnvoyText(w, clusters)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
