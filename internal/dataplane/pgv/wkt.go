package pgv

import (
	"time"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// anyNode is the "any" template: required, then in/not_in on the type URL.
// The packed message is never looked into.
type anyNode struct{ r *validate.AnyRules }

func (n anyNode) check(s *sink, l loc, v protoreflect.Value, present bool) bool {
	if n.r.GetRequired() && !present {
		if s.fail(l, "value is required", nil) {
			return true
		}
	}
	if !present {
		return false
	}
	m := v.Message()
	url := m.Get(m.Descriptor().Fields().ByNumber(1)).String()
	if len(n.r.In) > 0 {
		if !contains(n.r.In, url) {
			return s.fail(l, sprint("type URL must be in list ", n.r.In), nil)
		}
	} else if len(n.r.NotIn) > 0 {
		if contains(n.r.NotIn, url) {
			return s.fail(l, sprint("type URL must not be in list ", n.r.NotIn), nil)
		}
	}
	return false
}

// secondsNanos reads a Duration or Timestamp message.
func secondsNanos(m protoreflect.Message) (int64, int32) {
	f := m.Descriptor().Fields()
	return m.Get(f.ByNumber(1)).Int(), int32(m.Get(f.ByNumber(2)).Int())
}

func asDuration(m protoreflect.Message) *durationpb.Duration {
	if d, ok := m.Interface().(*durationpb.Duration); ok {
		return d
	}
	s, n := secondsNanos(m)
	return &durationpb.Duration{Seconds: s, Nanos: n}
}

// durLit is the generator's durLit: seconds and nanoseconds summed as a
// time.Duration.
func durLit(d *durationpb.Duration) time.Duration {
	return time.Duration(d.GetSeconds())*time.Second + time.Duration(d.GetNanos())
}

// durStr is the generator's durStr.
func durStr(d *durationpb.Duration) string { return d.AsDuration().String() }

type durationNode struct{ r *validate.DurationRules }

func (n durationNode) check(s *sink, l loc, v protoreflect.Value, present bool) bool {
	r := n.r
	if r.GetRequired() && !present {
		if s.fail(l, "value is required", nil) {
			return true
		}
	}
	if !present || (len(r.In) == 0 && len(r.NotIn) == 0 && r.Lt == nil && r.Lte == nil && r.Gt == nil && r.Gte == nil && r.Const == nil) {
		return false
	}
	d := asDuration(v.Message())
	dur, err := d.AsDuration(), d.CheckValid()
	if err != nil {
		return s.fail(l, "value is not a valid duration", err)
	}
	if r.Const != nil && dur != durLit(r.Const) {
		if s.fail(l, "value must equal "+durStr(r.Const), nil) {
			return true
		}
	}
	if reason := durRangeReason(dur, r); reason != "" {
		if s.fail(l, reason, nil) {
			return true
		}
	}
	if len(r.In) > 0 {
		if !durIn(r.In, dur) {
			return s.fail(l, sprint("value must be in list ", r.In), nil)
		}
	} else if len(r.NotIn) > 0 {
		if durIn(r.NotIn, dur) {
			return s.fail(l, sprint("value must not be in list ", r.NotIn), nil)
		}
	}
	return false
}

func durIn(list []*durationpb.Duration, d time.Duration) bool {
	for _, x := range list {
		if x.AsDuration() == d {
			return true
		}
	}
	return false
}

var durOrder = order[time.Duration]{
	less:   func(a, b time.Duration) bool { return a < b },
	lessEq: func(a, b time.Duration) bool { return a <= b },
	str:    time.Duration.String,
}

// durBound is a duration rule bound as the generated code compares it.
func durBound(d *durationpb.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	x := durLit(d)
	return &x
}

// durRangeReason is the bounds part of the durationcmp template.
func durRangeReason(dur time.Duration, r *validate.DurationRules) string {
	return rangeReason(durOrder, dur, durBound(r.Lt), durBound(r.Lte), durBound(r.Gt), durBound(r.Gte))
}

// tsOrder compares as the generated code does (the sign of ts.Sub(bound))
// and prints as tsStr does (UTC time.Time.String).
var tsOrder = order[time.Time]{
	less:   func(a, b time.Time) bool { return a.Sub(b) < 0 },
	lessEq: func(a, b time.Time) bool { return a.Sub(b) <= 0 },
	str:    func(t time.Time) string { return t.UTC().String() },
}

func tsBound(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	x := time.Unix(t.GetSeconds(), int64(t.GetNanos()))
	return &x
}

func asTimestamp(m protoreflect.Message) *timestamppb.Timestamp {
	if t, ok := m.Interface().(*timestamppb.Timestamp); ok {
		return t
	}
	s, n := secondsNanos(m)
	return &timestamppb.Timestamp{Seconds: s, Nanos: n}
}

// timestampNode is the "timestamp" template. now is read once per check,
// as the generated code reads time.Now() once per field.
type timestampNode struct{ r *validate.TimestampRules }

func (n timestampNode) check(s *sink, l loc, v protoreflect.Value, present bool) bool {
	r := n.r
	if r.GetRequired() && !present {
		if s.fail(l, "value is required", nil) {
			return true
		}
	}
	if !present || (r.Lt == nil && r.Lte == nil && r.Gt == nil && r.Gte == nil && r.LtNow == nil && r.GtNow == nil && r.Within == nil && r.Const == nil) {
		return false
	}
	t := asTimestamp(v.Message())
	ts, err := t.AsTime(), t.CheckValid()
	if err != nil {
		return s.fail(l, "value is not a valid timestamp", err)
	}
	if r.Const != nil && !ts.Equal(*tsBound(r.Const)) {
		if s.fail(l, "value must equal "+r.Const.AsTime().String(), nil) {
			return true
		}
	}
	var reason string
	switch {
	case r.Lt != nil || r.Lte != nil || r.Gt != nil || r.Gte != nil:
		reason = rangeReason(tsOrder, ts, tsBound(r.Lt), tsBound(r.Lte), tsBound(r.Gt), tsBound(r.Gte))
	case r.LtNow != nil:
		now := time.Now()
		if r.Within != nil {
			within := durLit(r.Within)
			if ts.Sub(now) >= 0 || ts.Sub(now.Add(-within)) < 0 {
				reason = "value must be less than now within " + durStr(r.Within)
			}
		} else if ts.Sub(now) >= 0 {
			reason = "value must be less than now"
		}
	case r.GtNow != nil:
		now := time.Now()
		if r.Within != nil {
			within := durLit(r.Within)
			if ts.Sub(now) <= 0 || ts.Sub(now.Add(within)) > 0 {
				reason = "value must be greater than now within " + durStr(r.Within)
			}
		} else if ts.Sub(now) <= 0 {
			reason = "value must be greater than now"
		}
	case r.Within != nil:
		now := time.Now()
		within := durLit(r.Within)
		if ts.Sub(now.Add(within)) >= 0 || ts.Sub(now.Add(-within)) <= 0 {
			reason = "value must be within " + durStr(r.Within) + " of now"
		}
	}
	if reason != "" {
		return s.fail(l, reason, nil)
	}
	return false
}
