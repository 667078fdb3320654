// Package capture owns a sidecar's transparent traffic capture: the
// iptables rules that steer a pod's TCP traffic through the proxy, and the
// recovery of each redirected connection's original destination.
//
// The rule set mirrors Istio's istio-iptables (same chain names, same order,
// same ports), so operators and tools that know Istio's rules read ours:
//
//	            inbound (from the network)                 outbound (from the pod's processes)
//	nat PREROUTING ── -p tcp ──► ISTIO_INBOUND       nat OUTPUT ── -p tcp ──► ISTIO_OUTPUT
//	                               │                                            │
//	   dport 15008 (HBONE) ──────── RETURN            dport in exclude ports ── RETURN
//	   dport 15090,15021,15020 ──── RETURN            -o lo -s 127.0.0.6 ────── RETURN  (proxy → app passthrough)
//	   dport in exclude ports ───── RETURN            per proxy UID/GID:
//	   every other port ("*"),          │               -o lo ! -d 127.0.0.1,
//	   or each listed port              │                 owner=proxy ───────── ISTIO_IN_REDIRECT (app → own VIP → proxy → app)
//	                                    ▼               -o lo owner≠proxy ───── RETURN  (app → itself over lo)
//	                           ISTIO_IN_REDIRECT        owner=proxy ─────────── RETURN  (the proxy's own traffic)
//	                          REDIRECT → :15006        -d 127.0.0.1 ─────────── RETURN  (explicit localhost)
//	                                                   -d excluded CIDR ─────── RETURN
//	                                                   dport in include ports ─ ISTIO_REDIRECT
//	                                                   every destination ("*")
//	                                                   or each included CIDR ── ISTIO_REDIRECT
//	                                                                               REDIRECT → :15001
//
// IPv6 uses the same rules through ip6tables, with ::6 and ::1 for
// 127.0.0.6 and 127.0.0.1.
//
// TPROXY mode (tproxy.go) steers the same traffic without the nat table,
// so that no connection is tracked (conntrack's per-packet lookups and NAT
// rewrites are a measurable part of a sidecar's cost): the mangle table
// marks captured outbound packets, a policy rule (fwmark 1337 → table 133,
// "local default dev lo") loops them through lo, and the TPROXY target hands
// each connection's SYN to a transparent capture listener, whose accepted
// socket carries the original addresses, so later packets find it by the
// ordinary socket lookup. It differs from Istio's TPROXY mode, which only
// changes inbound capture, tracks connections and preserves the client's
// source address towards the app (original_src); here outbound is TPROXY
// too, the app sees the proxy's address as in REDIRECT mode, and every
// inbound port but a known list must be captured: without conntrack, a
// reply from an uncaptured inbound port is recognised only by its source
// port.
//
// Three parts, each usable alone:
//
//	Rules(Config) → Ruleset      pure and deterministic; golden-tested.
//	Iptables.Apply / Remove      one iptables-restore --noflush transaction per
//	                             family in the current network namespace, via a
//	                             Runner (ExecRunner runs the real tools; tests
//	                             fake it). Apply replaces existing ISTIO_* chains
//	                             atomically (TPROXY mode installs its policy
//	                             routing with `ip` first); Remove deletes only
//	                             ISTIO_* chains of known names and the jumps into
//	                             them, RemoveRouting the policy rule and route.
//	OriginalDst(*net.TCPConn)    getsockopt SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST
//	                             (REDIRECT mode; in TPROXY mode the local address
//	                             is the original destination).
//
// DNS capture (Istio's port 53 → 15053 rules) is not part of this package
// yet.
package capture
