// Package serviceentry is the registry.Registry built from configuration:
// ServiceEntry, WorkloadEntry and WorkloadGroup objects, as Istio's
// serviceentry controller builds services and instances from them. It is
// how non-Kubernetes workloads (and, in local mode, every workload) enter
// the mesh.
//
//	store events ─► per-namespace inputs ─► buildNamespace (pure) ─► diff ─► Change handlers
//	(SE, WE, WG)      (owned under mu)        services + endpoints      │
//	                                                  │                 │
//	                                     state (immutable) ◄── atomic swap
//	                                                  │
//	                        Services() / Endpoints() read without locks
//
// # Conversion (pure functions)
//
// ConvertServices turns one ServiceEntry into one model.Service per host:
//
//   - Ports keep their name, number and targetPort. The protocol comes only
//     from the port's protocol field (model.ParseProtocol). An empty protocol
//     is UnsupportedProtocol, which means "sniffed": Istio's convertPort calls
//     protocol.Parse(port.Protocol) and does NOT infer the protocol from the
//     port name for ServiceEntries (that convention applies to Kubernetes
//     Service ports only).
//   - resolution STATIC/DNS/DNS_ROUND_ROBIN/NONE map to ClientSideLB, DNSLB,
//     DNSRoundRobinLB and Passthrough; location MESH_EXTERNAL (the enum's
//     default) sets MeshExternal.
//   - addresses: IPs are kept, CIDRs kept as prefixes, a full-length prefix
//     (/32, /128) becomes a plain IP, anything else is dropped (as Istio does).
//   - exportTo is resolved: "." becomes the namespace; "*" and "~" stay (they
//     mean everyone and nobody to model.NewVisibility); sorted, deduplicated;
//     empty means the mesh default.
//   - subjectAltNames become ServiceAccounts; workloadSelector.labels become
//     Selector (a present but empty selector selects every WorkloadEntry of
//     the namespace); the object's labels, creation time and key are kept.
//
// ConvertEndpoints turns the inline endpoints of a ServiceEntry into
// endpoints of one of its services. A DNS or DNS_ROUND_ROBIN entry with no
// endpoints and no workloadSelector gets one endpoint whose address is the
// host itself (Istio does the same), TLS mode "disabled".
//
// ConvertWorkloadEntry turns a WorkloadEntry into an endpoint. Labels are
// spec.labels merged with metadata.labels (metadata wins, as in Istio).
// WorkloadName follows Istio: the istio.io/autoRegistrationGroup annotation,
// else the service.istio.io/workload-name label, else the object name.
// Locality is spec.locality, else the istio-locality label with "." read as
// "/".
//
// TLS mode, for inline endpoints and WorkloadEntries alike (Istio's
// getTLSModeFromWorkloadEntry): the security.istio.io/tlsMode label when
// present, else "istio" when a serviceAccount is set, else "disabled". So
// neither kind defaults to "istio" unconditionally.
//
// Inline endpoints carry the ServiceEntry's namespace (Istio leaves it blank
// but uses that namespace for the SPIFFE identity) and no WorkloadName.
//
// # Selection
//
// A ServiceEntry with a workloadSelector selects the WorkloadEntries of its
// own namespace whose merged labels contain the selector. Endpoints of the
// same host declared by several ServiceEntries of one namespace are merged
// (Istio keys instances by host and namespace); the service itself is the
// one of the oldest entry (creation time, then name), as Istio's push
// context keeps the oldest. The same host in two namespaces is two services.
//
// # WorkloadGroup
//
// In Istio a WorkloadGroup is a template: when a VM proxy connects with
// AUTO_REGISTER_GROUP, istiod creates a WorkloadEntry from the group's
// template and metadata and the proxy's IP. Trellis does not implement
// auto-registration (yet), so a WorkloadGroup never yields an endpoint by
// itself, whatever its template says. What it does contribute: a
// WorkloadEntry in the same namespace annotated
// istio.io/autoRegistrationGroup=<group> (the link auto-registration
// writes) takes the group's template and metadata as defaults: labels
// template < group metadata < entry spec < entry metadata, and
// serviceAccount, network, locality, weight and ports from the template when
// the entry leaves them empty. For an entry Istio itself registered this is
// a no-op (it was created from the same template); for a hand-written one it
// behaves as if it had been registered.
//
// # Concurrency
//
// Store handlers run serially on the store's goroutine; they update the
// inputs under mu, rebuild only the namespace that changed, publish a new
// immutable state with an atomic swap and call the registry's handlers
// (still under mu, so they are serial). Readers never lock. Values reachable
// from a published state are never mutated; an unchanged service or
// endpoint list keeps its pointer across rebuilds.
//
// New registers the handlers; Run waits for the store to sync, reconciles
// once with the store's full listing (so a registry created after the store
// started misses nothing), then reports HasSynced. The caller runs the
// store.
//
// # Changes
//
// Each rebuild is diffed against the previous state of the namespace. Keys
// whose service was added, removed or changed are reported in a Change with
// EndpointsOnly=false; keys whose service is unchanged but whose endpoints
// changed (a WorkloadEntry added, removed, relabelled, or inline endpoints
// edited) in a separate Change with EndpointsOnly=true. Nothing is reported
// when nothing changed.
package serviceentry
