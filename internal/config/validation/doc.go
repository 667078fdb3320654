// Package validation applies Istio's semantic rules to decoded configuration
// objects: the checks istiod's validating webhook makes, together with the
// CEL and schema rules of Istio's CRDs that a Kubernetes API server would
// enforce before the webhook sees the object.
//
//	config.Config ──Validate──► (Warnings, error of type Errors)
//	                  │
//	                  ├─ metadata: labels, annotations, kind-specific name rules
//	                  └─ spec: one file per kind (virtualservice.go + httproute.go,
//	                           destinationrule.go, gateway.go, serviceentry.go,
//	                           workload.go, sidecar.go, security.go), sharing the
//	                           syntax helpers of names.go
//
// Validate is a pure function of one object. Rules that need other objects
// (a Gateway that a VirtualService names, the single selector-less Sidecar
// of a namespace) belong to the store or to analysis, not here.
//
// Every problem is a *FieldError whose Field is the JSON path from the
// object root ("spec.http[0].route[1].weight"), so that a caller can prefix
// it with the object's source, kind and name.
//
// Deliberate differences from Istio:
//   - Regular expressions: like Istio, at most 1024 bytes and valid RE2
//     syntax as Go's regexp package parses it. Envoy's program-size limit is
//     not applied: Istio configures Envoy to accept large programs, and Go's
//     program size would not predict RE2's anyway.
//   - Route weights are relative, as in Istio: each must be >= 0 and, with
//     several destinations, they must not all be 0; they need not sum to 100.
//   - Abort and direct-response statuses must be 200..599 (Envoy's limit;
//     Istio's webhook lets 600 through and Envoy then rejects the route).
//   - A fault delay must have fixedDelay, which Envoy requires.
//   - Header names that routes add, set or remove, and JWT fromHeaders, must
//     be RFC 7230 tokens; Istio only rejects empty names.
//   - Selector labels must have Kubernetes label syntax; Istio only rejects
//     empty keys and wildcards.
//   - Inline JWKS are checked for shape (a key or a key set with "kty"),
//     not parsed as keys.
//   - DYNAMIC_DNS ServiceEntries must use wildcard hosts, as Istio's API
//     documentation requires.
package validation
