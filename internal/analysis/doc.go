// Package analysis implements the checks of `trellis analyze`: it looks at
// a whole configuration (objects, the store's problems, the services and
// endpoints the registry derived) and reports what will not work as the
// author meant, the way `istioctl analyze` does.
//
//	store problems ─┐
//	                ├─► Analyze(Input) ─► checks (pure) ─► []Message, sorted
//	model.Snapshot ─┘   configs, services, endpoints
//
// Messages carry Istio's IST codes where Istio has an equivalent check, so
// that documentation and habits carry over, and TRL codes where it has none
// (Types lists them). Each message names the object (kind, namespace/name),
// where it was read (file and YAML document) and the field at fault.
//
// Host names follow the runtime's rules: short names are completed in the
// namespace of the object that writes them, wildcard ServiceEntry hosts
// cover the names they match, exportTo limits what a VirtualService
// namespace sees, and subsets are looked up in the DestinationRule that
// applies with Istio's precedence (model.Scope). The checks read only
// their input and never fail: an object that cannot be checked is skipped.
//
// What is not checked (yet): Kubernetes Services and Pods (there is no
// Kubernetes registry), Gateway API routes, AuthorizationPolicy and
// PeerAuthentication references, VirtualService hosts missing from the
// bound Gateway's servers (IST0132).
package analysis
