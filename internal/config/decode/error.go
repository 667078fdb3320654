package decode

import (
	"strconv"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
)

// Error is one problem found while decoding one document. It names where the
// problem is as precisely as the decoder could tell.
type Error struct {
	// Source is the file and the 1-based document index; Document is 0 for
	// problems with the file as a whole.
	Source config.Source
	// Kind is the kind as written in the document ("VirtualService"), or
	// empty when the document did not get that far.
	Kind string
	// Namespace and Name identify the object when known.
	Namespace string
	Name      string
	// Field is the path of the offending field from the document root,
	// for example "spec.http[0].timeout" or "metadata.name"; empty when the
	// problem is not about one field (a YAML syntax error, say).
	Field string
	// Reason says what is wrong, in lower case, without the location.
	Reason string
}

// Error formats the problem as
// "file document N: Kind namespace/name: field: reason".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source.File)
	if e.Source.Document > 0 {
		b.WriteString(" document ")
		b.WriteString(strconv.Itoa(e.Source.Document))
	}
	b.WriteString(": ")
	if e.Kind != "" {
		b.WriteString(e.Kind)
		if e.Name != "" {
			b.WriteByte(' ')
			if e.Namespace != "" {
				b.WriteString(e.Namespace)
				b.WriteByte('/')
			}
			b.WriteString(e.Name)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// fieldPath is a dotted path with indexes and map keys:
// spec.http[0].match[1].headers[x-user].
type fieldPath string

// child returns the path of a named field below p.
func (p fieldPath) child(name string) fieldPath {
	if p == "" {
		return fieldPath(name)
	}
	return p + "." + fieldPath(name)
}

// index returns the path of a list element below p.
func (p fieldPath) index(i int) fieldPath {
	return p + "[" + fieldPath(strconv.Itoa(i)) + "]"
}

// key returns the path of a map entry below p.
func (p fieldPath) key(k string) fieldPath {
	if k == "" || strings.ContainsAny(k, "[]\"\n") {
		return p + "[" + fieldPath(strconv.Quote(k)) + "]"
	}
	return p + "[" + fieldPath(k) + "]"
}
