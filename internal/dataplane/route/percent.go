package route

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Fraction is Envoy's FractionalPercent: Numerator parts of Denominator,
// where Denominator is 100, 10,000 or 1,000,000 (HUNDRED, TEN_THOUSAND,
// MILLION). The zero value never samples.
type Fraction struct {
	Numerator   uint32
	Denominator uint32
}

// Always is 100 %.
var always = Fraction{Numerator: 100, Denominator: 100}

// Sample reports whether the random value r falls inside the fraction, as
// Envoy's ProtobufPercentHelper::evaluateFractionalPercent does:
// r % denominator < numerator. A numerator above the denominator is 100 %.
func (f Fraction) Sample(r uint64) bool {
	if f.Denominator == 0 {
		return false
	}
	return r%uint64(f.Denominator) < uint64(f.Numerator)
}

// String renders the fraction as "n/d".
func (f Fraction) String() string { return fmt.Sprintf("%d/%d", f.Numerator, f.Denominator) }

// fraction converts a FractionalPercent; nil is the proto default (0/100).
func fraction(p *typev3.FractionalPercent) (Fraction, error) {
	d, err := denominator(p.GetDenominator())
	if err != nil {
		return Fraction{}, err
	}
	return Fraction{Numerator: p.GetNumerator(), Denominator: d}, nil
}

func denominator(d typev3.FractionalPercent_DenominatorType) (uint32, error) {
	switch d {
	case typev3.FractionalPercent_HUNDRED:
		return 100, nil
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10_000, nil
	case typev3.FractionalPercent_MILLION:
		return 1_000_000, nil
	}
	return 0, fmt.Errorf("unknown fractional percent denominator %d", int32(d))
}

// runtimeFraction converts a RuntimeFractionalPercent to its default_value.
// Trellis has no runtime layer, so runtime_key is ignored, as Envoy does
// when the key is absent from its runtime.
func runtimeFraction(p *corev3.RuntimeFractionalPercent) (Fraction, error) {
	return fraction(p.GetDefaultValue())
}
