// Package ingest joins the decoder and the validators to the function types
// the configuration stores take, turning their typed errors into
// store.Problems that keep the file, document, kind, name and field. The
// control plane, `trellis analyze` and (later) the admission webhook use the
// same two functions, so an object is judged the same way everywhere.
package ingest
