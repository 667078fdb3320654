package listener

import (
	"fmt"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// prefixTable maps CIDR ranges to values and finds the longest range that
// contains an address, as Envoy's exclusive LC tries do for filter chain
// matching: only the most specific range answers, there is no fallback to
// a wider one.
type prefixTable[T any] struct {
	byPrefix map[netip.Prefix]T
	// lengths of the ranges present, longest first, per family.
	lengths4, lengths6 []int
}

func newPrefixTable[T any]() *prefixTable[T] {
	return &prefixTable[T]{byPrefix: map[netip.Prefix]T{}}
}

// getOrAdd returns the value stored for p, adding mk() if there is none.
func (t *prefixTable[T]) getOrAdd(p netip.Prefix, mk func() T) T {
	if v, ok := t.byPrefix[p]; ok {
		return v
	}
	v := mk()
	t.byPrefix[p] = v
	if p.Addr().Is4() {
		t.lengths4 = insertLength(t.lengths4, p.Bits())
	} else {
		t.lengths6 = insertLength(t.lengths6, p.Bits())
	}
	return v
}

func insertLength(ls []int, bits int) []int {
	if slices.Contains(ls, bits) {
		return ls
	}
	ls = append(ls, bits)
	slices.SortFunc(ls, func(a, b int) int { return b - a })
	return ls
}

// lookup returns the value of the longest range containing a.
func (t *prefixTable[T]) lookup(a netip.Addr) (T, bool) {
	var zero T
	if !a.IsValid() {
		return zero, false
	}
	a = a.Unmap()
	lengths := t.lengths6
	if a.Is4() {
		lengths = t.lengths4
	}
	for _, bits := range lengths {
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if v, ok := t.byPrefix[p]; ok {
			return v, true
		}
	}
	return zero, false
}

// anyPrefixes is what an empty list of ranges means: every IPv4 and IPv6
// address.
func anyPrefixes() []netip.Prefix {
	return []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
}

// cidrs converts CidrRanges to masked prefixes, as Envoy's CidrRange does:
// the address must be an IP literal; a prefix_len beyond the family's
// width is clamped to it. An empty list means any address.
func cidrs(field string, in []*corev3.CidrRange) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return anyPrefixes(), nil
	}
	out := make([]netip.Prefix, 0, len(in))
	for i, r := range in {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%s[%d]: malformed IP address %q", field, i, r.GetAddressPrefix())
		}
		a = a.Unmap()
		bits := int(min(r.GetPrefixLen().GetValue(), uint32(a.BitLen())))
		p, err := a.Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
