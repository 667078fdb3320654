// Package schema lists the configuration kinds Trellis understands: their API
// group, the versions Istio serves them at, and the istio.io/api message type
// that carries their spec. The table is immutable; it is the single place
// that maps apiVersion/kind to Go types.
package schema
