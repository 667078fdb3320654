// Package route generates the route configurations (RDS) of a sidecar from
// its model.Scope, the way Istio's pilot does (networking/core/httproute.go
// and networking/core/route), so that VirtualServices written for Istio
// route the same traffic the same way.
//
//	Build(scope, names) ── per requested name ──┐
//	                                            ▼
//	  "9080"            outbound, shared per port:  VirtualHosts(scope, 9080)
//	                                                  + allow_any | block_all
//	  "reviews.x:9080"  outbound, sniffed port on a VIP: the one vhost of that
//	                                                  host, domains ["*"]
//	  "inbound|9080||"  inbound: one "inbound|http|9080" vhost → inbound|9080||
//	  anything else     an empty RouteConfiguration (as Istio answers)
//
//	VirtualHosts(scope, port)
//	  services with an HTTP or undeclared (sniffed) port ─┐
//	  scope.VirtualServices (oldest first) ─► HTTPRoutes ─┴─► one vhost per host
//	      delegate.go  expand delegate VirtualServices (one level, as Istio)
//	      match.go     HTTPMatchRequest → RouteMatch; sourceLabels/namespace/gateways/port
//	      httproute.go destinations, redirect, directResponse, rewrite, timeout,
//	                   mirrors, decorators, metadata
//	      retry.go fault.go cors.go headers.go hash.go   one concern each
//	                   (retry.go also shares a virtual host's retry policy)
//
// # Names and domains
//
// Route configuration names follow the listener generator: "<port>" for
// the shared outbound HTTP route of a port, "<host>:<port>" for a sniffed
// (protocol-undeclared) service port bound to its VIP, and
// "inbound|<targetPort>||" for inbound. A virtual host is named
// "<host>:<port>"; its domains are the host, Istio's short forms for
// "*.svc.<suffix>" hosts (name, name.ns, name.ns.svc; name alone only from
// the proxy's own namespace), and the service's VIPs. Domains repeated
// across virtual hosts are dropped from the later one, as Istio does. As in
// Istio ≥ 1.20, outbound and sniffed route configurations set
// ignore_port_in_host_matching, so no domain carries a ":<port>" form (Host
// "reviews:9080" matches "reviews"); for proxyless gRPC, which cannot
// ignore the port, VirtualHosts adds the host:port form of each domain.
//
// The proxy's DNS domain is taken to be "<namespace>.svc.<suffix>": the
// node's DNSDomain field is deliberately not read, because the generator
// cache (xds/gen.Key) does not key on it. The proxy fields read are
// Namespace, Labels, Generator and (for inbound decorators) its service
// instances.
//
// # Retry policies
//
// A route without retry_policy takes its virtual host's (Envoy, and gRPC's
// xDS client). The retry policy a virtual host's routes carry most
// (usually Istio's default) is written once on the virtual host instead of
// on each route: always when all its forwarding routes carry it (a lone
// default route included), else when that saves bytes. Routes with another
// policy keep theirs, and routes with none (retries.attempts 0, which Istio
// expresses as no policy) then get an empty retry_policy, which Envoy reads
// exactly as none, so that they do not inherit the virtual host's.
//
// # Precedence
//
// A service takes the routes of the oldest VirtualService naming its host
// exactly, else of the VirtualService with the most specific wildcard host
// covering it (oldest on ties). A VirtualService that yields no route on a
// port (all matches filtered by port, sourceLabels, sourceNamespace or
// gateways) leaves its services on the default route. VirtualService hosts
// that are not services become their own virtual hosts, on port 80 always
// and on other ports when the VirtualService also covers a service there
// (Istio's rule).
//
// # Errors
//
// Generation never fails as a whole. Problems (a missing or looping
// delegate, a redirect code Envoy cannot express, a route with no usable
// destination) drop the smallest piece that carries them and are returned
// by BuildWithErrors, VirtualHosts and HTTPRoutes for the caller to log.
//
// Everything here is a pure function of the scope: no I/O, no globals
// besides immutable tables, output sorted (virtual hosts by name; routes in
// VirtualService order).
package route
