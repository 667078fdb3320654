// Package gentest holds fixtures shared by the xDS generator tests: a
// snapshot built from Istio YAML files (with services and endpoints derived
// from ServiceEntry and WorkloadEntry objects by a small test-only
// converter), proxies, PGV validation and golden files.
//
//	YAML files ──Decode──► []config.Config ──Registry──► services, endpoints
//	                              └──────────────┬──────────┘
//	                                     model.NewSnapshot ──► Scope(Proxy(...))
//
// Golden files live in the calling package's testdata/<name>.golden and are
// rewritten with `go test -update`. The -update flag is registered by this
// package; test packages that import gentest must not register their own.
//
// The converter mirrors what Istio's ServiceEntry registry does for the
// cases generator tests need (hosts × ports, inline endpoints, workload
// selectors over WorkloadEntries, DNS hosts as endpoints). It is not the
// registry: internal/registry/serviceentry is.
package gentest
