// Package describe explains, for one service or one workload, which
// configuration applies to it and why: the logic behind `trellis describe`,
// as pure functions of a model.Snapshot and the analysis messages of the
// same configuration.
//
//	model.Snapshot ──┐
//	                 ├─► Service(in, ref, from) ─► ServiceReport ─► WriteService (text)
//	[]analysis.Msg ──┘   Workload(in, ns, name)  ─► WorkloadReport ─► WriteWorkload
//	                                                   └─► JSON (the reports' own tags)
//
// The decisions themselves are the model's, so that the explanation cannot
// drift from what the generators do: visibility and Sidecar egress scoping
// (model.Scope), the DestinationRule in effect (Scope.DestinationRule),
// PeerAuthentication composition (Snapshot.PeerAuthentication) and
// AuthorizationPolicy selection (Snapshot.AuthorizationPolicies). This
// package adds the "why": it looks at every candidate the model looked at
// and says what made it win or lose (exportTo, Sidecar egress hosts,
// gateways, workloadSelector, namespace order, host specificity, age).
// VirtualService precedence follows the route generator: for a service,
// the oldest VirtualService naming its host exactly, else the one with the
// most specific wildcard host covering it.
//
// A service is described as seen by one client (a Viewpoint): by default a
// sidecar without labels in the service's own namespace; a workload or
// another namespace can be named, because exportTo, Sidecar resources and
// workload-selected DestinationRules depend on who is calling.
//
// Creation times are those of the snapshot: a directory read once gives
// every object the same time, so ties fall to namespace/name order, while
// a running control plane also knows which object it saw first.
package describe
