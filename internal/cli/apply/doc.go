// Package apply implements `trellis apply -f FILE` and `trellis delete -f
// FILE` for local mode: they edit the directory of Istio YAML that a
// running `trellis up` watches (found through its run file, or --dir), and
// the control plane's file watch does the rest.
//
//	FILE ──split + decode + validate (the control plane's own rules)──► objects
//	      any error: nothing is written, the error names file, document, object, field
//	DIR  ──split + decode each document──► where each object is defined now
//	plan (pure): apply  = remove the object's current document wherever it is,
//	                      write FILE's document as DIR/<kind>.<namespace>.<name>.yaml
//	             delete = remove the object's document (a file left empty is removed)
//	execute: removals first, then writes, each file replaced atomically
//	         (temporary dot-file + rename: the watch ignores dot-files)
//
// Documents are moved as text, so comments and formatting survive; an
// object inside a List document cannot be replaced piecewise and is an
// error naming the file. Removing before writing means a replaced object
// is briefly absent rather than briefly defined twice (two definitions are
// a conflict that rejects both).
package apply
