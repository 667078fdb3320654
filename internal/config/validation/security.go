package validation

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

func validatePeerAuthentication(r *report, p fieldPath, pa *security.PeerAuthentication) {
	validateWorkloadSelector(r, p.child("selector"), pa.Selector)
	if len(pa.Selector.GetMatchLabels()) == 0 && len(pa.PortLevelMtls) > 0 {
		r.errorf(p.child("portLevelMtls"), "port level mTLS requires a selector with labels; mesh and namespace wide policies cannot have it")
	}
	for _, port := range slices.Sorted(maps.Keys(pa.PortLevelMtls)) {
		pp := p.child("portLevelMtls").key(strconv.FormatUint(uint64(port), 10))
		r.check(pp, portProblem(port))
		if pa.PortLevelMtls[port] == nil {
			r.errorf(pp, "must not be null")
		}
	}
}

// maxTargetRefs is the CRD limit on targetRefs.
const maxTargetRefs = 16

// targetKinds are the kinds a policy may attach to, by group ("" is core).
var targetKinds = map[string]map[string]bool{
	"":                          {"Service": true},
	"networking.istio.io":       {"ServiceEntry": true},
	"gateway.networking.k8s.io": {"Gateway": true, "GatewayClass": true},
}

// validatePolicyTarget checks that a policy attaches to workloads one way
// only (selector, targetRef or targetRefs) and that the references are
// valid.
func validatePolicyTarget(r *report, p fieldPath, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	for _, b := range []bool{sel != nil, ref != nil, len(refs) > 0} {
		if b {
			set++
		}
	}
	if set > 1 {
		r.errorf(p, "only one of selector, targetRef and targetRefs may be set")
	}
	validateWorkloadSelector(r, p.child("selector"), sel)
	if ref != nil {
		validateTargetRef(r, p.child("targetRef"), ref)
	}
	if len(refs) > maxTargetRefs {
		r.errorf(p.child("targetRefs"), "too many references (%d, limit %d)", len(refs), maxTargetRefs)
	}
	for i, t := range refs {
		if t == nil {
			r.errorf(p.child("targetRefs").index(i), "must not be null")
			continue
		}
		validateTargetRef(r, p.child("targetRefs").index(i), t)
	}
}

func validateTargetRef(r *report, p fieldPath, t *typev1beta1.PolicyTargetReference) {
	if t.Name == "" {
		r.errorf(p.child("name"), "required")
	}
	if t.Namespace != "" {
		r.errorf(p.child("namespace"), "must be empty: cross-namespace references are not supported")
	}
	group := t.Group
	if group == "core" {
		group = ""
	}
	if !targetKinds[group][t.Kind] {
		r.errorf(p.child("kind"), "cannot attach to %q in group %q; want Service, ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io)", t.Kind, t.Group)
	}
}

func validateAuthorizationPolicy(r *report, p fieldPath, ap *security.AuthorizationPolicy) {
	validatePolicyTarget(r, p, ap.Selector, ap.TargetRef, ap.TargetRefs)
	rules := p.child("rules")
	custom := ap.Action == security.AuthorizationPolicy_CUSTOM
	switch {
	case custom && len(ap.Rules) == 0:
		r.errorf(rules, "a CUSTOM policy without rules never applies; add an empty rule {} to apply it to every request")
	case custom && ap.GetProvider().GetName() == "":
		r.errorf(p.child("provider").child("name"), "required for action CUSTOM")
	case !custom && ap.GetProvider() != nil:
		r.errorf(p.child("provider"), "only allowed with action CUSTOM, not %s", ap.Action)
	}
	if ap.Action == security.AuthorizationPolicy_DENY && len(ap.Rules) == 0 {
		r.errorf(rules, "a DENY policy without rules never applies; add an empty rule {} to apply it to every request")
	}
	for i, rule := range ap.Rules {
		rp := rules.index(i)
		if rule == nil {
			r.errorf(rp, "must not be null")
			continue
		}
		fromExists, toExists, tcpFrom, tcpTo := false, false, false, false
		for j, from := range rule.From {
			fp := rp.child("from").index(j)
			if from.GetSource() == nil {
				r.errorf(fp.child("source"), "required")
				continue
			}
			fromExists = true
			tcpFrom = validateSource(r, fp.child("source"), from.Source, custom) || tcpFrom
		}
		for j, to := range rule.To {
			tp := rp.child("to").index(j)
			if to.GetOperation() == nil {
				r.errorf(tp.child("operation"), "required")
				continue
			}
			toExists = true
			tcpTo = validateOperation(r, tp.child("operation"), to.Operation) || tcpTo
		}
		for j, c := range rule.When {
			validateCondition(r, rp.child("when").index(j), c, custom)
		}
		// A DENY rule made only of HTTP attributes cannot match TCP traffic
		// and therefore denies all of it.
		if ap.Action == security.AuthorizationPolicy_DENY && (fromExists && !toExists && !tcpFrom || toExists && !tcpTo) {
			r.warnf(rp, "this DENY rule uses only HTTP attributes, so it denies all TCP traffic to the selected workloads; name the ports to avoid that")
		}
	}
}

// validateSource checks a rule's source; it reports whether the source uses
// attributes that TCP traffic has.
func validateSource(r *report, p fieldPath, s *security.Source, custom bool) bool {
	lists := []struct {
		name   string
		values []string
		tcp    bool // available for TCP traffic
		custom bool // supported with action CUSTOM
	}{
		{"principals", s.Principals, true, false}, {"notPrincipals", s.NotPrincipals, true, false},
		{"requestPrincipals", s.RequestPrincipals, false, false}, {"notRequestPrincipals", s.NotRequestPrincipals, false, false},
		{"namespaces", s.Namespaces, true, false}, {"notNamespaces", s.NotNamespaces, true, false},
		{"serviceAccounts", s.ServiceAccounts, true, false}, {"notServiceAccounts", s.NotServiceAccounts, true, false},
		{"ipBlocks", s.IpBlocks, true, true}, {"notIpBlocks", s.NotIpBlocks, true, true},
		{"remoteIpBlocks", s.RemoteIpBlocks, true, true}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks, true, true},
		{"trustDomains", s.TrustDomains, true, false}, {"notTrustDomains", s.NotTrustDomains, true, false},
	}
	empty, tcp := true, false
	for _, l := range lists {
		if len(l.values) == 0 {
			continue
		}
		empty = false
		tcp = tcp || l.tcp
		lp := p.child(l.name)
		if custom && !l.custom {
			r.errorf(lp, "not supported with action CUSTOM")
		}
		for i, v := range l.values {
			if v == "" {
				r.errorf(lp.index(i), "must not be empty")
			}
		}
	}
	if empty {
		r.errorf(p, "must set at least one field")
	}
	if len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 && len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 {
		r.errorf(p.child("serviceAccounts"), "serviceAccounts cannot be combined with principals or namespaces")
	}
	for _, l := range []struct {
		name   string
		values []string
	}{{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks}, {"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks}} {
		validateIPs(r, p.child(l.name), l.values)
	}
	validateServiceAccounts(r, p.child("serviceAccounts"), s.ServiceAccounts)
	validateServiceAccounts(r, p.child("notServiceAccounts"), s.NotServiceAccounts)
	return tcp
}

func validateIPs(r *report, p fieldPath, ips []string) {
	for i, v := range ips {
		if v == "" {
			continue // reported as empty
		}
		if strings.Contains(v, "/") {
			if _, err := netip.ParsePrefix(v); err != nil {
				r.errorf(p.index(i), "invalid CIDR range %q", v)
			}
		} else if !isIP(v) {
			r.errorf(p.index(i), "invalid IP address %q", v)
		}
	}
}

// maxServiceAccounts and maxServiceAccountRef are the CRD limits.
const (
	maxServiceAccounts   = 16
	maxServiceAccountRef = 320
)

// validateServiceAccounts checks "name" or "namespace/name" references.
func validateServiceAccounts(r *report, p fieldPath, values []string) {
	if len(values) > maxServiceAccounts {
		r.errorf(p, "too many values (%d, limit %d)", len(values), maxServiceAccounts)
	}
	for i, v := range values {
		vp := p.index(i)
		switch ns, sa, qualified := strings.Cut(v, "/"); {
		case v == "":
			// reported as empty
		case strings.Contains(v, "*"):
			r.errorf(vp, "wildcards are not allowed in service accounts")
		case len(v) > maxServiceAccountRef:
			r.errorf(vp, "too long (%d characters, limit %d)", len(v), maxServiceAccountRef)
		case strings.Contains(sa, "/"), qualified && (ns == "" || sa == ""):
			r.errorf(vp, "invalid service account %q: want \"name\" or \"namespace/name\"", v)
		}
	}
}

// pathSegmentRe is RFC 3986 pchar, which path template literals must be.
var pathSegmentRe = regexp.MustCompile(`^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$`)

// validateOperation checks a rule's operation; it reports whether the
// operation uses attributes that TCP traffic has (ports).
func validateOperation(r *report, p fieldPath, o *security.Operation) bool {
	lists := []struct {
		name   string
		values []string
	}{
		{"hosts", o.Hosts}, {"notHosts", o.NotHosts}, {"ports", o.Ports}, {"notPorts", o.NotPorts},
		{"methods", o.Methods}, {"notMethods", o.NotMethods}, {"paths", o.Paths}, {"notPaths", o.NotPaths},
	}
	empty := true
	for _, l := range lists {
		if len(l.values) > 0 {
			empty = false
		}
		for i, v := range l.values {
			if v == "" {
				r.errorf(p.child(l.name).index(i), "must not be empty")
			}
		}
	}
	if empty {
		r.errorf(p, "must set at least one field")
	}
	validatePorts(r, p.child("ports"), o.Ports)
	validatePorts(r, p.child("notPorts"), o.NotPorts)
	validatePathTemplates(r, p.child("paths"), o.Paths)
	validatePathTemplates(r, p.child("notPaths"), o.NotPaths)
	return len(o.Ports)+len(o.NotPorts) > 0
}

func validatePorts(r *report, p fieldPath, ports []string) {
	for i, v := range ports {
		if v == "" {
			continue // reported as empty
		}
		if n, err := strconv.ParseUint(v, 10, 16); err != nil || n > 65535 {
			r.errorf(p.index(i), "invalid port %q: want a number from 0 to 65535", v)
		}
	}
}

// validatePathTemplates checks paths that use the {*} (one segment) and
// {**} (any number of segments, last only) templates.
func validatePathTemplates(r *report, p fieldPath, paths []string) {
	for i, path := range paths {
		if !strings.Contains(path, "{*}") && !strings.Contains(path, "{**}") {
			continue
		}
		matchAny := false
		for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
			switch {
			case (seg == "{*}" || seg == "{**}") && matchAny:
				r.errorf(p.index(i), "invalid path template %q: {**} must be the last segment", path)
			case seg == "{*}":
				continue
			case seg == "{**}":
				matchAny = true
				continue
			case strings.ContainsAny(seg, "{}"):
				r.errorf(p.index(i), "invalid path template %q: only whole segments {*} and {**} may use braces", path)
			case !pathSegmentRe.MatchString(seg):
				r.errorf(p.index(i), "invalid path template %q: segment %q has characters not allowed in a path", path, seg)
			default:
				continue
			}
			break
		}
	}
}

// Condition keys; map-style keys carry the name in brackets.
var (
	conditionKeys = map[string]string{ // key -> value kind
		"source.ip": "ip", "remote.ip": "ip", "destination.ip": "ip",
		"source.namespace": "", "source.serviceAccount": "serviceAccount", "source.principal": "",
		"request.auth.principal": "", "request.auth.audiences": "", "request.auth.presenter": "",
		"destination.port": "port", "connection.sni": "",
	}
	conditionMapKeys = []string{"request.headers", "request.experimental.inline.headers", "request.auth.claims"}
	retiredKeys      = map[string]string{
		"destination.namespace": "use metadata.namespace instead",
		"destination.name":      "only supported in v1alpha1",
		"destination.user":      "only supported in v1alpha1",
	}
)

// customUnsupportedKeys are the condition keys action CUSTOM cannot use.
func customUnsupportedKey(key string) bool {
	return key == "source.namespace" || key == "source.serviceAccount" || key == "source.principal" || strings.HasPrefix(key, "request.auth.")
}

func validateCondition(r *report, p fieldPath, c *security.Condition, custom bool) {
	if c == nil {
		r.errorf(p, "must not be null")
		return
	}
	key := c.Key
	kp := p.child("key")
	if key == "" {
		r.errorf(kp, "required")
		return
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		r.errorf(p, "at least one of values or notValues is required")
	}
	if custom && customUnsupportedKey(key) {
		r.errorf(kp, "%q is not supported with action CUSTOM", key)
	}
	kind, known := conditionKeys[key]
	switch {
	case known:
	case strings.HasPrefix(key, "destination.labels"):
		r.errorf(kp, "%q is not supported; use the workload selector instead", key)
		return
	case retiredKeys[key] != "":
		r.errorf(kp, "%q is not supported; %s", key, retiredKeys[key])
		return
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		r.check(kp, mapKeyProblem(key))
	default:
		mapKey := false
		for _, prefix := range conditionMapKeys {
			if strings.HasPrefix(key, prefix) {
				mapKey = true
				r.check(kp, mapKeyProblem(key))
				break
			}
		}
		if !mapKey {
			r.errorf(kp, "unknown attribute %q", key)
			return
		}
	}
	for _, l := range []struct {
		name   string
		values []string
	}{{"values", c.Values}, {"notValues", c.NotValues}} {
		lp := p.child(l.name)
		for i, v := range l.values {
			if v == "" {
				r.errorf(lp.index(i), "must not be empty")
			}
		}
		switch kind {
		case "ip":
			validateIPs(r, lp, l.values)
		case "port":
			validatePorts(r, lp, l.values)
		case "serviceAccount":
			validateServiceAccounts(r, lp, l.values)
		}
	}
}

// mapKeyProblem checks a key of the form "a[b]".
func mapKeyProblem(key string) string {
	open := strings.Index(key, "[")
	if strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2 {
		return ""
	}
	return fmt.Sprintf("invalid key %q: want the form name[value], such as request.headers[user-agent]", key)
}

// maxJWKSURILength is the CRD limit on jwksUri.
const maxJWKSURILength = 2048

func validateRequestAuthentication(r *report, p fieldPath, ra *security.RequestAuthentication) {
	validatePolicyTarget(r, p, ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, rule := range ra.JwtRules {
		rp := p.child("jwtRules").index(i)
		if rule == nil {
			r.errorf(rp, "must not be null")
			continue
		}
		validateJWTRule(r, rp, rule)
	}
}

func validateJWTRule(r *report, p fieldPath, rule *security.JWTRule) {
	nonEmpty := func(name string, values []string) {
		for i, v := range values {
			if v == "" {
				r.errorf(p.child(name).index(i), "must not be empty")
			}
		}
	}
	nonEmpty("audiences", rule.Audiences)
	nonEmpty("fromParams", rule.FromParams)
	nonEmpty("fromCookies", rule.FromCookies)
	nonEmpty("spaceDelimitedClaims", rule.SpaceDelimitedClaims)
	if rule.Issuer == "" && rule.JwksUri == "" {
		r.errorf(p.child("issuer"), "required unless jwksUri is set")
	}
	if rule.JwksUri != "" && rule.Jwks != "" {
		r.errorf(p.child("jwks"), "jwks and jwksUri cannot both be set")
	}
	if u := rule.JwksUri; u != "" {
		r.check(p.child("jwksUri"), jwksURIProblem(u))
	}
	if rule.Jwks != "" {
		r.check(p.child("jwks"), jwksProblem(rule.Jwks))
	}
	for i, h := range rule.FromHeaders {
		hp := p.child("fromHeaders").index(i)
		if h == nil {
			r.errorf(hp, "must not be null")
			continue
		}
		r.check(hp.child("name"), headerNameProblem(h.Name))
	}
	if rule.OutputPayloadToHeader != "" {
		r.check(p.child("outputPayloadToHeader"), strictHeaderNameProblem(rule.OutputPayloadToHeader))
	}
	for i, c := range rule.OutputClaimToHeaders {
		cp := p.child("outputClaimToHeaders").index(i)
		if c == nil {
			r.errorf(cp, "must not be null")
			continue
		}
		if c.Claim == "" {
			r.errorf(cp.child("claim"), "required")
		}
		r.check(cp.child("header"), strictHeaderNameProblem(c.Header))
	}
	checkDuration(r, p.child("timeout"), rule.Timeout)
}

func jwksURIProblem(s string) string {
	if len(s) > maxJWKSURILength {
		return fmt.Sprintf("too long (%d characters, limit %d)", len(s), maxJWKSURILength)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("invalid URL %q", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("invalid URL %q: the scheme must be http or https", s)
	}
	if u.Hostname() == "" {
		return fmt.Sprintf("invalid URL %q: no host", s)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Sprintf("invalid URL %q: bad port %q", s, port)
		}
	}
	return ""
}

// jwksProblem checks that an inline JWKS is a JSON Web Key or a key set.
func jwksProblem(s string) string {
	var doc struct {
		Keys []map[string]any `json:"keys"`
		Kty  string           `json:"kty"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return "invalid JWKS: not a JSON object with \"keys\""
	}
	if doc.Kty != "" {
		return ""
	}
	if len(doc.Keys) == 0 {
		return "invalid JWKS: no keys"
	}
	for i, k := range doc.Keys {
		if kty, _ := k["kty"].(string); kty == "" {
			return fmt.Sprintf("invalid JWKS: key %d has no \"kty\"", i)
		}
	}
	return ""
}
