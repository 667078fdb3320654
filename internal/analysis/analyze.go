package analysis

import (
	"strings"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
)

// Input is what Analyze reads.
type Input struct {
	// Snapshot holds the admitted configuration and the services and
	// endpoints of the registry. Required.
	Snapshot *model.Snapshot
	// Problems are the store's problems: rejected files and objects,
	// duplicates and validation warnings.
	Problems []store.Problem
}

// check is one analyzer: a pure function of the input.
type check func(*env) []Message

// checks run in this order; the result is sorted anyway.
var checks = [...]check{
	problems,
	virtualServiceReferences,
	conflictingVirtualServiceHosts,
	destinationRules,
	serviceEntryPorts,
	sidecars,
}

// Analyze runs every check and returns the messages, sorted with
// SortMessages. It does not modify its input.
func Analyze(in Input) []Message {
	if in.Snapshot == nil {
		in.Snapshot = model.NewSnapshot(model.SnapshotInput{})
	}
	e := newEnv(in)
	var out []Message
	for _, check := range checks {
		out = append(out, check(e)...)
	}
	SortMessages(out)
	return out
}

// env holds the input and the indexes the checks share. Built once per
// Analyze call, read-only afterwards.
type env struct {
	in     Input
	snap   *model.Snapshot
	exact  map[string][]*model.Service // by host name
	wild   []*model.Service            // services with a wildcard host
	scopes map[string]*model.Scope     // by namespace, filled lazily
}

func newEnv(in Input) *env {
	c := &env{in: in, snap: in.Snapshot, exact: map[string][]*model.Service{}, scopes: map[string]*model.Scope{}}
	for _, svc := range c.snap.Services() {
		if strings.HasPrefix(svc.Hostname, "*") {
			c.wild = append(c.wild, svc)
		} else {
			c.exact[svc.Hostname] = append(c.exact[svc.Hostname], svc)
		}
	}
	return c
}

// services returns the services visible from namespace ns ("" for any
// namespace) that serve host: declared with that exact name, or with a
// wildcard that covers it. When host is itself a wildcard, the services it
// covers count too. Exact matches come first.
func (c *env) services(host, ns string) []*model.Service {
	var out []*model.Service
	visible := func(svc *model.Service) bool {
		return ns == "" || c.snap.ServiceVisibility(svc).VisibleTo(ns)
	}
	if strings.HasPrefix(host, "*") {
		for _, svc := range c.snap.Services() {
			if model.HostsOverlap(host, svc.Hostname) && visible(svc) {
				out = append(out, svc)
			}
		}
		return out
	}
	for _, svc := range c.exact[host] {
		if visible(svc) {
			out = append(out, svc)
		}
	}
	for _, svc := range c.wild {
		if model.HostMatches(svc.Hostname, host) && visible(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// scope returns the view of a proxy in namespace ns with no labels, used to
// find the DestinationRule that applies with Istio's precedence.
func (c *env) scope(ns string) *model.Scope {
	if sc, ok := c.scopes[ns]; ok {
		return sc
	}
	sc := c.snap.Scope(&model.Proxy{Namespace: ns, Type: model.SidecarProxy})
	c.scopes[ns] = sc
	return sc
}

// problems turns store problems into messages.
func problems(c *env) []Message {
	var out []Message
	for _, p := range c.in.Problems {
		o := Origin{File: p.Source.File, Document: p.Source.Document}
		if p.Key != (config.Key{}) {
			o.Kind, o.Namespace, o.Name = p.Key.Kind.Kind, p.Key.Namespace, p.Key.Name
		}
		msg := p.Message
		if msg == "" {
			msg = string(p.Code)
		}
		field := p.Field
		if field == "" {
			field, msg = splitField(msg)
		}
		var m Message
		switch {
		case p.Code == store.CodeUnreadable:
			m = newMessage(ConfigUnreadable, o, field, "Cannot read configuration: %s", msg)
		case p.Code == store.CodeDuplicate:
			m = newMessage(DuplicateObject, o, field, "Duplicate definition ignored: %s", msg)
		case p.Code == store.CodeUnknownKind:
			m = newMessage(UnknownKind, o, field, "Unknown kind: %s", msg)
		case p.Severity == store.SeverityWarning:
			m = newMessage(SchemaWarning, o, field, "Schema validation warning: %s", msg)
		default: // CodeDecode, CodeInvalid and anything new that rejects
			m = newMessage(SchemaValidationError, o, field, "Schema validation error: %s", msg)
		}
		out = append(out, m)
	}
	return out
}

// splitField recovers the field of a message written "field: reason", as
// validation warnings are (store.ValidateFunc returns warnings as strings).
func splitField(msg string) (field, reason string) {
	f, r, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(f, " \t") || !(strings.HasPrefix(f, "spec") || strings.HasPrefix(f, "metadata")) {
		return "", msg
	}
	return f, r
}
