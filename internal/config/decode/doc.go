// Package decode turns Kubernetes-style YAML (one file, possibly holding many
// documents or a `kind: List`) into typed configuration objects.
//
//	file bytes ──split on "---"──► document ──YAML──► generic tree ──┬─ envelope: apiVersion, kind, metadata
//	                                                                 └─ spec ──schema walk──► JSON ──protojson──► proto.Message
//
// Each document yields a config.Config, a Skipped entry (a kind that is not
// Istio configuration, such as a Deployment) or one or more *Error values
// that name the file, the document, the object and the field at fault. A bad
// document never prevents the others from decoding.
//
// The spec is decoded strictly: unknown fields, wrong types and unknown enum
// values are errors. Durations are accepted in Go form ("1m30s", "100ms")
// as Istio and Kubernetes accept them, as well as in protobuf JSON form
// ("90s"). Semantic rules (host syntax, port ranges, ...) are not checked
// here; that is the job of package validation.
//
// Input is untrusted: the file size, the number of documents, the size of a
// single document, nesting depth and alias expansion are bounded, and the
// decoder never panics.
package decode
