// Package dashboard is the mesh dashboard the control plane serves under
// /dashboard/ on its monitoring address (`trellis dashboard` opens it):
// server-rendered html/template pages plus one small script and style
// sheet, embedded, no external CDN.
//
//	xds server Clients() ──► targets (METRICS_ADDRESS of each proxy)
//	                              │ GET /stats/prometheus (timeout, size cap)
//	                              ▼
//	          Round(prev), Round(cur) ──► Compute (pure) ──► Graph ──► /dashboard/api/graph (JSON)
//	                                       rates from counter deltas,        │
//	                                       5xx share, p99, mTLS, Layout      ▼
//	                                                              static/graph.js redraws the SVG
//	Clients()                 ──► /dashboard/proxies   (xDS sync state per type, last scrape)
//	Snapshot() + Problems()   ──► /dashboard/config    (objects + analysis.Analyze messages)
//	Debug handler config_dump ──► /dashboard/workload  (proxyconfig tables, PeerAuthentication,
//	                                                    Sidecar resource)
//
// Metrics. Each proxy sends where it serves Istio's standard metrics in its
// node metadata, METRICS_ADDRESS (model.MetaMetricsAddress, host:port; the
// host must be one of the proxy's own IPs, so the control plane never
// fetches anything else). Scrapes run on demand, on the request goroutine
// of /dashboard/api/graph: a round of scrapes (at most 8 at once, each
// bounded by ScrapeTimeout and MaxScrapeBytes) runs when the last one is
// older than ScrapeInterval (5s), or older than a second while there is no
// previous round, so proxies are scraped only while someone watches and a
// new viewer sees rates within a second. Rates are the counter increase
// between a proxy's last two scrapes over the time between them; a round
// more than three intervals old is not used as the base (no stale
// averages). A failed scrape is listed with its error on the graph and
// proxies pages and leaves the proxy out of that round.
//
// Edges. One edge per source workload, destination workload and
// destination service. Requests counted by the calling proxy
// (reporter=source) are used when there are any, else those of the
// callee's proxy (reporter=destination), never both (that would count
// each request twice). Error rate is the 5xx share of the requests in the
// window; p99 is estimated from the merged increase of the duration
// histograms with Prometheus's histogram_quantile interpolation; mTLS comes
// from connection_security_policy of destination-reported requests
// (mutual_tls, none, mixed), "unknown" when only the caller reported, as
// in Istio where the source cannot tell.
//
// Safety. The handler answers loopback callers only (localonly) and only
// requests addressed to an IP or localhost (no DNS rebinding), with a
// Content-Security-Policy that allows only the embedded script.
//
// Ownership. A Dashboard starts no goroutine; the scraper's mutex is held
// for a whole round, so rounds never overlap, and guards the two rounds it
// keeps. Rounds, Samples and Graphs are values not mutated once built.
package dashboard
