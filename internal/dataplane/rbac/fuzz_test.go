package rbac

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// policySet is a mix of every rule kind; the fuzzer feeds requests to its
// ALLOW and DENY forms. DENY reads ambiguous input (repeated headers, case)
// every way an application might and ALLOW only exactly (SECURITY A9), so
// DENY matches at least whatever ALLOW matches: a request ALLOW lets
// through is one DENY refuses (possibly naming an earlier policy that only
// the lenient reading matched).
const policySet = `"policies":{
 "ns[a]-policy[p]-rule[0]":{"permissions":[{"andRules":{"rules":[
   {"orRules":{"rules":[{"header":{"name":":method","stringMatch":{"exact":"GET"}}},{"header":{"name":":method","stringMatch":{"prefix":"PO"}}}]}},
   {"notRule":{"orRules":{"rules":[{"urlPath":{"path":{"prefix":"/admin"}}},{"urlPath":{"path":{"safeRegex":{"regex":".*/secret/.*"}}}}]}}},
   {"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/api/*/**"}}}]}}],
  "principals":[{"orIds":{"ids":[{"header":{"name":"x-role","stringMatch":{"exact":"admin","ignoreCase":true}}},{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/a/.*"}}}}]}}]},
 "ns[a]-policy[q]-rule[0]":{"permissions":[{"header":{"name":":authority","stringMatch":{"suffix":".example.com","ignoreCase":true}}}],
  "principals":[{"notId":{"remoteIp":{"addressPrefix":"10.0.0.0","prefixLen":8}}}]}}`

func FuzzRBACMatch(f *testing.F) {
	allow := mustCompile(f, `{"action":"ALLOW",`+policySet+`}`)
	deny := mustCompile(f, `{"action":"DENY",`+policySet+`}`)
	f.Add("GET", "svc.example.com", "/api/v1/x/y", "admin", "spiffe://cluster.local/ns/a/sa/b", "10.1.1.1")
	f.Add("POST", "SVC.EXAMPLE.COM", "/admin/../x?y#z", "", "", "192.168.0.1")
	f.Add("PUT", "", "", "a,admin", "spiffe://td/ns/b/sa/c", "::1")
	f.Fuzz(func(t *testing.T, method, authority, path, role, peer, remote string) {
		h := map[string][]string{}
		if role != "" {
			h["x-role"] = strings.Split(role, ";")
		}
		in := Input{
			Request:       req(method, authority, path, h),
			Authenticated: peer != "",
			PeerIdentity:  peer,
		}
		if a, err := netip.ParseAddr(remote); err == nil {
			in.Remote = a
		}
		a, d := allow.Evaluate(&in), deny.Evaluate(&in)
		if a.Allowed && d.Allowed {
			t.Fatalf("ALLOW matched %+v but DENY %+v on %+v", a, d, in)
		}
		in.Request = nil // the same policies at L4 must not panic
		_ = allow.Evaluate(&in)
	})
}

func FuzzURITemplate(f *testing.F) {
	for _, s := range []string{"/a/*", "/a/**", "/**.mpd", "/v/{id}", "/v/{id=**}", "/a/{b=c}/*", "/x"} {
		f.Add(s, "/a/b/c")
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		re, err := CompileURITemplate(tmpl)
		if err != nil {
			return
		}
		m := re.MatchString(path)
		if !strings.ContainsAny(tmpl, "*{") && m != (tmpl == path) {
			t.Fatalf("literal template %q on %q: match=%v", tmpl, path, m)
		}
		// A one-segment operator never matches across "/".
		if strings.HasSuffix(tmpl, "/*") && !strings.Contains(tmpl, "**") && m {
			if strings.Count(path, "/") != strings.Count(tmpl, "/") {
				t.Fatalf("%q matched %q across segments", tmpl, path)
			}
		}
	})
}

var _ = route.HeaderMap{}
