// Package proxystatus implements `trellis proxy-status [PROXY]`: it reads
// the control plane's /debug/syncz (package xds/server's DebugHandler, on
// the monitoring address, loopback only) and prints istioctl's table — per
// connected proxy, the state of CDS, LDS, EDS and RDS (SYNCED, STALE,
// NACKED, NOT SENT), the control plane instance and the proxy's version —
// with the error of every NACKED type below it; -o wide adds the
// connection, -o json prints the syncz entries. With PROXY it prints that
// proxy's versions, nonces and last NACK error per type.
package proxystatus
