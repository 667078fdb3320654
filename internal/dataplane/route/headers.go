package route

import (
	"errors"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// AppendAction is HeaderValueOption.append_action.
type AppendAction uint8

// Append actions, as Envoy's HeaderValueOption.HeaderAppendAction.
const (
	AppendIfExistsOrAdd    AppendAction = iota // add a value (the default)
	AddIfAbsent                                // add only if the header is absent
	OverwriteIfExistsOrAdd                     // replace every value, or add
	OverwriteIfExists                          // replace only if present
)

// HeaderAdd is one header to add or overwrite.
type HeaderAdd struct {
	Name   string // lower case
	Value  string // "%%" already unescaped unless Dynamic
	Action AppendAction
	// KeepEmpty adds the header even when Value is empty
	// (keep_empty_value); otherwise an empty value is skipped.
	KeepEmpty bool
	// Dynamic marks a value holding Envoy substitution commands
	// (%DOWNSTREAM_REMOTE_ADDRESS% ...). The table does not evaluate them:
	// Value is the raw format string, for the engine to expand or not.
	Dynamic bool
}

// HeaderOps is one level's header mutations (route, virtual host,
// configuration or weighted cluster).
type HeaderOps struct {
	Add    []HeaderAdd
	Remove []string // lower case
}

func (o *HeaderOps) empty() bool { return o == nil || (len(o.Add) == 0 && len(o.Remove) == 0) }

// Apply edits h as Envoy's HeaderParser::evaluateHeaders: removals first;
// then each addition decides against the headers as they are now (before
// any of this level's additions); overwrites are applied, then appends.
func (o *HeaderOps) Apply(h HeaderMutator) {
	if o.empty() {
		return
	}
	for _, name := range o.Remove {
		h.Del(name)
	}
	// Decide every entry before changing anything. Up to 64 entries fit a
	// mask on the stack.
	var small uint64
	var large []bool
	if len(o.Add) > 64 {
		large = make([]bool, len(o.Add))
	}
	set := func(i int) {
		if large != nil {
			large[i] = true
		} else {
			small |= 1 << uint(i)
		}
	}
	isSet := func(i int) bool {
		if large != nil {
			return large[i]
		}
		return small&(1<<uint(i)) != 0
	}
	for i := range o.Add {
		a := &o.Add[i]
		if a.Value == "" && !a.KeepEmpty {
			continue
		}
		switch a.Action {
		case AppendIfExistsOrAdd, OverwriteIfExistsOrAdd:
			set(i)
		case AddIfAbsent:
			if len(h.Values(a.Name)) == 0 {
				set(i)
			}
		case OverwriteIfExists:
			if len(h.Values(a.Name)) > 0 {
				set(i)
			}
		}
	}
	for i := range o.Add {
		if a := &o.Add[i]; isSet(i) && (a.Action == OverwriteIfExistsOrAdd || a.Action == OverwriteIfExists) {
			h.Set(a.Name, a.Value)
		}
	}
	for i := range o.Add {
		if a := &o.Add[i]; isSet(i) && (a.Action == AppendIfExistsOrAdd || a.Action == AddIfAbsent) {
			h.Add(a.Name, a.Value)
		}
	}
}

// compileHeaderOps builds one level's mutations. Pseudo-headers and host
// may not be modified (Envoy's HeaderUtility::isModifiableHeader).
func compileHeaderOps(add []*corev3.HeaderValueOption, remove []string) (*HeaderOps, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	out := &HeaderOps{}
	for i, r := range remove {
		name := strings.ToLower(r)
		if err := modifiable(name); err != nil {
			return nil, fmt.Errorf("headers_to_remove[%d]: %w", i, err)
		}
		out.Remove = append(out.Remove, name)
	}
	for i, o := range add {
		a, err := compileHeaderAdd(o)
		if err != nil {
			return nil, fmt.Errorf("headers_to_add[%d]: %w", i, err)
		}
		out.Add = append(out.Add, a)
	}
	return out, nil
}

func compileHeaderAdd(o *corev3.HeaderValueOption) (HeaderAdd, error) {
	h := o.GetHeader()
	a := HeaderAdd{Name: strings.ToLower(h.GetKey()), KeepEmpty: o.GetKeepEmptyValue()}
	if err := modifiable(a.Name); err != nil {
		return a, err
	}
	raw := h.GetValue()
	if raw == "" && len(h.GetRawValue()) > 0 {
		raw = string(h.GetRawValue())
	}
	a.Value, a.Dynamic = unescapePercent(raw)
	switch o.GetAppendAction() {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		a.Action = AppendIfExistsOrAdd
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		a.Action = AddIfAbsent
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		a.Action = OverwriteIfExistsOrAdd
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		a.Action = OverwriteIfExists
	default:
		return a, fmt.Errorf("header %q: unknown append_action %d", a.Name, int32(o.GetAppendAction()))
	}
	if ap := o.GetAppend(); ap != nil { //nolint:staticcheck // deprecated field still honoured
		if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			return a, fmt.Errorf("header %q: both append and append_action are set", a.Name)
		}
		if !ap.GetValue() {
			a.Action = OverwriteIfExistsOrAdd
		}
	}
	return a, nil
}

func modifiable(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	if name[0] == ':' || name == "host" {
		return fmt.Errorf("header %q: ':'-prefixed or host headers may not be modified", name)
	}
	return nil
}

// unescapePercent turns Envoy's "%%" into "%". A value with any other '%'
// is a substitution format: it is returned as is, marked dynamic.
func unescapePercent(v string) (string, bool) {
	if !strings.Contains(v, "%") {
		return v, false
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return v, true
	}
	return b.String(), false
}
