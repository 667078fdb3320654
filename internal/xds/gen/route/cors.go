package route

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// translateCORS converts a corsPolicy into the CORS filter's per-route
// config, as Istio's TranslateCORSPolicy: origins from allowOrigins (string
// matches) or the deprecated allowOrigin (exact), lists comma-joined, maxAge
// in whole seconds, the filter enabled for every request, and preflights
// that match no origin forwarded upstream unless unmatchedPreflights is
// IGNORE.
func translateCORS(in *networking.CorsPolicy) *anypb.Any {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		ForwardNotMatchingPreflights: wrapperspb.Bool(in.GetUnmatchedPreflights() != networking.CorsPolicy_IGNORE),
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
			Numerator:   100,
			Denominator: typev3.FractionalPercent_HUNDRED,
		}},
		AllowMethods:  strings.Join(in.GetAllowMethods(), ","),
		AllowHeaders:  strings.Join(in.GetAllowHeaders(), ","),
		ExposeHeaders: strings.Join(in.GetExposeHeaders(), ","),
	}
	if v := in.GetAllowCredentials(); v != nil {
		out.AllowCredentials = wrapperspb.Bool(v.GetValue())
	}
	if in.GetAllowOrigins() != nil {
		for _, sm := range in.GetAllowOrigins() {
			if m := stringMatcher(sm); m != nil {
				out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
			}
		}
	} else {
		for _, o := range in.GetAllowOrigin() { //nolint:staticcheck // deprecated field still honoured
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch,
				&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
		}
	}
	if in.GetMaxAge() != nil {
		out.MaxAge = strconv.FormatInt(in.GetMaxAge().GetSeconds(), 10)
	}
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, out, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil // cannot happen for this message; leaving CORS out is the safe side
	}
	return a
}
