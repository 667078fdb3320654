package ingest

import (
	"errors"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/decode"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/config/validation"
)

// Decoder returns the decode function of the file store for schemas.
// Objects of kinds outside schemas (Services, Deployments) are skipped
// silently; every decode error becomes one store.Problem.
func Decoder(schemas schema.Set) func(path string, data []byte) ([]config.Config, error) {
	kinds := map[string]config.GroupKind{}
	for _, sc := range schemas.All() {
		kinds[sc.Kind] = sc.GroupKind
	}
	return func(path string, data []byte) ([]config.Config, error) {
		res := decode.Decode(schemas, path, data)
		var errs []error
		for _, e := range res.Errors {
			errs = append(errs, problemOf(e, kinds))
		}
		return res.Configs, errors.Join(errs...)
	}
}

func problemOf(e *decode.Error, kinds map[string]config.GroupKind) store.Problem {
	p := store.Problem{
		Code:     store.CodeDecode,
		Severity: store.SeverityError,
		Source:   e.Source,
		Field:    e.Field,
		Message:  e.Reason,
	}
	if gk, ok := kinds[e.Kind]; ok && e.Name != "" {
		ns := e.Namespace
		if ns == "" {
			ns = config.DefaultNamespace
		}
		p.Key = config.Key{Kind: gk, Namespace: ns, Name: e.Name}
	} else if e.Kind != "" {
		// Not an object we can key: keep the kind (and name) in the message.
		id := e.Kind
		if e.Name != "" {
			id += " " + e.Name
		}
		p.Message = id + ": " + e.Reason
	}
	return p
}

// Validate is the stores' validate function: Istio's validation rules, with
// each field error as one store.Problem.
func Validate(c config.Config) ([]string, error) {
	warnings, err := validation.Validate(c)
	var fes validation.Errors
	if err != nil && !errors.As(err, &fes) {
		return warnings.Strings(), err
	}
	var errs []error
	for _, fe := range fes {
		errs = append(errs, store.Problem{
			Code:     store.CodeInvalid,
			Severity: store.SeverityError,
			Source:   c.Source,
			Key:      c.Key(),
			Field:    fe.Field,
			Message:  fe.Reason,
		})
	}
	return warnings.Strings(), errors.Join(errs...)
}
