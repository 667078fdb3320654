package upstream

import (
	"errors"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// compileOutlier reads outlier_detection over Envoy's defaults.
func compileOutlier(od *clusterv3.OutlierDetection) (*outlier.Config, error) {
	if len(od.GetMonitors()) > 0 {
		return nil, errors.New("monitors: outlier detection extensions are not supported")
	}
	c := outlier.DefaultConfig()
	c.Interval = durationOr(od.GetInterval(), c.Interval)
	c.BaseEjectionTime = durationOr(od.GetBaseEjectionTime(), c.BaseEjectionTime)
	// Unset, the cap is 300s or the base ejection time if that is longer.
	c.MaxEjectionTime = durationOr(od.GetMaxEjectionTime(), max(outlier.DefaultMaxEjectionTime, c.BaseEjectionTime))
	c.MaxEjectionTimeJitter = durationOr(od.GetMaxEjectionTimeJitter(), 0)
	u32(&c.MaxEjectionPercent, od.GetMaxEjectionPercent())
	c.AlwaysEjectOneHost = od.GetAlwaysEjectOneHost().GetValue()
	c.SplitExternalLocalOriginErrors = od.GetSplitExternalLocalOriginErrors()

	u32(&c.Consecutive5xx.Threshold, od.GetConsecutive_5Xx())
	u32(&c.Consecutive5xx.Enforcing, od.GetEnforcingConsecutive_5Xx())
	u32(&c.ConsecutiveGatewayFailure.Threshold, od.GetConsecutiveGatewayFailure())
	u32(&c.ConsecutiveGatewayFailure.Enforcing, od.GetEnforcingConsecutiveGatewayFailure())
	u32(&c.ConsecutiveLocalOriginFailure.Threshold, od.GetConsecutiveLocalOriginFailure())
	u32(&c.ConsecutiveLocalOriginFailure.Enforcing, od.GetEnforcingConsecutiveLocalOriginFailure())

	u32(&c.SuccessRate.MinimumHosts, od.GetSuccessRateMinimumHosts())
	u32(&c.SuccessRate.RequestVolume, od.GetSuccessRateRequestVolume())
	u32(&c.SuccessRate.StdevFactor, od.GetSuccessRateStdevFactor())
	u32(&c.SuccessRate.Enforcing, od.GetEnforcingSuccessRate())
	u32(&c.SuccessRate.EnforcingLocalOrigin, od.GetEnforcingLocalOriginSuccessRate())

	u32(&c.FailurePercentage.Threshold, od.GetFailurePercentageThreshold())
	u32(&c.FailurePercentage.MinimumHosts, od.GetFailurePercentageMinimumHosts())
	u32(&c.FailurePercentage.RequestVolume, od.GetFailurePercentageRequestVolume())
	u32(&c.FailurePercentage.Enforcing, od.GetEnforcingFailurePercentage())
	u32(&c.FailurePercentage.EnforcingLocalOrigin, od.GetEnforcingFailurePercentageLocalOrigin())

	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func u32(dst *uint32, v *wrapperspb.UInt32Value) {
	if v != nil {
		*dst = v.GetValue()
	}
}
