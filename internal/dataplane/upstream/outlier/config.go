package outlier

import (
	"errors"
	"fmt"
	"time"
)

// Config is a compiled envoy.config.cluster.v3.OutlierDetection. Percentages
// are whole percents (0-100).
type Config struct {
	// Interval between ejection sweeps (Tick). Envoy: 10s.
	Interval time.Duration
	// BaseEjectionTime is multiplied by the host's backoff. Envoy: 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps the ejection time. Envoy: 300s, or
	// BaseEjectionTime when that is larger.
	MaxEjectionTime time.Duration
	// MaxEjectionTimeJitter: a random 0..jitter is added to each ejection.
	MaxEjectionTimeJitter time.Duration
	// MaxEjectionPercent of all hosts may be ejected at once. Envoy: 10.
	MaxEjectionPercent uint32
	// AlwaysEjectOneHost allows the first ejection whatever
	// MaxEjectionPercent says.
	AlwaysEjectOneHost bool
	// SplitExternalLocalOriginErrors counts local-origin errors (connect
	// failures, timeouts) apart from upstream responses.
	SplitExternalLocalOriginErrors bool

	Consecutive5xx                Rule
	ConsecutiveGatewayFailure     Rule
	ConsecutiveLocalOriginFailure Rule
	SuccessRate                   SuccessRate
	FailurePercentage             FailurePercentage
}

// Rule is a consecutive-error detector: Threshold errors in a row detect
// an outlier, which is ejected with probability Enforcing percent.
type Rule struct {
	Threshold uint32
	Enforcing uint32
}

// SuccessRate is statistical outlier detection over the last interval.
type SuccessRate struct {
	// MinimumHosts with enough volume for the detection to run. Envoy: 5.
	MinimumHosts uint32
	// RequestVolume a host needs in the interval to count. Envoy: 100.
	RequestVolume uint32
	// StdevFactor/1000 standard deviations below the mean eject. Envoy: 1900.
	StdevFactor uint32
	// Enforcing and EnforcingLocalOrigin percents. Envoy: 100 and 100.
	Enforcing            uint32
	EnforcingLocalOrigin uint32
}

// FailurePercentage ejects hosts whose failure share reaches Threshold.
type FailurePercentage struct {
	Threshold     uint32 // Envoy: 85
	MinimumHosts  uint32 // Envoy: 5
	RequestVolume uint32 // Envoy: 50
	// Enforcing and EnforcingLocalOrigin percents. Envoy: 0 and 0.
	Enforcing            uint32
	EnforcingLocalOrigin uint32
}

// Envoy's defaults (outlier_detection_impl.h).
const (
	DefaultInterval           = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionTime    = 300 * time.Second
	DefaultMaxEjectionPercent = 10
)

// DefaultConfig returns Envoy's defaults: the behaviour of an empty
// outlier_detection message.
func DefaultConfig() Config {
	return Config{
		Interval:                      DefaultInterval,
		BaseEjectionTime:              DefaultBaseEjectionTime,
		MaxEjectionTime:               DefaultMaxEjectionTime,
		MaxEjectionPercent:            DefaultMaxEjectionPercent,
		Consecutive5xx:                Rule{Threshold: 5, Enforcing: 100},
		ConsecutiveGatewayFailure:     Rule{Threshold: 5, Enforcing: 0},
		ConsecutiveLocalOriginFailure: Rule{Threshold: 5, Enforcing: 100},
		SuccessRate: SuccessRate{
			MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900,
			Enforcing: 100, EnforcingLocalOrigin: 100,
		},
		FailurePercentage: FailurePercentage{Threshold: 85, MinimumHosts: 5, RequestVolume: 50},
	}
}

// Validate checks what Envoy checks when it builds a detector, with its
// messages where it has one.
func (c *Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return errors.New("interval must be positive")
	case c.BaseEjectionTime <= 0:
		return errors.New("base_ejection_time must be positive")
	case c.MaxEjectionTime < c.BaseEjectionTime:
		return errors.New("outlier detector's max_ejection_time cannot be smaller than base_ejection_time")
	case c.MaxEjectionTimeJitter < 0:
		return errors.New("max_ejection_time_jitter must not be negative")
	}
	for _, p := range []struct {
		name string
		v    uint32
	}{
		{"max_ejection_percent", c.MaxEjectionPercent},
		{"enforcing_consecutive_5xx", c.Consecutive5xx.Enforcing},
		{"enforcing_consecutive_gateway_failure", c.ConsecutiveGatewayFailure.Enforcing},
		{"enforcing_consecutive_local_origin_failure", c.ConsecutiveLocalOriginFailure.Enforcing},
		{"enforcing_success_rate", c.SuccessRate.Enforcing},
		{"enforcing_local_origin_success_rate", c.SuccessRate.EnforcingLocalOrigin},
		{"failure_percentage_threshold", c.FailurePercentage.Threshold},
		{"enforcing_failure_percentage", c.FailurePercentage.Enforcing},
		{"enforcing_failure_percentage_local_origin", c.FailurePercentage.EnforcingLocalOrigin},
	} {
		if p.v > 100 {
			return fmt.Errorf("%s: %d is over 100", p.name, p.v)
		}
	}
	return nil
}
