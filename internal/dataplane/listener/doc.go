// Package listener runs a proxy's listeners the way Envoy does: LDS
// Listeners are compiled into immutable values, their sockets bound, each
// accepted connection inspected by listener filters, handed off by
// original destination, matched to a filter chain and served by that
// chain's network filters (tcp_proxy today, the HTTP connection manager
// later), through the NetworkFilters/ConnHandler seam.
//
//	LDS Listener ──Compile(l, NetworkFilters)──► *Listener (immutable; an error is the NACK)
//	                  ├ listener filters: original_dst, tls_inspector, http_inspector (+ filter_disabled)
//	                  ├ filter chain index (Envoy's FilterChainMatch tree)
//	                  └ each chain's ConnHandler: NetworkFilters.Build per filter, Wrapper for non-terminal ones
//
//	Manager.UpdateSet(xdsset.Set) ── all or nothing: compile, check addresses, bind new sockets
//	   │  (Update([]Listener): the same, versions hashed from the messages' content)
//	   │  unchanged listener (same version) ─► kept as is, not decoded; only the
//	   │  compiled *Listener and its version are kept, not the message
//	   │  changed listener ─► new generation; the socket is kept (a changed
//	   │  transparent option is set on it in place); old connections drain
//	   └  removed listener ─► socket closed; its connections drain (Config.DrainTimeout)
//	   draining = the old generation's handlers get Drainer.Drain (HTTP: Connection: close,
//	   GOAWAY) and, once its last connection ended, io.Closer.Close
//
//	Manager.Drain(Selector)          Drainer.Drain on the selected listeners (also those a
//	                                 later Update changes); they keep accepting (graceful drain)
//	Manager.StopListening(Selector)  close the selected sockets for good; connections go on
//
//	accept (per bound socket; connection limit, C8)
//	   └─► one goroutine per connection:
//	        listener filters of the accepting listener ── read with deadlines:
//	        │   listener_filters_timeout (continue or close) and Config.HandshakeTimeout (C6: close)
//	        │   bytes read are buffered, never lost
//	        ├─ use_original_dst and destination restored ─► listener at exact ip:port,
//	        │       else 0.0.0.0:port / [::]:port ─► its listener filters run too (no further hand-off)
//	        ├─ transport_protocol defaults to "raw_buffer"
//	        ├─ Match ─► chain, else default_filter_chain, else close
//	        ├─ tls transport socket ─► TLS handshake (package tlssock) on this goroutine, within
//	        │       Config.HandshakeTimeout from the accept; failure ─► TLSMetrics, close
//	        └─► ConnHandler.Serve(ctx, *Conn)   Conn replays the buffered bytes, then reads the
//	                socket (a *tls.Conn when the chain terminates TLS; Conn.TLS, MutualTLS,
//	                PeerIdentity describe the session); the socket's reads and writes are
//	                raw system calls (package sockio), listener filters read it plainly
//
// # Filter chain matching
//
// Match follows Envoy's FilterChainManagerImpl. The levels, in order, are
// destination_port, prefix_ranges (destination IP), server_names,
// transport_protocol, application_protocols, direct_source_prefix_ranges,
// source_type, source_prefix_ranges, source_ports. At each level the most
// specific entry present is taken: the exact port, else port 0; the
// longest destination prefix; the exact server name, else the longest
// "*.suffix" wildcard (a name never matches its own wildcard), else none;
// the exact transport, else any; the first of the client's ALPN values that
// a chain lists, else any; the longest direct-source prefix; SAME_IP_OR_LOOPBACK
// or EXTERNAL, else ANY; the longest source prefix; the exact source port,
// else any. Once an entry is taken there is no backtracking: if nothing
// below it matches, the connection gets the default chain (or is closed),
// even if a less specific entry would have matched. Compile rejects, as
// Envoy does, chains with the same FilterChainMatch, chains that overlap
// at any leaf, partial wildcards, malformed CIDRs and the unimplemented
// suffix fields. Server names are compared in lower case.
//
// # Listener filters
//
//   - original_dst restores the destination from Config.OriginalDst
//     (capture.OriginalDst: SO_ORIGINAL_DST). It is added in front when a
//     listener sets use_original_dst without it. A connection with no
//     original destination keeps its local address, unrestored, unless it
//     was accepted on a transparent socket: TPROXY leaves no conntrack
//     entry, and the local address is the original destination, so it is
//     restored from there and hand-off works as with REDIRECT.
//   - tls_inspector reads the ClientHello (one or more records, at most
//     max_client_hello_size, default and maximum 16 KiB) with its own
//     bounded parser and sets transport "tls", the SNI (lower-cased) and the
//     offered ALPN. Plain text is told apart on the first byte; a malformed
//     ClientHello counts as plain text unless
//     close_connection_on_client_hello_parsing_errors; one over the size
//     limit closes the connection.
//   - http_inspector, on raw_buffer connections only, sets ALPN "h2c" for
//     the HTTP/2 preface, "http/1.1" or "http/1.0" for an HTTP/1 request
//     line; anything else leaves ALPN empty. A request line still incomplete
//     after 8 KiB closes the connection.
//
// A peer that closes before the filters are done is closed (Envoy's
// remote_close). A filter whose filter_disabled predicate (any, and, or,
// not, destination_port_range) matches the destination port is skipped.
//
// # Not supported (rejected by Compile)
//
// UDP, API and internal listeners, additional_addresses,
// filter_chain_matcher, FCDS, ECDS, PROXY protocol, transport sockets
// other than raw_buffer and tls (and the TLS fields package tlssock
// rejects), listener filters other than the three above.
// Socket options (but transparent), backlog and buffer limits are not
// applied.
//
// # Transparent listeners (TPROXY)
//
// A listener with transparent: true gets a socket with IP_TRANSPARENT
// (IPV6_TRANSPARENT on IPv6) set before bind, through Config.Listen with
// SocketOptions.Transparent (default Listen; Linux only, needs
// CAP_NET_ADMIN). A refused option rejects the update with the
// listener's name and the reason, e.g. `listener "virtualOutbound":
// binding 0.0.0.0:15001: transparent: setsockopt IP_TRANSPARENT:
// operation not permitted (needs CAP_NET_ADMIN)`; what is in force keeps
// serving. Turning transparent on or off keeps the listener's socket and
// sets or clears the option on it (the TPROXY target checks it per packet;
// accepted sockets inherit it), once the rest of the update has succeeded;
// a refused change rejects the update and sets back those already made.
//
// # Downstream TLS
//
// A filter chain with an envoy.transport_sockets.tls DownstreamTlsContext
// terminates TLS before its network filters: the context is compiled by
// tlssock.CompileServer (errors are the listener's NACK) and its SDS names
// ("default", "ROOTCA", ...) are resolved per handshake from
// Config.Secrets, so a rotated certificate or bundle applies to the next
// connection and established ones are untouched; a name that is not ready
// is waited for within the handshake timeout. A listener with such a chain
// is rejected when the manager has no Secrets. PERMISSIVE ports work by
// filter chain matching: the TLS inspector's transport "tls" and
// ClientHello ALPN pick the TLS chains, plain text the raw_buffer ones.
// Failed handshakes are counted by reason through TLSMetrics (an optional
// interface of Metrics).
//
// # Goroutines and state
//
// Run starts one accept goroutine per bound socket (Update starts those of
// new sockets while running); each accepted connection has one goroutine,
// which runs the handler. Close closes sockets and connections, cancels
// handler contexts and waits for all of them. The configuration in force
// is an immutable value swapped atomically; per-generation connection sets
// are guarded by one mutex.
package listener
