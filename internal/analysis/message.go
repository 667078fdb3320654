package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
)

// Level is the severity of a message. Levels are ordered: Info < Warning <
// Error.
type Level int

// Levels.
const (
	Info Level = iota
	Warning
	Error
)

func (l Level) String() string {
	switch l {
	case Info:
		return "Info"
	case Warning:
		return "Warning"
	case Error:
		return "Error"
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLevel reads a level name, case-insensitively.
func ParseLevel(s string) (Level, error) {
	for _, l := range []Level{Info, Warning, Error} {
		if strings.EqualFold(s, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want Info, Warning or Error)", s)
}

// MarshalText writes the level's name (JSON and YAML output).
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Code identifies a kind of message. Codes are stable: IST codes mean what
// they mean in Istio; TRL codes are Trellis's own, used only where Istio
// has no equivalent.
type Code string

// Type describes one kind of message.
type Type struct {
	Code        Code
	Name        string
	Level       Level
	Description string
}

// The message types. Levels are Istio's for IST codes, except IST0173 (see
// DestinationRuleSubsetNotSelectPods).
var (
	ReferencedResourceNotFound = Type{"IST0101", "ReferencedResourceNotFound", Error,
		"A resource being referenced does not exist."}
	SchemaValidationError = Type{"IST0106", "SchemaValidationError", Error,
		"The resource has a schema validation error (or could not be decoded)."}
	ConflictingMeshGatewayVirtualServiceHosts = Type{"IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Error,
		"Conflicting hosts on VirtualServices associated with the mesh gateway."}
	MultipleSidecarsWithoutWorkloadSelectors = Type{"IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Error,
		"More than one Sidecar resource in a namespace has no workload selector."}
	VirtualServiceDestinationPortSelectorRequired = Type{"IST0112", "VirtualServiceDestinationPortSelectorRequired", Error,
		"A VirtualService routes to a service with more than one port, but does not say which to use."}
	SchemaWarning = Type{"IST0133", "SchemaWarning", Warning,
		"The resource has a schema validation warning."}
	// DestinationRuleSubsetNotSelectPods is a Warning here, while istioctl
	// reports it as an Error: in Trellis endpoints are often WorkloadEntries
	// that appear later (registration), so an empty subset is not
	// necessarily a mistake at analysis time.
	DestinationRuleSubsetNotSelectPods = Type{"IST0173", "DestinationRuleSubsetNotSelectPods", Warning,
		"A subset in a DestinationRule does not select any endpoint."}
	UnknownDestinationRuleHost = Type{"IST0174", "UnknownDestinationRuleHost", Warning,
		"The host of a DestinationRule does not match any service in the mesh."}
	ServiceEntryPortWithoutProtocol = Type{"TRL0001", "ServiceEntryPortWithoutProtocol", Warning,
		"A ServiceEntry port declares no protocol: it is not inferred from the port name, traffic is sniffed."}
	ConfigUnreadable = Type{"TRL0002", "ConfigUnreadable", Error,
		"A configuration file or directory could not be read."}
	DuplicateObject = Type{"TRL0003", "DuplicateObject", Warning,
		"An object is defined more than once; one definition is ignored."}
	UnknownKind = Type{"TRL0004", "UnknownKind", Error,
		"An object's kind is not served; the object is ignored."}
	ConflictingGatewayVirtualServiceHosts = Type{"TRL0005", "ConflictingGatewayVirtualServiceHosts", Warning,
		"Several VirtualServices bound to the same gateway define the same host: their routes are merged in creation order."}
)

// Types returns every message type, sorted by code.
func Types() []Type {
	ts := []Type{
		ReferencedResourceNotFound, SchemaValidationError, ConflictingMeshGatewayVirtualServiceHosts,
		MultipleSidecarsWithoutWorkloadSelectors, VirtualServiceDestinationPortSelectorRequired,
		SchemaWarning, DestinationRuleSubsetNotSelectPods, UnknownDestinationRuleHost,
		ServiceEntryPortWithoutProtocol, ConfigUnreadable, DuplicateObject, UnknownKind,
		ConflictingGatewayVirtualServiceHosts,
	}
	slices.SortFunc(ts, func(a, b Type) int { return strings.Compare(string(a.Code), string(b.Code)) })
	return ts
}

// Origin says which object (and where in the input) a message is about.
type Origin struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	File      string `json:"file,omitempty"`
	// Document is the 1-based index of the YAML document in File; 0 when
	// the message is about the whole file.
	Document int `json:"document,omitempty"`
}

// originOf returns the origin of a config object.
func originOf(c config.Config) Origin {
	return Origin{Kind: c.Kind.Kind, Namespace: c.Namespace, Name: c.Name, File: c.Source.File, Document: c.Source.Document}
}

// String formats the origin as "Kind ns/name file:document", leaving out
// what is not known.
func (o Origin) String() string {
	var parts []string
	if o.Kind != "" {
		obj := o.Kind
		if o.Name != "" {
			obj += " "
			if o.Namespace != "" {
				obj += o.Namespace + "/"
			}
			obj += o.Name
		}
		parts = append(parts, obj)
	}
	if o.File != "" {
		src := o.File
		if o.Document > 0 {
			src += ":" + strconv.Itoa(o.Document)
		}
		parts = append(parts, src)
	}
	return strings.Join(parts, " ")
}

// Message is one finding.
type Message struct {
	Code   Code   `json:"code"`
	Level  Level  `json:"level"`
	Origin Origin `json:"origin"`
	// Field is the path of the field at fault ("spec.http[0].route[0]
	// .destination.host"), or "".
	Field string `json:"field,omitempty"`
	// Text says what is wrong.
	Text string `json:"message"`
}

func newMessage(t Type, o Origin, field, format string, args ...any) Message {
	return Message{Code: t.Code, Level: t.Level, Origin: o, Field: field, Text: fmt.Sprintf(format, args...)}
}

// String formats the message as istioctl does, with the field added:
//
//	Error [IST0101] (VirtualService default/reviews vs.yaml:3) spec.http[0].route[0].destination.host: Referenced host not found: "reviewz"
func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", m.Level, m.Code)
	if o := m.Origin.String(); o != "" {
		fmt.Fprintf(&b, " (%s)", o)
	}
	b.WriteByte(' ')
	if m.Field != "" {
		b.WriteString(m.Field)
		b.WriteString(": ")
	}
	b.WriteString(m.Text)
	return b.String()
}

// SortMessages orders messages by file, document, object, field, code and
// text: the order Analyze returns.
func SortMessages(ms []Message) {
	slices.SortStableFunc(ms, func(a, b Message) int {
		return cmp.Or(
			strings.Compare(a.Origin.File, b.Origin.File),
			cmp.Compare(a.Origin.Document, b.Origin.Document),
			strings.Compare(a.Origin.Kind, b.Origin.Kind),
			strings.Compare(a.Origin.Namespace, b.Origin.Namespace),
			strings.Compare(a.Origin.Name, b.Origin.Name),
			strings.Compare(a.Field, b.Field),
			strings.Compare(string(a.Code), string(b.Code)),
			strings.Compare(a.Text, b.Text),
		)
	})
}

// Filter returns the messages at or above min.
func Filter(ms []Message, min Level) []Message {
	var out []Message
	for _, m := range ms {
		if m.Level >= min {
			out = append(out, m)
		}
	}
	return out
}

// Count returns how many messages have each level.
func Count(ms []Message) map[Level]int {
	n := map[Level]int{}
	for _, m := range ms {
		n[m.Level]++
	}
	return n
}
