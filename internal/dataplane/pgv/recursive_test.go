package pgv

import (
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

// TestRecursiveTypesAgree: RBAC permissions and principals nest into
// themselves (and_rules, or_rules, not_rule); violations deep inside are
// reported as the generated code reports them, and compiling the
// recursive types terminates.
func TestRecursiveTypesAgree(t *testing.T) {
	badHeader := &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: "bad\x00name"}}}
	emptySet := &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{}}}
	unset := &rbacv3.Permission{}
	nested := &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
		{Rule: &rbacv3.Permission_Any{Any: true}},
		{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{badHeader, unset, emptySet}}}}}},
	}}}}
	principal := &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
		{Identifier: &rbacv3.Principal_Header{Header: &routev3.HeaderMatcher{Name: ""}}},
		{Identifier: &rbacv3.Principal_UrlPath{UrlPath: &matcherv3.PathMatcher{}}},
	}}}}}}
	rbac := &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{nested}, Principals: []*rbacv3.Principal{principal}},
		"q": {},
	}}
	for name, m := range map[string]proto.Message{
		"bad header": badHeader, "empty set": emptySet, "unset rule": unset,
		"nested": nested, "principal": principal, "RBAC": rbac,
	} {
		if err := m.(generated).ValidateAll(); err == nil {
			t.Errorf("%s: valid, so it tests nothing", name)
		}
		t.Logf("%s: %v", name, ValidateAll(m))
		if d := disagreement(m); d != "" {
			t.Errorf("%s: %s", name, d)
		}
	}
}
