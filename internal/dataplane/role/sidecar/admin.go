package sidecar

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/internal/localonly"
)

// adminHandler serves the admin endpoint (bound to loopback by default):
//
//	/ready         200 LIVE once listeners are configured, else 503
//	/config_dump   the accepted xDS resources, by type, as JSON
//	/clusters      clusters with hosts, health, outlier state (JSON)
//	/xds_status    the xDS client's status (JSON)
//	/debug/pprof/  CPU, heap, allocation and goroutine profiles
//	/quitquitquit  POST: stop the proxy
//	/stats/prometheus  Istio's standard metrics
func (s *Sidecar) adminHandler(stop context.CancelFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", s.ready)
	mux.HandleFunc("/config_dump", s.configDump)
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.clusters.Clusters())
	})
	mux.HandleFunc("/xds_status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.xds.Status())
	})
	mux.Handle("/stats/prometheus", s.metrics.Handler())
	// Profiles of the proxy itself; the admin port binds loopback by default.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		w.Write([]byte("OK\n"))
		stop()
	})
	// Config dumps, profiles and quitquitquit are for local operators only,
	// whatever address the admin endpoint binds.
	return localonly.Wrap(mux, "the admin endpoint")
}

// metricsHandler serves the merged metrics port (15020). The proxy's
// metrics are all there is to merge for now: the application's are not
// scraped yet.
func (s *Sidecar) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/stats/prometheus", s.metrics.Handler())
	return mux
}

// healthHandler serves Istio's readiness path on the health port.
func (s *Sidecar) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", s.ready)
	return mux
}

func (s *Sidecar) ready(w http.ResponseWriter, _ *http.Request) {
	if !s.Ready() {
		http.Error(w, "not ready: waiting for configuration from the control plane", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("LIVE\n"))
}

// configDump writes {"<type short name>": {"<name>": <resource JSON>}}.
func (s *Sidecar) configDump(w http.ResponseWriter, _ *http.Request) {
	out := map[string]map[string]json.RawMessage{}
	for short, typeURL := range map[string]string{
		"clusters":  xdsclient.ClusterType,
		"endpoints": xdsclient.EndpointType,
		"listeners": xdsclient.ListenerType,
		"routes":    xdsclient.RouteType,
	} {
		res := s.xds.Resources(typeURL)
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		m := map[string]json.RawMessage{}
		for _, n := range names {
			b, err := protojson.Marshal(res[n])
			if err != nil {
				b, _ = json.Marshal(map[string]string{"error": err.Error()})
			}
			m[n] = b
		}
		out[short] = m
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
