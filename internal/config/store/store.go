package store

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Store is a read-only, watchable view of configuration objects. File
// directories, the in-memory store, Kubernetes informers and Aggregate all
// implement it.
type Store interface {
	// Schemas returns the kinds the store serves.
	Schemas() schema.Set
	// Get returns one object. The returned value is shared: do not mutate
	// its maps or Spec.
	Get(kind config.GroupKind, namespace, name string) (config.Config, bool)
	// List returns the objects of a kind in namespace ("" for all
	// namespaces), sorted by namespace then name. The slice is the caller's;
	// its elements are shared values and must not be mutated.
	List(kind config.GroupKind, namespace string) []config.Config
	// RegisterEventHandler adds a handler for one kind. Handlers are called
	// serially, in the order the changes happened, from the store's own
	// goroutine while Run is running. A handler registered when objects
	// already exist first receives an EventAdd for each of them (as
	// client-go informers do), so registering before or after Run loses
	// nothing. Handlers may call back into the store.
	RegisterEventHandler(kind config.GroupKind, h func(config.Event))
	// Run loads the source, watches it and delivers events until ctx is
	// cancelled. It blocks, and returns only when every goroutine it started
	// has stopped.
	Run(ctx context.Context)
	// HasSynced reports whether the initial state has been loaded and the
	// events describing it have been delivered to the handlers registered
	// before Run started.
	HasSynced() bool
	// Problems returns the current problems of the source (rejected objects,
	// unreadable inputs, duplicates, validation warnings), sorted by source
	// then key. A problem disappears once its cause is fixed.
	Problems() []Problem
}

// Writer is implemented by stores that accept writes (memory today,
// Kubernetes later). Objects are validated before they are stored; an
// invalid object is rejected with an error that is (or wraps) a Problem, and
// the previous object stays.
type Writer interface {
	// Create stores a new object and returns its resource version. It fails
	// with ErrAlreadyExists if the key is taken.
	Create(ctx context.Context, c config.Config) (revision string, err error)
	// Update replaces an existing object. If c.ResourceVersion is set it
	// must match the stored one (optimistic concurrency), otherwise
	// ErrConflict.
	Update(ctx context.Context, c config.Config) (revision string, err error)
	// Delete removes an object. A non-empty resourceVersion must match the
	// stored one.
	Delete(ctx context.Context, kind config.GroupKind, namespace, name, resourceVersion string) error
}

// ValidateFunc checks one decoded object. It is injected by cmd (wrapping
// internal/config/validation) so that stores do not depend on the
// validators. A non-nil error rejects the object. To point at a field, the
// error should be, wrap or join Problem values carrying Field and Message;
// every joined error becomes one Problem. Warnings do not reject the object
// and are reported as SeverityWarning problems.
type ValidateFunc func(config.Config) (warnings []string, err error)

// Errors callers branch on. Store errors wrap them with the object's key.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("resource version conflict")
	ErrUnknownKind   = errors.New("unknown kind")
)

// Code identifies a class of problem. Codes are stable: tools match on them.
type Code string

// Problem codes.
const (
	// CodeUnreadable: a file or directory could not be read or watched.
	CodeUnreadable Code = "Unreadable"
	// CodeDecode: a file or one document in it does not parse.
	CodeDecode Code = "DecodeError"
	// CodeUnknownKind: the object's kind is not served by the store.
	CodeUnknownKind Code = "UnknownKind"
	// CodeInvalid: the object failed validation.
	CodeInvalid Code = "InvalidObject"
	// CodeDuplicate: the same key is defined more than once; the problem is
	// reported on the definition that lost.
	CodeDuplicate Code = "DuplicateObject"
	// CodeWarning: the object was accepted with a validation warning.
	CodeWarning Code = "ValidationWarning"
)

// Severity says whether a problem rejected something.
type Severity int

// Severities.
const (
	SeverityError Severity = iota
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one rejected object, unreadable input or warning. It is also an
// error, so decode and validate functions can return Problems carrying the
// document and field, and Writers return them when rejecting an object.
type Problem struct {
	Code     Code
	Severity Severity
	// Source is where the input came from; Document is 0 when the problem
	// concerns the whole file.
	Source config.Source
	// Key is the object concerned; zero when unknown (the document did not
	// parse far enough to name it).
	Key config.Key
	// Field is the path of the offending field ("spec.http[0].route"), or "".
	Field string
	// Message is the reason, without the location.
	Message string
}

// Error formats the problem as "source: Kind ns/name: field: message",
// leaving out the parts that are not known.
func (p Problem) Error() string {
	var parts []string
	if p.Source.File != "" {
		parts = append(parts, p.Source.String())
	}
	if p.Key != (config.Key{}) {
		parts = append(parts, p.Key.String())
	}
	if p.Field != "" {
		parts = append(parts, p.Field)
	}
	msg := p.Message
	if msg == "" {
		msg = string(p.Code)
	}
	return strings.Join(append(parts, msg), ": ")
}

// AsProblems splits err into problems: every error joined with errors.Join
// becomes one Problem. An error that is or wraps a Problem keeps its code,
// severity, source, key and field; blank fields are taken from base. Other
// errors become base with their text as the message.
func AsProblems(err error, base Problem) []Problem {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []Problem
		for _, e := range j.Unwrap() {
			out = append(out, AsProblems(e, base)...)
		}
		return out
	}
	var p Problem
	if !errors.As(err, &p) {
		b := base
		b.Message = err.Error()
		return []Problem{b}
	}
	if p.Code == "" {
		p.Code = base.Code
		p.Severity = base.Severity
	}
	if p.Source.File == "" {
		p.Source.File = base.Source.File
	}
	if p.Source.Document == 0 {
		p.Source.Document = base.Source.Document
	}
	if p.Key == (config.Key{}) {
		p.Key = base.Key
	}
	if p.Field == "" {
		p.Field = base.Field
	}
	return []Problem{p}
}

// SortProblems sorts problems by file, document, key, code, field and
// message, the order Problems() returns.
func SortProblems(ps []Problem) {
	slices.SortFunc(ps, compareProblems)
}

func compareProblems(a, b Problem) int {
	if c := strings.Compare(a.Source.File, b.Source.File); c != 0 {
		return c
	}
	if a.Source.Document != b.Source.Document {
		return a.Source.Document - b.Source.Document
	}
	if c := CompareKeys(a.Key, b.Key); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Code), string(b.Code)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Field, b.Field); c != 0 {
		return c
	}
	return strings.Compare(a.Message, b.Message)
}

// CompareKeys orders keys by group, kind, namespace and name.
func CompareKeys(a, b config.Key) int {
	for _, c := range [...]int{
		strings.Compare(a.Kind.Group, b.Kind.Group),
		strings.Compare(a.Kind.Kind, b.Kind.Kind),
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.Name, b.Name),
	} {
		if c != 0 {
			return c
		}
	}
	return 0
}
