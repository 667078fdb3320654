package rbac

import (
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// TestRepeatedHeaders covers SECURITY A9: a header sent several times,
// as a list, or in another case is read every way the application might
// read it, and the engine's direction decides (DENY: any reading; ALLOW:
// every reading).
func TestRepeatedHeaders(t *testing.T) {
	const (
		denyAdmin   = `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"exact":"admin"}}}]}}}`
		denyNotUser = `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"notId":{"header":{"name":"x-role","stringMatch":{"exact":"user"}}}}]}}}`
		allowUser   = `{"action":"ALLOW","policies":{"a":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"exact":"user"}}}]}}}`
		allowNotAdm = `{"action":"ALLOW","policies":{"a":{"permissions":[{"any":true}],"principals":[{"notId":{"header":{"name":"x-role","stringMatch":{"exact":"admin"}}}}]}}}`
		allowInvert = `{"action":"ALLOW","policies":{"a":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"exact":"admin"},"invertMatch":true}}]}}}`
		denyInvert  = `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"exact":"user"},"invertMatch":true}}]}}}`
		denyRegex   = `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"safeRegex":{"regex":"adm.n"}}}}]}}}`
		allowComma  = `{"action":"ALLOW","policies":{"a":{"permissions":[{"any":true}],"principals":[{"header":{"name":"accept","stringMatch":{"exact":"a,b"}}}]}}}`
		denyMethod  = `{"action":"DENY","policies":{"d":{"permissions":[{"header":{"name":":method","stringMatch":{"exact":"DELETE"}}}],"principals":[{"any":true}]}}}`
	)
	cases := []struct {
		name    string
		rbac    string
		headers map[string][]string
		method  string
		allowed bool
	}{
		{"deny one value", denyAdmin, map[string][]string{"x-role": {"admin"}}, "", false},
		{"deny other value", denyAdmin, map[string][]string{"x-role": {"user"}}, "", true},
		{"deny absent", denyAdmin, nil, "", true},
		{"deny twice admin last", denyAdmin, map[string][]string{"x-role": {"user", "admin"}}, "", false},
		{"deny twice admin first", denyAdmin, map[string][]string{"x-role": {"admin", "user"}}, "", false},
		{"deny list", denyAdmin, map[string][]string{"x-role": {"user,admin"}}, "", false},
		{"deny list with space", denyAdmin, map[string][]string{"x-role": {"user ,\tadmin"}}, "", false},
		{"deny other case", denyAdmin, map[string][]string{"x-role": {"ADMIN"}}, "", false},
		{"deny other case in list", denyAdmin, map[string][]string{"x-role": {"user", "Admin"}}, "", false},
		{"deny list without admin", denyAdmin, map[string][]string{"x-role": {"user,administrator"}}, "", true},
		{"deny regex per value", denyRegex, map[string][]string{"x-role": {"user", "admin"}}, "", false},
		{"deny regex case sensitive", denyRegex, map[string][]string{"x-role": {"ADMIN"}}, "", true},
		{"deny not user: user", denyNotUser, map[string][]string{"x-role": {"user"}}, "", true},
		{"deny not user: user and admin", denyNotUser, map[string][]string{"x-role": {"user", "admin"}}, "", false},
		{"deny not user: list", denyNotUser, map[string][]string{"x-role": {"user,admin"}}, "", false},
		{"deny inverted: user", denyInvert, map[string][]string{"x-role": {"user"}}, "", true},
		{"deny inverted: user twice", denyInvert, map[string][]string{"x-role": {"user", "user"}}, "", false},
		{"allow user", allowUser, map[string][]string{"x-role": {"user"}}, "", true},
		{"allow user twice refused", allowUser, map[string][]string{"x-role": {"user", "admin"}}, "", false},
		{"allow user list refused", allowUser, map[string][]string{"x-role": {"user,admin"}}, "", false},
		{"allow user other case refused", allowUser, map[string][]string{"x-role": {"USER"}}, "", false},
		{"allow not admin: user", allowNotAdm, map[string][]string{"x-role": {"user"}}, "", true},
		{"allow not admin: user and admin", allowNotAdm, map[string][]string{"x-role": {"user", "admin"}}, "", false},
		{"allow not admin: list", allowNotAdm, map[string][]string{"x-role": {"user, admin"}}, "", false},
		{"allow not admin: other case", allowNotAdm, map[string][]string{"x-role": {"Admin"}}, "", false},
		{"allow inverted: list", allowInvert, map[string][]string{"x-role": {"user,admin"}}, "", false},
		{"allow inverted: user", allowInvert, map[string][]string{"x-role": {"user"}}, "", true},
		{"allow value with a comma", allowComma, map[string][]string{"accept": {"a,b"}}, "", true},
		{"deny method other case", denyMethod, nil, "delete", false},
		{"deny method", denyMethod, nil, "DELETE", false},
		{"deny method other", denyMethod, nil, "GET", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustCompile(t, tc.rbac)
			m := tc.method
			if m == "" {
				m = "GET"
			}
			in := Input{Request: &route.Request{Method: m, Scheme: "http", Authority: "svc", Path: "/", Headers: route.HeaderMap(tc.headers)}}
			if d := e.Evaluate(&in); d.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", d.Allowed, tc.allowed)
			}
		})
	}
}
