// Package secrets is the proxy's secret source: it resolves the SDS
// secret names that generated TLS contexts carry (the contract written in
// internal/xds/gen/mtls: "default", "ROOTCA", "file-cert:<chain>~<key>",
// "file-root:<ca>", "file-root:system", "kubernetes://<name>") to live
// certificates and trust bundles. Transport sockets (downstream TLS in
// package listener, upstream TLS in package upstream/manager) read
// through Store on every handshake, so a rotated certificate or root
// bundle takes effect for the next connection without rebuilding
// listeners or clusters, and established connections are left alone.
//
// The workload identity ("default" and "ROOTCA") is obtained from the
// mesh CA by the identity manager; file-based names are read from disk
// and reloaded when the files change.
package secrets
