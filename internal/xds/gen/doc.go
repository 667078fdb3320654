// Package gen turns a snapshot and a proxy into xDS resources: it picks the
// generator set for the proxy (Envoy-style sidecar, or proxyless gRPC),
// calls the pure per-type generators (gen/cluster, gen/endpoint,
// gen/listener, gen/route, gen/grpc), marshals the result, and caches it.
//
//	Generate(snap, proxy, type, names)
//	    │  key = Key(snap, proxy, type, names)   ── hit ──► shared []xds.Resource
//	    ▼ miss
//	  scope := snap.Scope(proxy) ─► per-type generator ─► xds.Marshal ─► cache
//
// The cache key names every input the generators read: the snapshot
// version, the resource type and requested names, and the proxy fields
// Key lists (type, generator, namespace, labels, service account (whether
// the proxy has an identity decides its inbound mTLS chains), locality, network,
// interception mode, IP family, the service instances at its addresses, and
// the addresses themselves when instances or Sidecar ingress make the output
// depend on them). Generators must not read any other field of
// model.Proxy; adding one means adding it to Key. Proxies with equal keys
// share one generated result, which is what keeps a push to a thousand
// similar proxies cheap. Entries for older snapshots are dropped when a new
// snapshot version is first seen.
package gen
