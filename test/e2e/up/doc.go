// Package up is the README's quickstart as an end-to-end test: it builds
// bin/trellis, runs `trellis up` with no DIR from a copy of the repository's
// examples/bookinfo/config (so the default directory is found exactly as
// `make demo` finds it), drives HTTP requests at productpage through the
// front door, applies Istio's own Bookinfo routing samples one after
// another with `trellis apply -f` (and removes one with `trellis delete
// -f`), checks that traffic follows each as Istio's documentation
// describes, then sends SIGINT and checks that nothing is left behind.
//
// Deviations from the README, all flags or copies: the control plane, CA
// and front door listen on port 0 (printed by up, parsed here) so that a
// running demo or a busy 9080 does not fail CI, and the WorkloadEntries'
// 127.0.0.x addresses are moved to a random 127.A.B.x block for the same
// reason. The binary and the YAML are otherwise the user's.
package up
