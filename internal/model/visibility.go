package model

// Visibility is a resolved exportTo list.
type Visibility struct {
	all   bool
	names map[string]bool
}

// NewVisibility resolves exportTo written in namespace ns ("." is ns, "*" is
// everyone, "~" is nobody). An empty list takes defaults (resolved the same way).
func NewVisibility(exportTo []string, ns string, defaults []string) Visibility {
	if len(exportTo) == 0 {
		exportTo = defaults
	}
	if len(exportTo) == 0 {
		return Visibility{all: true}
	}
	v := Visibility{names: map[string]bool{}}
	for _, e := range exportTo {
		switch e {
		case "*":
			v.all = true
		case ".":
			v.names[ns] = true
		case "~":
		default:
			v.names[e] = true
		}
	}
	return v
}

// VisibleTo reports whether namespace ns may see the object.
func (v Visibility) VisibleTo(ns string) bool { return v.all || v.names[ns] }

// privateTo reports whether only namespace ns may see the object.
func (v Visibility) privateTo(ns string) bool { return !v.all && len(v.names) == 1 && v.names[ns] }
