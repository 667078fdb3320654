// Package runready runs a long-lived component in a test the way its
// command does: Run on its own goroutine until the test ends (or stop is
// called), failing the test when it is not ready in time, returns before
// it is ready, or fails or hangs when cancelled. The control plane's
// tests and the end-to-end suites that start one in process share it.
package runready
