package store

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Check admits or rejects one object the way every store does: the kind
// must be in schemas, the name set, the spec of the kind's type, and
// validate must accept it. It returns the problems found (errors and
// warnings, located at c.Source and c.Key()) and whether c is admitted.
func Check(schemas schema.Set, validate ValidateFunc, c config.Config) ([]Problem, bool) {
	base := Problem{Code: CodeInvalid, Source: c.Source, Key: c.Key()}
	sc, ok := schemas.Get(c.Kind)
	if !ok {
		p := base
		p.Code = CodeUnknownKind
		p.Field = "kind"
		p.Message = fmt.Sprintf("kind %s is not served", c.Kind)
		return []Problem{p}, false
	}
	if c.Name == "" {
		p := base
		p.Field = "metadata.name"
		p.Message = "must be set"
		return []Problem{p}, false
	}
	if c.Spec == nil || proto.MessageName(c.Spec) != proto.MessageName(sc.New()) {
		p := base
		p.Field = "spec"
		p.Message = fmt.Sprintf("want a %s message, got %T", proto.MessageName(sc.New()), c.Spec)
		return []Problem{p}, false
	}
	warnings, err := validate(c)
	problems := AsProblems(err, base)
	for _, w := range warnings {
		p := base
		p.Code = CodeWarning
		p.Severity = SeverityWarning
		p.Message = w
		problems = append(problems, p)
	}
	return problems, err == nil
}
