// Package memory is an in-memory configuration store, a store.Store and a
// store.Writer, used by tests, by "trellis up" for objects created at run
// time, and as the model the Kubernetes store's Writer follows.
//
//	Create/Update/Delete ──admit (copy, Check)──► lock: Index + revision ──► Dispatcher ──► handlers
//	                              │ rejected                                   (Run goroutine)
//	                              ▼
//	                   error wrapping store.Problem(s)
//
// Writes are validated outside the lock; an invalid object is rejected with
// an error naming kind, namespace/name, field and reason, and the stored
// object is left as it was. The store assigns resource versions (one
// counter for the store), generations (bumped when the spec changes) and
// creation timestamps. Writes made before Run are kept; their events are
// delivered once Run starts.
package memory
