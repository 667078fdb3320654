// Package samples locates the Istio sample configuration that tests read.
// The samples are not part of this module; they are checked out beside it:
//
//	<checkout>/
//	├── main/                        module root (go.mod)
//	└── shared/data/istio-samples/   Dir
//	    └── bookinfo/networking/...  Path(t, "bookinfo/networking/...")
//
// Both functions fail the test, saying where the samples are expected, when
// they are absent. Tests run in their package directory, which is how the
// module root is found.
package samples
