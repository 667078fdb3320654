// Package server is the control plane's ADS transport (Istio's
// pilot/pkg/xds role): gRPC streams, versions and nonces, ACK/NACK,
// debouncing and merging of changes, the endpoint-only fast path, scoped
// pushes, and metrics. It does not know how resources are built: a
// Generator turns (snapshot, proxy, type, names) into xds.Resources.
//
//	Update(snap, req) ──► debouncer ──(quiet time / max delay, merged)──► dispatch
//	                      (Run's goroutine)                                 │ current snapshot := snap
//	                                                                        ▼ enqueue, never blocks
//	  proxy ◄─ Send ─┐                                     per connection: mailbox (deliver-latest:
//	                 │                                      a pending event is merged with the next)
//	  proxy ─ Recv ─►reader goroutine ─► stream goroutine ◄──────┘
//	                                     │ requests: ACK/NACK, subscriptions, immediate responses
//	                                     │ pushes:   affects(proxy, before, after)? then per type,
//	                                     │           CDS → EDS → LDS → RDS (EDS only if !Full):
//	                                     ▼           Generate (≤ PushConcurrency at once),
//	                                   diff against versions last sent, send only if changed
//
// Each stream has two goroutines: a reader, which only forwards requests,
// and the stream goroutine, which owns all per-proxy state and is the only
// one that sends. A slow proxy therefore blocks only its own stream
// goroutine; pushes for it are merged in its mailbox, so the producer and
// the other proxies never wait for it.
//
// Per-proxy state never holds resource bodies. State of the world keeps,
// per type, one digest of the last sent set (which is also its
// version_info) and, for EDS/RDS, the sorted subscribed names. Delta keeps,
// per type, a sorted slice of (name, 64-bit version hash) — 24 bytes per
// resource — whose name strings are those of the generator's shared
// Resources rather than the copies unmarshalled from requests.
//
// Debugging (debug.go): DebugHandler serves /debug/syncz, every stream's
// per-type versions and nonces sent and ACKed with its state (SYNCED, STALE,
// NACKED, NOT SENT) and last NACK error, read under connection.mu like
// Clients(); and /debug/config_dump?proxyID=, an Envoy admin ConfigDump of
// what the proxy is sent. Since no bodies are kept, the dump asks the stream
// goroutine, through the connection's inspect channel, for a copy of its
// subscriptions and last processed snapshot (it answers between requests
// and pushes; a stream blocked in Send makes the dump time out rather than
// race), then generates the resources again on the HTTP goroutine with a
// generation slot held.
//
// Authentication: Register serves streams as the node describes the proxy
// (the plaintext port); RegisterAuthenticated puts a StreamAuth in front
// of every stream on that gRPC server, called once with the parsed proxy
// before Config.Authorizer. It may refuse (its gRPC status is returned,
// other errors are PermissionDenied) or bind the proxy to the identity the
// caller proved (the control plane's secure port takes namespace and
// service account from the client certificate). Both registrations share
// one Server: the same snapshot, pushes and debug views.
//
// Transport limits (limits.go): GRPCLimits.ServerOptions are the gRPC
// server options of an xDS port — 4 MiB per request message, 100 streams
// per connection (extra ones REFUSED_STREAM; this also caps handler
// goroutines), 16 KiB of headers, 10 s handshake, keepalive pings after
// 30 s of silence with a 10 s timeout, client pings at most every 15 s
// (else GOAWAY too_many_pings). Package h2raw is the raw HTTP/2 client the
// tests use to break them.
//
// Protocol decisions are documented on the sotw and delta types; unknown
// type URLs are ignored (see typeIndex). Goroutines: Run owns the debounce
// loop; gRPC owns the stream goroutines, which end when their stream ends or
// Run's context is done; Run returns after all of them have left their loop.
package server
