// Package proxyconfig implements `trellis proxy-config listeners|routes|
// clusters|endpoints|secrets [PROXY]`: a proxy's xDS configuration as
// istioctl's tables, or with -o json the raw section of its config dump.
//
//	control plane /debug/config_dump?proxyID=   ─┐  (default: what it sent)
//	proxy admin   /config_dump      (--admin)   ─┴► Parse ─► Dump ─► ListenerTable,
//	proxy admin   /clusters (--admin endpoints) ─► ParseAdminClusters  RouteTable, ...
//
// Parse reads both dump formats, Envoy's admin ConfigDump (the control
// plane's and Envoy's) and the Trellis sidecar's {"clusters": {name: ...}}
// map, into one Dump; the table functions are pure functions of it (and of
// Filter), golden-tested on the real generator's output. Any-typed
// extension configs this binary does not link are skipped (package
// opaque), so dumps of other proxies still parse.
//
// Endpoints come from the control plane's EDS (health as sent, no outlier
// state) or, with --admin, from the proxy's /clusters (the hosts it uses,
// with outlier ejection). Secrets lists what the dump holds (Envoy's
// SecretsConfigDump) and every SDS secret its TLS transport sockets
// reference; the control plane never serves SDS, so its dump shows those
// as NOT SERVED.
package proxyconfig
