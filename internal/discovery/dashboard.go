package discovery

import (
	"net/http"

	"github.com/trellismesh/trellis/internal/dashboard"
	"github.com/trellismesh/trellis/internal/xds/server"
)

// mountDashboard serves the dashboard (package dashboard) under
// /dashboard/ on the monitoring mux, for local callers. It reads the
// server's proxies, snapshot and problems, and the xDS debug handler for
// config dumps; it runs no goroutine (proxies are scraped while a page
// polls).
func (s *Server) mountDashboard(mux *http.ServeMux) {
	d, err := dashboard.New(dashboard.Config{
		Clients:  s.Clients,
		Snapshot: s.Snapshot,
		Problems: s.Problems,
		Debug:    s.xds.DebugHandler(server.DebugConfig{}),
		Logger:   s.log.With("component", "dashboard"),
	})
	if err != nil {
		// Only a broken build (embedded templates) gets here.
		s.log.Error("dashboard disabled", "err", err)
		mux.Handle(dashboard.Prefix, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "dashboard unavailable: "+err.Error(), http.StatusInternalServerError)
		}))
		return
	}
	mux.Handle(dashboard.Prefix, d.Handler())
}
