package rbac

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// hundredPolicies is the shape Istio generates for 100 ALLOW rules: each
// an and of method, path prefix and port, from one principal or namespace.
func hundredPolicies(action string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"action":%q,"policies":{`, action)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"ns[app]-policy[p%03d]-rule[0]":{"permissions":[{"andRules":{"rules":[`+
			`{"orRules":{"rules":[{"header":{"name":":method","stringMatch":{"exact":"GET"}}},{"header":{"name":":method","stringMatch":{"exact":"POST"}}}]}},`+
			`{"orRules":{"rules":[{"urlPath":{"path":{"prefix":"/svc%03d/"}}},{"urlPath":{"path":{"exact":"/exact%03d"}}}]}},`+
			`{"orRules":{"rules":[{"destinationPort":8080}]}}]}}],`+
			`"principals":[{"andIds":{"ids":[{"orIds":{"ids":[{"authenticated":{"principalName":{"exact":"spiffe://cluster.local/ns/app/sa/client%03d"}}},`+
			`{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/team%03d/.*"}}}}]}}]}}]}`, i, i, i, i, i)
	}
	b.WriteString("}}")
	return b.String()
}

// BenchmarkEvaluate100Policies evaluates a request that only the last of
// 100 ALLOW policies matches (the worst case: every policy is checked).
func BenchmarkEvaluate100Policies(b *testing.B) {
	e := mustCompile(b, hundredPolicies("ALLOW"))
	in := Input{
		Request:       req("GET", "app.default.svc.cluster.local", "/svc099/items?id=1", map[string][]string{"user-agent": {"bench"}}),
		Destination:   netip.MustParseAddrPort("10.0.0.7:8080"),
		DirectRemote:  netip.MustParseAddrPort("10.0.0.9:41000"),
		Authenticated: true,
		PeerIdentity:  "spiffe://cluster.local/ns/app/sa/client099",
	}
	if d := e.Evaluate(&in); !d.Allowed || d.Policy != "ns[app]-policy[p099]-rule[0]" {
		b.Fatalf("unexpected decision %+v", d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Evaluate(&in)
	}
}
