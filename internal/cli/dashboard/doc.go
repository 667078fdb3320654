// Package dashboard implements `trellis dashboard`: it checks that the
// control plane's monitoring address serves the dashboard (package
// internal/dashboard, mounted at /dashboard/), prints its URL, and opens
// it with xdg-open when that exists and --browser is on.
//
// The dashboard answers local callers only, so the command is meant for
// the control plane's own host (local mode, or a port-forward).
package dashboard
