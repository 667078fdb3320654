// Package pgv validates protobuf messages against their protoc-gen-validate
// (PGV) rules by reflection, giving the same verdicts and the same error
// strings as the Validate/ValidateAll methods PGV generates.
//
// Why: the proxy validates every xDS resource and typed config as Envoy
// does. Calling go-control-plane's generated methods links 2.4 MB of
// machine code plus tables; without any call cmd/trellis-proxy shrinks
// from 34 to 27 MB (stripped, as the image builds it: 22.6 to 18.1 MB) and
// each sidecar's resident memory by 2–3.7 MB (file-backed pages: −3.3 MB;
// the rules compiled here and the descriptor options they read keep
// ~0.65 MB of heap with 1,000 services).
// The rules themselves are already in the binary, in the descriptors'
// options: (validate.rules) on fields, (validate.required) on oneofs,
// (validate.disabled) and (validate.ignored) on messages.
//
//	proto.Message ──descriptor──► rulesFor (cache) ──► msgRules: fields, oneofs, proto3 optionals
//	      │                                               │ node per field: message, wrapper, string,
//	      └──────────────── protoreflect values ─────────►│ bytes, numbers, enum, repeated, map,
//	                                                      ▼ any, duration, timestamp
//	                                       FieldError / MultiError (the generated strings)
//
// What it matches, template by template (protoc-gen-validate v1.3.3,
// templates/go and templates/goshared): the order of checks (fields outside
// oneofs in declaration order, then each oneof, then proto3 optional
// fields; within a field the order of its template); the error text
// "invalid <Message>.<Field>: <reason>[ | caused by: <cause>]" with Go names
// (nested types joined by "_", elements as Field[index] and Field[key], map
// keys sorted); the reasons, with rule values formatted as the generator
// formatted them (fmt.Sprint of the Go value, %q for patterns and
// prefixes, time.Duration and UTC time.Time strings); well_known_regex
// turned into its pattern as PGV's checker does; recursion into every
// embedded message whose type has PGV code (Envoy, xDS and UDPA trees, or
// files importing validate.proto) unless message.skip, never into
// google.protobuf.Any or other well-known types; ValidateAll's "; " join.
//
// Known differences: a oneof wrapper holding a nil pointer (a Go-only
// state protoreflect cannot see and unmarshalling never produces) gives
// "oneof value cannot be a typed-nil" as the generated code does, but
// ValidateAll then goes on without reading the member, where the generated
// code dereferences the nil wrapper and panics. Duration in/not_in reasons
// print the rule values with this binary's prototext spacing (no Envoy
// proto uses them). A pattern that does not compile (which PGV refuses to
// generate code for) matches nothing.
//
// Compiled rules are cached per message descriptor in a package-level
// sync.Map: descriptors are immutable and live for the whole program, so
// the cache cannot go stale. Only types actually validated (and the
// embedded types they reach) are compiled; nodes keep pointers to the
// rule messages already held by the descriptors' options.
//
// Speed: slower than the generated code (see BenchmarkValidateAll*),
// which only matters for large route tables; validation runs once per
// received resource.
package pgv
