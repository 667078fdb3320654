package main

import "context"

// trellisPair is the Trellis sidecar pair. It is a placeholder until the Go
// sidecar exists; the benchmark lists it as skipped.
//
// To wire it (one file, this one):
//   - Available: return nil once the sidecar can be started (for a separate
//     binary, check e.g. a -trellis path like nginx.go checks for nginx and
//     return a plain error if it is missing).
//   - Start: start two sidecars like naive.go does, each with
//     startProc(ctx, e, name, path, args, []string{"GOMAXPROCS=1"}, true) and
//     the child printing "LISTENING host:port" on its first stdout line (or
//     pass false, pick ports with freePort and wait with waitTCP as nginx.go
//     does). Use a unique name per start (fmt.Sprintf("trellis-A-%d", e.next())). Sidecar A listens on
//     plain HTTP/1.1 and sends to B over TLS 1.3 using e.Certs (CAFile,
//     ServerName); B terminates TLS with e.Certs.CertFile/KeyFile and
//     forwards plain HTTP/1.1 to upstream. Return
//     &Instance{Addr: a.addr, Proxies: []Proxy{{"A", a.pid()}, {"B", b.pid()}},
//     Stop: func() { a.stop(); b.stop() }}.
//
// The harness does the rest: chain check, warm-up, load, CPU/RSS, table rows
// and ratios to nginx.
type trellisPair struct{}

func init() { registerPair(trellisPair{}) }

func (trellisPair) Name() string { return "trellis" }

func (trellisPair) Available(*Env) error {
	return &SkipError{Reason: "the Trellis sidecar is not implemented yet; wire it in bench/proxybench/trellis.go"}
}

func (trellisPair) Start(context.Context, *Env, string) (*Instance, error) {
	return nil, &SkipError{Reason: "not implemented"}
}
