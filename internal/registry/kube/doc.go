// Package kube is the registry.Registry of a Kubernetes cluster: Services
// and their EndpointSlices, joined with Pods (labels, service account,
// workload), Nodes (locality) and the system Namespace (default network).
// It reads the cluster only through internal/kube's informers and joins
// the ServiceEntry registry through registry/aggregate.
//
//	informer handlers ─► dirty namespaces ─► Run's loop: buildNamespace ─► diff ─► publish ─► Change handlers
//	(Service, Slice, Pod,   (coalesced)        (pure conversion from         │        (atomic swap
//	 Node, Namespace)                           the informer caches)        │         of an immutable state)
//	                                                                        └► keys changed / endpoints-only
//
// # Services (ConvertService)
//
// A Service <name> in <ns> is the host <name>.<ns>.svc.<DomainSuffix>.
// ClusterIP services keep every cluster IP and are balanced client-side;
// headless services have no address and Passthrough resolution; an
// ExternalName service is mesh-external with DNS resolution and one
// endpoint, the external name. Port protocols follow Istio (Protocol): UDP
// ports are UDP; appProtocol when set (kubernetes.io/h2c → HTTP2, /ws →
// HTTP, /wss → HTTPS; any other value is read like a port name, and the
// port name is then not consulted); else the port name's
// <protocol>[-suffix] prefix; an undeclared protocol on 25, 53, 3306 or
// 27017 is TCP, otherwise it is sniffed. A numeric targetPort is kept; a
// named one is resolved by the EndpointSlice's ports. The
// networking.istio.io/exportTo annotation is read like a ServiceEntry's
// exportTo. spec.selector becomes the service's Selector.
//
// # Endpoints
//
// Endpoints come from the discovery.k8s.io/v1 EndpointSlices labelled
// kubernetes.io/service-name=<service> (FQDN slices are ignored, as in
// Istio). Conditions are classified as Istio does (EndpointHealth): ready
// or unset is Healthy; otherwise serving+terminating is Draining,
// terminating Terminating, anything else Unhealthy (an unset serving or
// terminating counts as true once ready is false). What is published
// follows Istio: Healthy endpoints as model.Healthy (EDS HEALTHY);
// Draining ones as model.Draining (DRAINING: no new requests, established
// connections kept) only for Services labelled istio.io/persistent-session
// or istio.io/persistent-session-header, and left out elsewhere;
// Unhealthy ones as model.Unhealthy (UNHEALTHY) only with
// Config.SendUnhealthyEndpoints (Istio's PILOT_SEND_UNHEALTHY_ENDPOINTS);
// Terminating ones never. When one address is in two slices (moving
// between them) a healthy copy wins. An endpoint whose targetRef is a Pod the cache does not hold
// yet is left out until the Pod arrives (as Istio does). Each address is
// one endpoint with the slice's named ports; from the Pod come its labels,
// service account, workload name (the Deployment of a ReplicaSet-owned
// Pod, else the controller's name, else the Pod's), TLS mode (the
// security.istio.io/tlsMode label, else "disabled") and network (the
// topology.istio.io/network label, else the system namespace's label); the
// locality is the Pod's istio-locality label, else the Node's
// topology.kubernetes.io/region, /zone and topology.istio.io/subzone labels
// as region/zone/subzone.
//
// # Concurrency and changes
//
// Informer handlers only mark namespaces dirty (Node labels and the
// system namespace's network label mark all) and wake Run's goroutine,
// which owns the per-namespace state: it rebuilds each dirty namespace
// from the caches, diffs it with the previous one, publishes a new
// immutable state (readers never lock) and calls the handlers serially:
// one Change for services added, removed or changed, one with
// EndpointsOnly for services whose endpoints alone changed. Unchanged
// services and endpoint lists keep their pointers. Pod updates that change
// nothing endpoints use (labels, service account, node, owners) are
// ignored. Run starts the informers, waits for their sync, builds
// everything once and only then reports HasSynced.
package kube
