// Package configsource is the configuration store of a Kubernetes cluster:
// a store.Store over the informers of every Istio kind the file source
// reads (networking.istio.io and security.istio.io, read at v1, so objects
// written at v1beta1 or v1alpha3 are seen too) and of the Gateway API
// kinds Gateway, HTTPRoute, GRPCRoute, TCPRoute, TLSRoute and
// ReferenceGrant (gateway.networking.k8s.io/v1).
//
//	informer handlers ─► dirty (kind, ns/name) ─► Run's loop: reconcile ─► Index + Problems ─► Dispatcher ─► handlers
//	 (only record keys)     (coalesced)            read the cache, convert,     (store.mu)        (serial, in order)
//	                                               store.Check(validate)
//
// Objects are judged as the file source judges them: store.Check with the
// injected validate function (ingest.Validate, the same validators). An
// invalid object is a Problem naming its kind, namespace/name, field and
// reason (Source "kubernetes") and is not applied; its last valid version,
// if any, stays in force until the object is fixed or deleted. A later
// valid version clears the problem; a deletion removes the object and its
// problems. Validation warnings are kept as warning Problems of the object
// in force.
//
// Istio specs are the istio.io/api messages of the cached objects
// (shared with the informer cache, which never mutates them). Gateway API
// specs are Go structs; a Config carries them as a google.protobuf.Struct
// of their JSON form (schema.GatewayAPI). Trellis does not translate them
// yet and does not validate them beyond what the API server enforces.
//
// Resource versions, generations and creation timestamps are the API
// server's. Run starts the informers, waits until the handlers have seen
// the initial listing, admits it and only then reports HasSynced. The
// Source has no Writer side: objects are written through the API server.
package configsource
