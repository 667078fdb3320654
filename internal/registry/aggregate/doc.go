// Package aggregate joins several registries into one registry.Registry:
// the ServiceEntry registry today, a Kubernetes registry later.
//
//	registry A ─┐                 Services(): union, sorted by host then namespace
//	registry B ─┼─► Aggregate ──► Endpoints(key): asked of the registry that owns key
//	registry C ─┘                 handlers: every child's changes, fanned in
//
// When two registries declare the same ServiceKey, the earlier registry in
// the list owns it: its service is listed and its endpoints are served; the
// later one is shadowed.
//
// The aggregate keeps no state of its own: every call reads the children,
// whose returned values are immutable. Run runs every child and returns
// when all have returned; HasSynced is true when every child has synced.
package aggregate
