package authz

import (
	"errors"
	"fmt"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	security "istio.io/api/security/v1beta1"
)

// when keys (Istio's authorization policy conditions).
const (
	attrRequestHeader    = "request.headers"
	attrSrcIP            = "source.ip"
	attrRemoteIP         = "remote.ip"
	attrSrcNamespace     = "source.namespace"
	attrSrcPrincipal     = "source.principal"
	attrSrcSA            = "source.serviceAccount"
	attrRequestPrincipal = "request.auth.principal"
	attrRequestAudiences = "request.auth.audiences"
	attrRequestPresenter = "request.auth.presenter"
	attrRequestClaims    = "request.auth.claims"
	attrDestIP           = "destination.ip"
	attrDestPort         = "destination.port"
	attrConnSNI          = "connection.sni"
	attrEnvoyFilter      = "experimental.envoy.filters."
	keyHosts             = "hosts"
	keyMethods           = "methods"
	keyPaths             = "paths"
)

// condition is one field of a rule: its values are or-ed; notValues
// become not(or(...)).
type condition struct {
	key               string
	values, notValues []string
	gen               generator
}

// ruleModel is one rule: permissions (to) and principals (from), each a
// list of and-ed conditions.
type ruleModel struct {
	permissions [][]condition
	principals  [][]condition
}

func add(list []condition, front bool, g generator, key string, values, notValues []string) []condition {
	if len(values) == 0 && len(notValues) == 0 {
		return list
	}
	c := condition{key: key, values: values, notValues: notValues, gen: g}
	if front {
		return append([]condition{c}, list...)
	}
	return append(list, c)
}

func newRuleModel(r *security.Rule, policyNS string) (*ruleModel, error) {
	var basePerm, basePrin []condition
	for _, w := range r.GetWhen() {
		k, vs, nvs := w.GetKey(), w.GetValues(), w.GetNotValues()
		switch {
		case k == attrDestIP:
			basePerm = add(basePerm, false, destIPGen{}, k, vs, nvs)
		case k == attrDestPort:
			basePerm = add(basePerm, false, destPortGen{}, k, vs, nvs)
		case k == attrConnSNI:
			basePerm = add(basePerm, false, sniGen{}, k, vs, nvs)
		case strings.HasPrefix(k, attrEnvoyFilter):
			basePerm = add(basePerm, false, envoyFilterGen{}, k, vs, nvs)
		case k == attrSrcIP:
			basePrin = add(basePrin, false, srcIPGen{}, k, vs, nvs)
		case k == attrRemoteIP:
			basePrin = add(basePrin, false, remoteIPGen{}, k, vs, nvs)
		case k == attrSrcNamespace:
			basePrin = add(basePrin, false, namespaceGen{}, k, vs, nvs)
		case k == attrSrcPrincipal:
			basePrin = add(basePrin, false, principalGen{}, k, vs, nvs)
		case k == attrRequestPrincipal:
			basePrin = add(basePrin, false, requestPrincipalGen{}, k, vs, nvs)
		case k == attrRequestAudiences:
			basePrin = add(basePrin, false, claimGen{claims: []string{"aud"}}, k, vs, nvs)
		case k == attrRequestPresenter:
			basePrin = add(basePrin, false, claimGen{claims: []string{"azp"}}, k, vs, nvs)
		case strings.HasPrefix(k, attrRequestHeader):
			name, err := bracketed(strings.TrimPrefix(k, attrRequestHeader))
			if err != nil {
				return nil, fmt.Errorf("when %q: %w", k, err)
			}
			basePrin = add(basePrin, false, headerGen{name: name}, k, vs, nvs)
		case strings.HasPrefix(k, attrRequestClaims):
			claims, err := nestedBracketed(strings.TrimPrefix(k, attrRequestClaims))
			if err != nil {
				return nil, fmt.Errorf("when %q: %w", k, err)
			}
			basePrin = add(basePrin, false, claimGen{claims: claims}, k, vs, nvs)
		default:
			// A key validation let through but no generator knows
			// (SECURITY A12): the condition cannot be checked, so an
			// ALLOW rule using it never allows and a DENY or AUDIT rule
			// is widened to ignore it; never silently dropped whole.
			basePerm = add(basePerm, false, unknownGen{}, k, vs, nvs)
		}
	}
	m := &ruleModel{}
	for _, f := range r.GetFrom() {
		list := append([]condition(nil), basePrin...)
		if s := f.GetSource(); s != nil {
			list = add(list, true, serviceAccountGen{ns: policyNS}, attrSrcSA, s.GetServiceAccounts(), s.GetNotServiceAccounts())
			list = add(list, true, srcIPGen{}, attrSrcIP, s.GetIpBlocks(), s.GetNotIpBlocks())
			list = add(list, true, remoteIPGen{}, attrRemoteIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
			list = add(list, true, namespaceGen{}, attrSrcNamespace, s.GetNamespaces(), s.GetNotNamespaces())
			list = add(list, true, requestPrincipalGen{}, attrRequestPrincipal, s.GetRequestPrincipals(), s.GetNotRequestPrincipals())
			list = add(list, true, principalGen{}, attrSrcPrincipal, s.GetPrincipals(), s.GetNotPrincipals())
		}
		m.principals = append(m.principals, list)
	}
	if len(r.GetFrom()) == 0 {
		m.principals = append(m.principals, basePrin)
	}
	for _, t := range r.GetTo() {
		list := append([]condition(nil), basePerm...)
		if o := t.GetOperation(); o != nil {
			list = add(list, true, destPortGen{}, attrDestPort, o.GetPorts(), o.GetNotPorts())
			list = add(list, true, pathGen{}, keyPaths, o.GetPaths(), o.GetNotPaths())
			list = add(list, true, methodGen{}, keyMethods, o.GetMethods(), o.GetNotMethods())
			list = add(list, true, hostGen{}, keyHosts, o.GetHosts(), o.GetNotHosts())
		}
		m.permissions = append(m.permissions, list)
	}
	if len(r.GetTo()) == 0 {
		m.permissions = append(m.permissions, basePerm)
	}
	return m, nil
}

// migrateTrustDomain expands source principals of a local trust domain to
// every trust domain of the mesh (Istio's trustdomain.Bundle).
func (m *ruleModel) migrateTrustDomain(tds []string) {
	if len(tds) == 0 {
		return
	}
	for _, list := range m.principals {
		for i := range list {
			if list[i].key != attrSrcPrincipal {
				continue
			}
			list[i].values = replaceTrustDomains(list[i].values, tds)
			list[i].notValues = replaceTrustDomains(list[i].notValues, tds)
		}
	}
}

func replaceTrustDomains(principals, tds []string) []string {
	if len(principals) == 0 {
		return principals
	}
	var out []string
	seen := map[string]bool{}
	push := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range principals {
		i := strings.LastIndex(p, "/ns/")
		if p == "*" || i <= 0 {
			push(p)
			continue
		}
		td, rest := p[:i], p[i:]
		enforced := td == "cluster.local"
		for _, t := range tds {
			enforced = enforced || t == td
		}
		if strings.Contains(td, "*") || !enforced {
			push(p)
			continue
		}
		for _, t := range tds {
			push(t + rest)
		}
	}
	return out
}

// generate builds the RBAC policy of the rule. For ALLOW a value that
// cannot be generated (an HTTP-only field on TCP, a bad IP) fails the
// rule; for DENY and LOG it is left out, widening the rule.
func (m *ruleModel) generate(forTCP bool, action rbacv3.RBAC_Action) (*rbacv3.Policy, error) {
	out := &rbacv3.Policy{}
	for _, list := range m.permissions {
		var and []*rbacv3.Permission
		for _, c := range list {
			ps, err := c.permissions(forTCP, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, permAny())
		}
		out.Permissions = append(out.Permissions, permAnd(and))
	}
	for _, list := range m.principals {
		var and []*rbacv3.Principal
		for _, c := range list {
			ps, err := c.principals(forTCP, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, prinAny())
		}
		out.Principals = append(out.Principals, failClosed(list, action, prinAnd(and)))
	}
	if len(out.Permissions) == 0 || len(out.Principals) == 0 {
		return nil, errors.New("rule has no permission or principal")
	}
	return out, nil
}

// failClosed makes a source that names peer identities (principals,
// namespaces, service accounts, in from or when) decide against a request
// without a verified peer identity (plaintext on a PERMISSIVE port),
// SECURITY A11: in DENY and AUDIT rules a positive identity condition
// matches such a request — or(not authenticated, p) — and in ALLOW rules
// a negative one (notNamespaces, ...) does not — and(authenticated, p).
// Istio leaves both to match plaintext as the bare Envoy matchers do,
// which lets a plaintext client past a DENY on its namespace.
func failClosed(list []condition, action rbacv3.RBAC_Action, p *rbacv3.Principal) *rbacv3.Principal {
	positive, negative := false, false
	for _, c := range list {
		switch c.key {
		case attrSrcPrincipal, attrSrcNamespace, attrSrcSA:
			positive = positive || len(c.values) > 0
			negative = negative || len(c.notValues) > 0
		}
	}
	authenticated := &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{}}}
	switch {
	case action == rbacv3.RBAC_ALLOW && negative:
		return prinAnd([]*rbacv3.Principal{authenticated, p})
	case action != rbacv3.RBAC_ALLOW && positive:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			{Identifier: &rbacv3.Principal_NotId{NotId: authenticated}}, p,
		}}}}
	}
	return p
}

func check(action rbacv3.RBAC_Action, err error) error {
	if action == rbacv3.RBAC_ALLOW {
		return err
	}
	return nil
}

func (c condition) permissions(forTCP bool, action rbacv3.RBAC_Action) ([]*rbacv3.Permission, error) {
	var out []*rbacv3.Permission
	for i, vals := range [][]string{c.values, c.notValues} {
		if len(vals) == 0 {
			continue
		}
		p, err := c.gen.permission(c.key, vals, forTCP)
		if err := check(action, err); err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		if i == 1 {
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
		}
		out = append(out, p)
	}
	return out, nil
}

func (c condition) principals(forTCP bool, action rbacv3.RBAC_Action) ([]*rbacv3.Principal, error) {
	var out []*rbacv3.Principal
	for i, vals := range [][]string{c.values, c.notValues} {
		if len(vals) == 0 {
			continue
		}
		p, err := c.gen.principal(c.key, vals, forTCP)
		if err := check(action, err); err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		if i == 1 {
			p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
		}
		out = append(out, p)
	}
	return out, nil
}

func bracketed(s string) (string, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") || len(s) < 3 {
		return "", fmt.Errorf("expecting format [<NAME>], but found %s", s)
	}
	return s[1 : len(s)-1], nil
}

// nestedBracketed splits "[a][b]" into a, b (a single "[a.b]" is one name).
func nestedBracketed(s string) ([]string, error) {
	var out []string
	for rest := s; rest != ""; {
		if rest[0] != '[' {
			return nil, fmt.Errorf("expecting format [<NAME>], but found %s", s)
		}
		end := strings.IndexByte(rest, ']')
		if end < 2 || strings.Contains(rest[1:end], "[") {
			return nil, fmt.Errorf("expecting format [<NAME>], but found %s", s)
		}
		out = append(out, rest[1:end])
		rest = rest[end+1:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("expecting format [<NAME>], but found %s", s)
	}
	return out, nil
}

// unknownGen is a when key the generators do not translate: it always
// fails, which check turns into "the ALLOW rule never matches" and "the
// DENY or AUDIT rule is checked without it".
type unknownGen struct{}

func (unknownGen) permission(key string, _ []string, _ bool) (*rbacv3.Permission, error) {
	return nil, fmt.Errorf("unknown attribute %s", key)
}

func (unknownGen) principal(key string, _ []string, _ bool) (*rbacv3.Principal, error) {
	return nil, fmt.Errorf("unknown attribute %s", key)
}
