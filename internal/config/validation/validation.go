package validation

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
)

// FieldError is one problem with one field of an object.
type FieldError struct {
	// Field is the JSON path from the object root, such as
	// "spec.http[0].route[1].weight" or "metadata.name".
	Field string
	// Reason says what is wrong, in lower case.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Errors are the problems found in one object; Validate returns them as its
// error. Each element is also available through errors.As and Unwrap.
type Errors []*FieldError

func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns the individual field errors.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// Warnings are findings that do not reject the object.
type Warnings []*FieldError

// Strings formats each warning as "field: reason".
func (w Warnings) Strings() []string {
	out := make([]string, len(w))
	for i, fe := range w {
		out[i] = fe.Error()
	}
	return out
}

// Validate checks one object. The error, when not nil, is of type Errors.
// Warnings may be returned with or without an error.
func Validate(c config.Config) (Warnings, error) {
	r := &report{}
	validateMeta(r, c)
	spec := fieldPath("spec")
	if c.Spec == nil || !c.Spec.ProtoReflect().IsValid() {
		r.errorf(spec, "required")
		return nil, r.errs
	}
	switch s := c.Spec.(type) {
	case *networking.VirtualService:
		validateVirtualService(r, spec, c.Namespace, s)
	case *networking.DestinationRule:
		validateDestinationRule(r, spec, c.Namespace, s)
	case *networking.Gateway:
		validateGateway(r, spec, s)
	case *networking.ServiceEntry:
		validateServiceEntry(r, spec, c.Namespace, s)
	case *networking.WorkloadEntry:
		validateWorkloadEntry(r, spec, s, nil, true)
	case *networking.WorkloadGroup:
		validateWorkloadGroup(r, spec, s)
	case *networking.Sidecar:
		validateSidecar(r, spec, c.Namespace, s)
	case *security.PeerAuthentication:
		validatePeerAuthentication(r, spec, s)
	case *security.AuthorizationPolicy:
		validateAuthorizationPolicy(r, spec, s)
	case *security.RequestAuthentication:
		validateRequestAuthentication(r, spec, s)
	default:
		r.errorf(spec, "no validation for spec type %T", s)
	}
	if len(r.errs) == 0 {
		return r.warns, nil
	}
	return r.warns, r.errs
}

// report accumulates the findings of one Validate call.
type report struct {
	errs  Errors
	warns Warnings
}

func (r *report) errorf(p fieldPath, format string, args ...any) {
	r.errs = append(r.errs, &FieldError{Field: string(p), Reason: fmt.Sprintf(format, args...)})
}

func (r *report) warnf(p fieldPath, format string, args ...any) {
	r.warns = append(r.warns, &FieldError{Field: string(p), Reason: fmt.Sprintf(format, args...)})
}

// check records reason as an error at p unless it is empty; helpers return
// a reason string so that they can be shared between fields.
func (r *report) check(p fieldPath, reason string) bool {
	if reason == "" {
		return true
	}
	r.errs = append(r.errs, &FieldError{Field: string(p), Reason: reason})
	return false
}

// fieldPath is a JSON path: spec.http[0].match[1].headers[x-user].
type fieldPath string

func (p fieldPath) child(name string) fieldPath { return p + "." + fieldPath(name) }

func (p fieldPath) index(i int) fieldPath { return p + "[" + fieldPath(strconv.Itoa(i)) + "]" }

func (p fieldPath) key(k string) fieldPath {
	if k == "" || strings.ContainsAny(k, "[]\"\n") {
		return p + "[" + fieldPath(strconv.Quote(k)) + "]"
	}
	return p + "[" + fieldPath(k) + "]"
}

// dryRunAnnotation marks an AuthorizationPolicy as evaluated but not enforced.
const dryRunAnnotation = "istio.io/dry-run"

// maxAnnotationsSize is Kubernetes' limit on the total size of annotations.
const maxAnnotationsSize = 256 << 10

func validateMeta(r *report, c config.Config) {
	meta := fieldPath("metadata")
	validateLabels(r, meta.child("labels"), c.Labels, true)
	size := 0
	for _, k := range sortedKeys(c.Annotations) {
		size += len(k) + len(c.Annotations[k])
		r.check(meta.child("annotations").key(k), labelKeyProblem(k))
	}
	if size > maxAnnotationsSize {
		r.errorf(meta.child("annotations"), "annotations are too large (%d bytes, limit %d)", size, maxAnnotationsSize)
	}
	if v, ok := c.Annotations[dryRunAnnotation]; ok {
		p := meta.child("annotations").key(dryRunAnnotation)
		ap, isAuthz := c.Spec.(*security.AuthorizationPolicy)
		switch {
		case !isAuthz:
			r.errorf(p, "only AuthorizationPolicy supports this annotation")
		case ap.GetAction() != security.AuthorizationPolicy_ALLOW && ap.GetAction() != security.AuthorizationPolicy_DENY:
			r.errorf(p, "dry-run is only supported for action ALLOW and DENY, not %s", ap.GetAction())
		default:
			if _, err := strconv.ParseBool(v); err != nil {
				r.errorf(p, "invalid value %q: want true or false", v)
			}
		}
	}
	if _, ok := c.Spec.(*networking.Gateway); ok && !isDNS1123Label(c.Name) {
		r.errorf(meta.child("name"), "invalid gateway name %q: must be a DNS-1123 label (no dots)", c.Name)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
