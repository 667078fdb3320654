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
// Local (local.go) is the Store of the proxy:
//
//	default, ROOTCA          Config.Workload (the identity manager, package
//	                         dataplane/identity); without one (no CA
//	                         configured) they fail with ErrNotReady at once
//	file-cert:<chain>~<key>  PEM chain and key, checked with tls.X509KeyPair
//	file-root:<ca>           PEM bundle of at least one certificate
//	file-root:system         x509.SystemCertPool, loaded once
//	kubernetes://...         not available in this proxy (ErrNotReady with
//	                         the reason; Wait returns it at once)
//	anything else            an error naming the accepted forms
//
// File secrets are read on first use and re-checked on access at most
// every CheckInterval (1s): a changed file (another inode after a rename,
// or another modification time or size) is re-read. A missing, unreadable
// or invalid file keeps the last good material and is logged once per
// change; before any good load the name fails with ErrNotReady naming the
// file and the reason. Reads are lock-free (an atomic pointer per name);
// one caller at a time checks the files while the others keep using the
// current material. Wait polls a file secret every CheckInterval.
package secrets
