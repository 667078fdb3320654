// Package xdsclient is the proxy's xDS client: one ADS stream to the
// control plane, delta (DeltaAggregatedResources) by default, state of the
// world (StreamAggregatedResources) by configuration or as a fallback when
// the server answers delta with Unimplemented. It subscribes to CDS and LDS
// (wildcard) and to the EDS and RDS names they reference, decodes and
// validates every resource (Envoy types, PGV ValidateAll, HCMs unpacked),
// hands complete per-type sets to a Consumer, ACKs or NACKs, and reconnects
// with jittered exponential back-off.
//
// # Memory
//
// The client keeps each accepted resource serialized: name, version, the
// body (the value of its Any, compressed against a per-type dictionary:
// packer.go; 1.75 MB of bodies with 1,000 services are kept in ~0.2 MB)
// and the names it references; decoded
// messages live only while a response is handled. A Consumer is given a
// Set (set.go) with the complete set, the versions and Changed (against
// the last accepted set); Msg returns the messages of the response as
// they were decoded for validation and decodes the others from the kept
// bytes on demand. The Set is invalid once Apply returns, and consumers
// keep what they compiled with the version it came from, so with a large
// configuration the decoded form (several times the serialized size: Struct
// metadata maps, strings) is garbage after every update. Resources (the
// config dump) decodes the kept bytes anew on every call.
//
// Layering follows grpc-go's internal/xds/clients: a byte-level Transport
// (gRPC by default, plaintext or with Config.Credentials; MeshTLS (tls.go)
// is mutual TLS to the control plane's secure port with the workload
// certificate "default" as client certificate and the control plane
// verified against "ROOTCA" for a configured server name, both read from
// the secret store per handshake, so renewals apply on reconnection), a
// stateless wire protocol per variant (delta.go, sotw.go), resource types
// as values (resources.go), and one state machine (state.go) that does no
// I/O and calls the consumer serially.
//
//	            Run's goroutine (owns state, sends, calls the consumer)
//	          ┌────────────────────────────────────────────────────────┐
//	server ──►│ reader ──bytes──► protocol.decode ──► state.handle      │
//	 (ADS)    │ goroutine                              │ decode+validate │
//	          │                                        │ merge → Apply ──┼──► Consumer
//	          │                                        │ ACK / NACK      │
//	          │                                        │ EDS/RDS names   │
//	server ◄──┤ Send ◄── proto.Marshal ◄── state.out ◄─┘ warming, held   │
//	          │ timer ──► state.tick (initial fetch / warming timeouts)  │
//	          └───────────────┬────────────────────────────────────────┘
//	                          └──► board (mutex) ──► Status(), Resources()
//
// # Subscriptions
//
// CDS and LDS are wildcard (legacy form: no names). EDS names are the EDS
// clusters of the accepted CDS set (eds_cluster_config.service_name, else
// the cluster name); RDS names are the route_config_name of every
// HttpConnectionManager using rds in the accepted listeners (filter
// chains, default_filter_chain, api_listener). When an accepted CDS or LDS
// set changes them, the client subscribes (delta: resource_names_subscribe;
// sotw: the new resource_names) and drops unsubscribed resources at once:
// the consumer is given the smaller set right after the CDS (or LDS) set.
//
// # Acceptance
//
// A response is accepted or rejected as a whole. It is rejected if any
// resource fails to decode or validate (the consumer is not called) or if
// the consumer returns an error for any resource. A response that changes
// nothing (same names and versions; sotw versions are hashes of the bodies)
// is ACKed without calling the consumer. After a NACK the client keeps its
// last accepted set: in sotw, version_info stays the last accepted; in
// delta, the NACK is error_detail with the nonce. The rejected content is
// not re-requested; it is replaced when the server sends something new.
// In delta the server then believes the client has the rejected versions,
// so other resources of a rejected delta response are not applied until
// they change again or the stream reconnects (initial_resource_versions
// lists only what was accepted, so the server resends the rest).
//
// # Warming and delivery order (what is implemented)
//
//  1. At start the client subscribes to CDS only. The initial fetch timeout
//     (Config.InitialFetchTimeout, default 15s) starts with Run.
//  2. When a CDS set is accepted, the consumer gets it, the CDS response is
//     ACKed, then EDS is (re)subscribed. Every newly subscribed EDS name that
//     has no accepted assignment is "warming".
//  3. LDS is subscribed once the first CDS response has been handled
//     (accepted or rejected, as Envoy does not block start-up on a bad CDS)
//     and no EDS name is warming, or when the initial fetch timeout elapses,
//     whichever comes first. It stays subscribed for the client's life,
//     across reconnections.
//  4. RDS is subscribed when an accepted LDS set names routes, hence after
//     LDS.
//  5. A name stops warming when an accepted EDS response carries it (or, in
//     delta, lists it as removed), when it is unsubscribed, when an EDS
//     response is rejected (as Envoy ends warming on a failed update), or
//     when the initial fetch timeout elapses from the time warming began.
//  6. While any EDS name warms, LDS and RDS responses are held, unACKed, and
//     processed in arrival order when warming ends. So on the first sync and
//     on every later update, the consumer sees CDS before the EDS of new
//     clusters, before LDS, before RDS. The server's own push order (CDS,
//     EDS, LDS, RDS) orders the rest.
//
// # Reconnection
//
// A stream that ends is reopened after Backoff.Delay (full jitter in
// [0, min(Base·2^n, Max)), base 500ms, max 30s); the sequence restarts after
// a stream that lived Backoff.ResetAfter. The consumer is not called on
// disconnection and keeps serving. On the new stream every subscribed type
// is requested again in CDS, EDS, LDS, RDS order: delta with
// initial_resource_versions of the accepted resources, sotw with the last
// accepted version_info. Held responses of the old stream are discarded
// (they were not ACKed; the server sends the content again).
//
// # Goroutines
//
// Run's goroutine owns all protocol state and is the only one that sends
// and calls the Consumer and Metrics. Each stream has one reader goroutine,
// which Run waits for before opening the next stream or returning.
package xdsclient
