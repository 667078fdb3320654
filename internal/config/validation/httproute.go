package validation

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func validateHTTPRoute(r *report, p fieldPath, h *networking.HTTPRoute, delegate bool) {
	if !delegate && h.Delegate != nil {
		// A root route hands the request to another VirtualService.
		if h.Redirect != nil {
			r.errorf(p.child("redirect"), "a route with delegate must not have redirect")
		}
		if len(h.Route) > 0 {
			r.errorf(p.child("route"), "a route with delegate must not have route")
		}
		if h.DirectResponse != nil {
			r.errorf(p.child("directResponse"), "a route with delegate must not have directResponse")
		}
		validateDelegate(r, p.child("delegate"), h.Delegate)
	} else {
		if delegate && h.Delegate != nil {
			r.errorf(p.child("delegate"), "a delegate virtual service cannot delegate again")
		}
		switch {
		case h.Redirect != nil:
			exclusive(r, p, "redirect", h)
		case h.DirectResponse != nil:
			exclusive(r, p, "directResponse", h)
		case len(h.Route) == 0:
			r.errorf(p, "one of route, redirect or directResponse is required")
		}
	}
	if h.Mirror != nil && len(h.Mirrors) > 0 {
		r.errorf(p.child("mirrors"), "mirror and mirrors cannot both be set")
	}

	for i, m := range h.Match {
		validateHTTPMatch(r, p.child("match").index(i), m)
	}
	validateHeaderOps(r, p.child("headers"), h.Headers)
	if h.CorsPolicy != nil {
		validateCORS(r, p.child("corsPolicy"), h.CorsPolicy)
	}
	if h.Fault != nil {
		validateFault(r, p.child("fault"), h.Fault)
	}
	if h.MirrorPercent != nil { //nolint:staticcheck // deprecated but still served
		r.warnf(p.child("mirrorPercent"), "deprecated; use mirrorPercentage")
		if v := h.MirrorPercent.GetValue(); v > 100 { //nolint:staticcheck
			r.errorf(p.child("mirrorPercent"), "percentage %d must be between 0 and 100", v)
		}
	}
	if v := h.MirrorPercentage; v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
		r.errorf(p.child("mirrorPercentage"), "percentage %v must be between 0 and 100", v.GetValue())
	}
	if h.Mirror != nil {
		validateDestination(r, p.child("mirror"), h.Mirror)
	}
	for i, m := range h.Mirrors {
		mp := p.child("mirrors").index(i)
		switch {
		case m == nil:
			r.errorf(mp, "must not be null")
		case m.Destination == nil:
			r.errorf(mp.child("destination"), "required")
		default:
			validateDestination(r, mp.child("destination"), m.Destination)
			if v := m.Percentage; v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
				r.errorf(mp.child("percentage"), "percentage %v must be between 0 and 100", v.GetValue())
			}
		}
	}
	if h.Redirect != nil {
		validateRedirect(r, p.child("redirect"), h.Redirect)
	}
	if h.DirectResponse != nil {
		validateDirectResponse(r, p.child("directResponse"), h.DirectResponse)
	}
	if h.Retries != nil {
		validateRetries(r, p.child("retries"), h.Retries)
	}
	if h.Rewrite != nil {
		validateRewrite(r, p.child("rewrite"), h.Rewrite)
	}
	validateAuthorityRewrite(r, p, h)
	validateRouteDestinations(r, p.child("route"), h.Route)
	checkDuration(r, p.child("timeout"), h.Timeout)
}

// exclusive reports the fields that cannot accompany a redirect or a direct
// response, which both answer the request without forwarding it.
func exclusive(r *report, p fieldPath, what string, h *networking.HTTPRoute) {
	if len(h.Route) > 0 {
		r.errorf(p.child("route"), "route and %s cannot both be set", what)
	}
	if h.Fault != nil {
		r.errorf(p.child("fault"), "fault and %s cannot both be set", what)
	}
	if h.Rewrite != nil {
		r.errorf(p.child("rewrite"), "rewrite and %s cannot both be set", what)
	}
	if what == "redirect" && h.DirectResponse != nil {
		r.errorf(p.child("directResponse"), "directResponse and redirect cannot both be set")
	}
}

func validateDelegate(r *report, p fieldPath, d *networking.Delegate) {
	if d.Name == "" {
		r.errorf(p.child("name"), "required")
	} else if !isDNS1123Subdomain(d.Name) {
		r.errorf(p.child("name"), "invalid virtual service name %q", d.Name)
	}
	if d.Namespace != "" && !isDNS1123Label(d.Namespace) {
		r.errorf(p.child("namespace"), "invalid namespace %q", d.Namespace)
	}
}

func isDNS1123Subdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNS1123Label(l) || strings.ToLower(l) != l {
			return false
		}
	}
	return true
}

// pseudoHeaders are the HTTP/2 pseudo headers a route may match on.
var pseudoHeaders = map[string]bool{":method": true, ":scheme": true, ":authority": true, ":path": true, ":status": true}

// matchHeaderProblem checks a header name of a route match: a header, an
// HTTP/2 pseudo header or a JWT claim.
func matchHeaderProblem(name string) string {
	if pseudoHeaders[name] || isJWTClaimRoute(name) {
		return ""
	}
	return headerNameProblem(name)
}

func validateHTTPMatch(r *report, p fieldPath, m *networking.HTTPMatchRequest) {
	if m == nil {
		r.errorf(p, "must not be null")
		return
	}
	for _, name := range sortedKeys(m.Headers) {
		hp := p.child("headers").key(name)
		r.check(hp, matchHeaderProblem(name))
		validateStringMatch(r, hp, m.Headers[name], false)
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		hp := p.child("withoutHeaders").key(name)
		r.check(hp, matchHeaderProblem(name))
		// regex "*" is not a regex here: it means "header present".
		if sm := m.WithoutHeaders[name]; sm.GetRegex() != "*" {
			validateStringMatch(r, hp, sm, false)
		}
	}
	for _, name := range sortedKeys(m.QueryParams) {
		qp := p.child("queryParams").key(name)
		if name == "" {
			r.errorf(qp, "query parameter name must not be empty")
		}
		validateStringMatch(r, qp, m.QueryParams[name], false)
	}
	// An empty URI prefix matches everything; other empty prefixes are
	// rejected by Envoy.
	validateStringMatch(r, p.child("uri"), m.Uri, true)
	validateStringMatch(r, p.child("scheme"), m.Scheme, false)
	validateStringMatch(r, p.child("method"), m.Method, false)
	validateStringMatch(r, p.child("authority"), m.Authority, false)
	if m.Port != 0 {
		r.check(p.child("port"), portProblem(m.Port))
	}
	validateLabels(r, p.child("sourceLabels"), m.SourceLabels, false)
	validateGatewayNames(r, p.child("gateways"), m.Gateways)
	if m.SourceNamespace != "" && !isDNS1123Label(m.SourceNamespace) {
		r.errorf(p.child("sourceNamespace"), "invalid namespace %q", m.SourceNamespace)
	}
}

func validateStringMatch(r *report, p fieldPath, sm *networking.StringMatch, allowEmptyPrefix bool) {
	switch t := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if t.Prefix == "" && !allowEmptyPrefix {
			r.errorf(p.child("prefix"), "must not be empty")
		}
	case *networking.StringMatch_Regex:
		r.check(p.child("regex"), regexProblem(t.Regex))
	}
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// requestHeaderProblem checks a header that a route adds to or sets on a
// request: the authority may be rewritten this way, other pseudo headers
// may not.
func requestHeaderProblem(name string) string {
	if isAuthorityHeader(name) {
		return ""
	}
	if strings.HasPrefix(name, ":") {
		return fmt.Sprintf("invalid header %q: pseudo headers cannot be modified", name)
	}
	return headerNameProblem(name)
}

// headerOpProblem checks a header removed from a request or modified in a
// response: neither Host nor pseudo headers.
func headerOpProblem(name string) string {
	switch {
	case strings.EqualFold(name, "host"):
		return "the Host header cannot be modified this way"
	case strings.HasPrefix(name, ":"):
		return fmt.Sprintf("invalid header %q: pseudo headers cannot be modified", name)
	}
	return headerNameProblem(name)
}

func validateHeaderOps(r *report, p fieldPath, h *networking.Headers) {
	if h == nil {
		return
	}
	ops := func(op fieldPath, o *networking.Headers_HeaderOperations, nameProblem func(string) string) {
		if o == nil {
			return
		}
		for _, m := range []struct {
			name   string
			values map[string]string
		}{{"add", o.Add}, {"set", o.Set}} {
			for _, k := range sortedKeys(m.values) {
				kp := op.child(m.name).key(k)
				r.check(kp, nameProblem(k))
				r.check(kp, headerValueProblem(m.values[k]))
			}
		}
		for i, k := range o.Remove {
			r.check(op.child("remove").index(i), headerOpProblem(k))
		}
	}
	ops(p.child("request"), h.Request, requestHeaderProblem)
	ops(p.child("response"), h.Response, headerOpProblem)
}

// validateAuthorityRewrite ensures the authority is rewritten in one place
// only: rewrite.authority or one request header operation.
func validateAuthorityRewrite(r *report, p fieldPath, h *networking.HTTPRoute) {
	current := h.GetRewrite().GetAuthority()
	req := h.GetHeaders().GetRequest()
	for _, op := range []struct {
		name   string
		values map[string]string
	}{{"set", req.GetSet()}, {"add", req.GetAdd()}} {
		for _, k := range sortedKeys(op.values) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				r.errorf(p.child("headers").child("request").child(op.name).key(k),
					"the authority is rewritten more than once: have %q, setting %q", current, op.values[k])
			}
			current = op.values[k]
		}
	}
}

// corsMethods are the methods a CORS policy may allow.
var corsMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true,
	http.MethodTrace: true, "*": true,
}

func validateCORS(r *report, p fieldPath, c *networking.CorsPolicy) {
	if len(c.AllowOrigin) > 0 { //nolint:staticcheck // deprecated but still served
		r.warnf(p.child("allowOrigin"), "deprecated; use allowOrigins")
	}
	for i, o := range c.AllowOrigins {
		op := p.child("allowOrigins").index(i)
		switch t := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			if t.Exact == "" {
				r.errorf(op.child("exact"), "must not be empty")
			}
		case *networking.StringMatch_Prefix:
			if t.Prefix == "" {
				r.errorf(op.child("prefix"), "must not be empty")
			}
		case *networking.StringMatch_Regex:
			r.check(op.child("regex"), regexProblem(t.Regex))
		default:
			r.errorf(op, "one of exact, prefix or regex is required")
		}
	}
	for i, m := range c.AllowMethods {
		if !corsMethods[m] {
			r.errorf(p.child("allowMethods").index(i), "unsupported HTTP method %q", m)
		}
	}
	for _, f := range []struct {
		name  string
		names []string
	}{{"allowHeaders", c.AllowHeaders}, {"exposeHeaders", c.ExposeHeaders}} {
		for i, h := range f.names {
			if h != "*" {
				r.check(p.child(f.name).index(i), headerNameProblem(h))
			}
		}
	}
	if c.MaxAge != nil {
		if !r.check(p.child("maxAge"), durationProblem(c.MaxAge)) {
			return
		}
		if c.MaxAge.GetNanos() != 0 {
			r.errorf(p.child("maxAge"), "must be a whole number of seconds")
		}
	}
}

// grpcStatuses are the gRPC status names an abort fault may return.
var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true, "DEADLINE_EXCEEDED": true,
	"NOT_FOUND": true, "ALREADY_EXISTS": true, "PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true,
	"FAILED_PRECONDITION": true, "ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true,
	"INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

// httpStatusProblem checks a status code Envoy will send: 200..599.
func httpStatusProblem(code int64) string {
	if code < 200 || code > 599 {
		return fmt.Sprintf("HTTP status %d must be between 200 and 599", code)
	}
	return ""
}

func validateFault(r *report, p fieldPath, f *networking.HTTPFaultInjection) {
	if f.Abort == nil && f.Delay == nil {
		r.errorf(p, "at least one of abort or delay is required")
	}
	if a := f.Abort; a != nil {
		ap := p.child("abort")
		r.check(ap.child("percentage"), percentageProblem(a.Percentage))
		switch t := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			r.check(ap.child("httpStatus"), httpStatusProblem(int64(t.HttpStatus)))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[t.GrpcStatus] {
				r.errorf(ap.child("grpcStatus"), "unknown gRPC status %q; use a name such as \"UNAVAILABLE\" or \"NOT_FOUND\"", t.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			r.errorf(ap.child("http2Error"), "HTTP/2 error aborts are not supported")
		default:
			r.warnf(ap, "abort has neither httpStatus nor grpcStatus; it has no effect")
		}
	}
	if d := f.Delay; d != nil {
		dp := p.child("delay")
		r.check(dp.child("percentage"), percentageProblem(d.Percentage))
		if d.Percent != 0 { //nolint:staticcheck // deprecated but still served
			r.warnf(dp.child("percent"), "deprecated; use percentage")
			r.check(dp.child("percent"), percentProblem(int64(d.Percent))) //nolint:staticcheck
		}
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			r.check(dp.child("fixedDelay"), durationProblem(t.FixedDelay))
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			r.errorf(dp.child("exponentialDelay"), "exponential delays are not supported; use fixedDelay")
		default:
			r.errorf(dp.child("fixedDelay"), "required")
		}
	}
}

// retryOnPolicies are Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on
// conditions. An HTTP status code is accepted too.
var retryOnPolicies = map[string]bool{
	// x-envoy-retry-on
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "retriable-4xx": true, "refused-stream": true,
	"retriable-status-codes": true, "retriable-headers": true, "envoy-ratelimited": true,
	"http3-post-connect-failure": true,
	// x-envoy-retry-grpc-on
	"cancelled": true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

func validateRetries(r *report, p fieldPath, rt *networking.HTTPRetry) {
	if rt.Attempts < 0 {
		r.errorf(p.child("attempts"), "must not be negative")
	}
	if rt.Attempts == 0 && (rt.PerTryTimeout != nil || rt.RetryOn != "" || rt.RetryRemoteLocalities != nil) {
		r.errorf(p.child("attempts"), "retries are disabled (attempts is 0) but other retry settings are set")
	}
	checkDuration(r, p.child("perTryTimeout"), rt.PerTryTimeout)
	checkDuration(r, p.child("backoff"), rt.Backoff)
	if rt.RetryOn != "" {
		for _, cond := range strings.Split(rt.RetryOn, ",") {
			if retryOnPolicies[cond] {
				continue
			}
			if code, err := strconv.Atoi(cond); err == nil && http.StatusText(code) != "" {
				continue
			}
			r.errorf(p.child("retryOn"), "%q is not a valid retry condition (conditions are comma separated, without spaces)", cond)
		}
	}
}

func validateRedirect(r *report, p fieldPath, rd *networking.HTTPRedirect) {
	if rd.Uri == "" && rd.Authority == "" && rd.RedirectPort == nil && rd.Scheme == "" && rd.PrefixRewrite == "" {
		r.errorf(p, "at least one of uri, prefixRewrite, authority, scheme, port or derivePort is required")
	}
	if rd.Uri != "" && rd.PrefixRewrite != "" {
		r.errorf(p.child("prefixRewrite"), "uri and prefixRewrite cannot both be set")
	}
	if rd.RedirectCode != 0 && (rd.RedirectCode < 300 || rd.RedirectCode > 399) {
		r.errorf(p.child("redirectCode"), "%d is not a redirect status; want 3xx", rd.RedirectCode)
	}
	if rd.Scheme != "" && rd.Scheme != "http" && rd.Scheme != "https" {
		r.errorf(p.child("scheme"), "invalid scheme %q: want \"http\" or \"https\"", rd.Scheme)
	}
	if port, ok := rd.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		r.check(p.child("port"), portProblem(port.Port))
	}
}

const (
	maxDirectResponseBody  = 1 << 20
	warnDirectResponseBody = 100 << 10
)

func validateDirectResponse(r *report, p fieldPath, d *networking.HTTPDirectResponse) {
	r.check(p.child("status"), httpStatusProblem(int64(d.Status)))
	size := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes())
	switch {
	case size > maxDirectResponseBody:
		r.errorf(p.child("body"), "body is too large (%d bytes, limit 1 MiB)", size)
	case size > warnDirectResponseBody:
		r.warnf(p.child("body"), "large bodies (%d bytes) slow down configuration distribution", size)
	}
}

func validateRewrite(r *report, p fieldPath, rw *networking.HTTPRewrite) {
	if rw.Uri != "" && rw.UriRegexRewrite != nil {
		r.errorf(p.child("uriRegexRewrite"), "uri and uriRegexRewrite cannot both be set")
	}
	if rw.Uri == "" && rw.UriRegexRewrite == nil && rw.Authority == "" {
		r.errorf(p, "at least one of uri, uriRegexRewrite or authority is required")
	}
	if rr := rw.UriRegexRewrite; rr != nil {
		rp := p.child("uriRegexRewrite")
		if rr.Match == "" {
			r.errorf(rp.child("match"), "required")
		} else {
			r.check(rp.child("match"), regexProblem(rr.Match))
		}
		if rr.Rewrite == "" {
			r.errorf(rp.child("rewrite"), "required")
		}
	}
}
