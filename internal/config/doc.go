// Package config holds the kind-agnostic representation of one configuration
// object as Trellis sees it: Kubernetes-style metadata, a typed Istio spec
// (a proto.Message from istio.io/api) and where the object came from.
//
// Objects are values: once a Config has been handed to a store it is never
// mutated again, so it can be shared between goroutines freely.
//
//	YAML / CRD ──decode──► Config{Meta, Spec} ──validate──► store ──► snapshot
package config
