//go:build linux

package security

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// denyPolicy is the setup of SECURITY.md section A: DENY /admin*, plus
// the host (A8), header (A9), identity (A11) and method variants.
const denyPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin*"]
  - to:
    - operation:
        hosts: ["secret.com"]
  - when:
    - key: request.headers[x-role]
      values: ["admin"]
  - from:
    - source:
        namespaces: ["foo"]
    to:
    - operation:
        paths: ["/a11*"]
  - to:
    - operation:
        methods: ["DELETE"]
        paths: ["/public*"]
`

// allowOnlyPolicy adds an ALLOW-only list: /public and nothing else.
const allowOnlyPolicy = denyPolicy + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-public
  namespace: default
spec:
  selector:
    matchLabels:
      app: secure
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: ["/public*"]
`

// mode is a mesh pathNormalization setting.
type mode struct {
	name string
	norm meshconfig.MeshConfig_ProxyPathNormalization_NormalizationType
}

var modes = []mode{
	{"BASE", meshconfig.MeshConfig_ProxyPathNormalization_BASE}, // the mesh default
	{"MERGE_SLASHES", meshconfig.MeshConfig_ProxyPathNormalization_MERGE_SLASHES},
	{"DECODE_AND_MERGE_SLASHES", meshconfig.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES},
}

// outcome is what a case must produce.
type outcome int

const (
	denied   outcome = iota // 403 from RBAC; the backend never saw it
	rejected                // 400 (HTTP/1) or a reset/400 (HTTP/2); the backend never saw it
	noMarker                // whatever the status, the marker never comes back
	allowed                 // 200 from the backend, without the marker
	// exposed: the mode does not claim to protect this form (SECURITY.md:
	// "403 under MERGE_SLASHES and above"); the outcome is logged only.
	exposed
)

func (o outcome) String() string {
	return [...]string{"denied", "rejected", "noMarker", "allowed", "exposed"}[o]
}

// attack is one request of a case.
type attack struct {
	req request
	// want per mode name; "" key is the default for every mode.
	want           map[string]outcome
	h1Only, h2Only bool
}

func all(o outcome) map[string]outcome { return map[string]outcome{"": o} }

func (a attack) wantIn(mode string) outcome {
	if o, ok := a.want[mode]; ok {
		return o
	}
	return a.want[""]
}

func get(path string) request { return request{method: "GET", authority: "secure", path: path} }

// denyCases are SECURITY.md A1–A9, A11 and the method variant under the
// DENY policy.
func denyCases() []struct {
	id      string
	attacks []attack
} {
	// Slash tricks: only MERGE_SLASHES and above claim them.
	slashes := map[string]outcome{"BASE": exposed, "": denied}
	// Escaped slashes: DECODE_AND_MERGE_SLASHES decodes them (then the
	// policy sees /admin: 403); BASE and MERGE_SLASHES reject them (400),
	// where Istio would forward them unchanged to backends that decode.
	escaped := map[string]outcome{"DECODE_AND_MERGE_SLASHES": denied, "": rejected}
	withHeaders := func(h ...[2]string) request { r := get("/public"); r.headers = h; return r }
	withHost := func(host string) request { r := get("/public"); r.authority = host; return r }
	return []struct {
		id      string
		attacks []attack
	}{
		{"Control_Public", []attack{{req: get("/public"), want: all(allowed)}}},
		{"Control_Admin", []attack{{req: get("/admin"), want: all(denied)}, {req: get("/admin/x"), want: all(denied)}}},
		{"A1_DotSegments", []attack{
			{req: get("//admin"), want: slashes},
			{req: get("///admin"), want: slashes},
			{req: get("/./admin"), want: all(denied)},
			{req: get("/public/..//admin"), want: slashes},
			{req: get("/public/../admin"), want: all(denied)},
		}},
		{"A2_EscapedSlashes", []attack{
			{req: get("/%2Fadmin"), want: escaped},
			{req: get("/admin%2f"), want: escaped},
			{req: get("/public%2f..%2fadmin"), want: escaped},
			{req: get("/%5cadmin"), want: escaped},
			{req: get("/%5Cadmin"), want: escaped},
		}},
		{"A3_DecodeOnce", []attack{
			{req: get("/public/%2e%2e/admin"), want: all(denied)},
			{req: get("/public/%2E%2E/admin"), want: all(denied)},
			{req: get("/%61dmin"), want: all(denied)},
			{req: get("/%41dmin"), want: all(noMarker)},
		}},
		{"A4_DoubleEncoding", []attack{
			{req: get("/%252e%252e/admin"), want: all(noMarker)},
			{req: get("/public/%252e%252e/admin"), want: all(noMarker)},
			{req: get("/%2561dmin"), want: all(noMarker)},
		}},
		{"A5_Fragment", []attack{{req: get("/admin#x"), want: all(denied), h1Only: true}}},
		{"A6_Query", []attack{
			{req: get("/admin?x=1"), want: all(denied)},
			{req: get("/admin?"), want: all(denied)},
			{req: get("/admin?/public"), want: all(denied)},
		}},
		{"A7_Controls", []attack{
			{req: get("/adm%00in"), want: all(rejected)},
			{req: get("/adm%0d%0ain"), want: all(rejected)},
			{req: get("/admin%00"), want: all(rejected)},
			{req: get("/adm\x00in"), want: all(rejected)},
			{req: get("/admin\x00"), want: all(rejected), h2Only: true},
		}},
		{"A8_Host", []attack{
			{req: withHost("secret.com"), want: all(denied)},
			{req: withHost("SECRET.com"), want: all(denied)},
			{req: withHost("secret.com:80"), want: all(denied)},
			{req: withHost("secret.com:8081"), want: all(denied)},
			{req: withHost("secret.com."), want: all(denied)},
			{req: withHost("Secret.COM.:80"), want: all(denied)},
		}},
		{"A9_RepeatedHeader", []attack{
			{req: withHeaders([2]string{"x-role", "admin"}), want: all(denied)},
			{req: withHeaders([2]string{"x-role", "user"}, [2]string{"x-role", "admin"}), want: all(denied)},
			{req: withHeaders([2]string{"x-role", "admin"}, [2]string{"x-role", "user"}), want: all(denied)},
			{req: withHeaders([2]string{"x-role", "user,admin"}), want: all(denied)},
			{req: withHeaders([2]string{"x-role", "user, admin"}), want: all(denied)},
			{req: withHeaders([2]string{"X-Role", "admin"}), want: all(denied), h1Only: true},
			{req: withHeaders([2]string{"X-ROLE", "user"}, [2]string{"x-role", "admin"}), want: all(denied), h1Only: true},
			{req: withHeaders([2]string{"X-Role", "admin"}), want: all(rejected), h2Only: true}, // B5: upper case is malformed in HTTP/2
			{req: withHeaders([2]string{"x-role", "ADMIN"}), want: all(denied)},
			{req: withHeaders([2]string{"x-role", "user"}), want: all(allowed)},
		}},
		{"A11_IdentityFailClosed", []attack{{req: get("/a11"), want: all(denied)}}},
		{"Method_Deny", []attack{
			{req: request{method: "DELETE", authority: "secure", path: "/public"}, want: all(denied)},
			{req: request{method: "GET", authority: "secure", path: "/public"}, want: all(allowed)},
		}},
	}
}

// TestSecurity runs every case of SECURITY.md section A (and the header
// variants) over HTTP/1.1 and HTTP/2 against nginx, Apache httpd and the
// Go echo server behind a real sidecar, under each path normalisation
// mode, then the ALLOW-only list under the default mode.
func TestSecurity(t *testing.T) {
	w := newWorld(t)
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			var mc *meshconfig.MeshConfig
			if md.norm != meshconfig.MeshConfig_ProxyPathNormalization_BASE {
				mc = &meshconfig.MeshConfig{PathNormalization: &meshconfig.MeshConfig_ProxyPathNormalization{Normalization: md.norm}}
			}
			m := startMesh(t, w, mc, denyPolicy)
			for _, c := range denyCases() {
				t.Run(c.id, func(t *testing.T) { m.run(t, md.name, c.attacks) })
			}
			if md.norm == meshconfig.MeshConfig_ProxyPathNormalization_BASE {
				t.Run("AllowOnly", func(t *testing.T) { m.allowOnly(t, md.name) })
			}
			// A backend logs after it answers: look for refused requests
			// in the access logs again once the last answer is in.
			m.waitPolicy(t, "/public", 200)
			m.checkLogs(t)
		})
	}
}

// allowOnly applies the ALLOW-only /public list through the control
// plane and checks that everything else is refused.
func (m *mesh) allowOnly(t *testing.T, mode string) {
	m.cp.WriteFile(t, "policy.yaml", allowOnlyPolicy)
	m.waitPolicy(t, "/other", 403)
	m.run(t, mode, []attack{
		{req: get("/public"), want: all(allowed)},
		{req: get("/public?x=1"), want: all(allowed)},
		{req: get("/admin"), want: all(denied)},
		{req: get("/other"), want: all(denied)},
		{req: get("//admin"), want: all(denied)},
		{req: get("/public/../admin"), want: all(denied)},
		{req: get("/public/..//admin"), want: all(denied)},
		{req: get("/public/%2e%2e/admin"), want: all(denied)},
		// Escaped slashes: rejected (400) under BASE, the allowOnly mode.
		{req: get("/public%2f..%2fadmin"), want: map[string]outcome{"DECODE_AND_MERGE_SLASHES": denied, "": rejected}},
		{req: get("/public/..%2fadmin"), want: map[string]outcome{"DECODE_AND_MERGE_SLASHES": denied, "": rejected}},
		{req: get("/public/..%5cadmin"), want: map[string]outcome{"DECODE_AND_MERGE_SLASHES": denied, "": rejected}},
		{req: get("/public/%252e%252e/admin"), want: all(noMarker)},
	})
}

var protocols = []string{"http1", "http2"}

// run sends each attack over both protocols to each backend and checks
// the outcome the mode wants.
func (m *mesh) run(t *testing.T, mode string, attacks []attack) {
	for _, proto := range protocols {
		for _, b := range m.backends {
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				for _, a := range attacks {
					if (a.h1Only && proto != "http1") || (a.h2Only && proto != "http2") {
						continue
					}
					m.check(t, mode, proto, b, a)
				}
			})
		}
	}
}

func (m *mesh) check(t *testing.T, mode, proto string, b *backend, a attack) {
	t.Helper()
	// Each request carries its own id, which the backends log.
	m.seq++
	id := fmt.Sprintf("%d", m.seq)
	req := a.req
	req.headers = append(slices.Clone(req.headers), [2]string{"x-case", id})
	var r result
	if proto == "http1" {
		r = h1(t, b.src, m.inbound, req.h1Raw())
	} else {
		r = h2(t, b.src, m.inbound, req)
	}
	what := a.req.method + " " + a.req.authority + " " + strings.ToValidUTF8(a.req.path, "?") + " " + headerList(a.req.headers)
	want := a.wantIn(mode)
	leaked := strings.Contains(r.body, m.marker)
	switch want {
	case denied:
		if r.status != 403 {
			t.Errorf("%s: %v, want 403", what, r)
		}
	case rejected:
		if r.status != 400 && !(proto == "http2" && r.status == 0) {
			t.Errorf("%s: %v, want 400 (or a reset over HTTP/2)", what, r)
		}
	case allowed:
		if r.status != 200 {
			t.Errorf("%s: %v, want 200", what, r)
		}
	case exposed:
		t.Logf("%s: %v (not claimed in %s; marker returned: %v)", what, r, mode, leaked)
		return
	}
	if leaked {
		t.Errorf("%s: the marker came back: %v", what, r)
	}
	if want == denied || want == rejected {
		// A request the backend served is logged right after its
		// response; by the time the next request is checked it is there.
		if seen := saw(b, id); len(seen) > 0 {
			t.Errorf("%s: %s saw the request: %q", what, b.name, seen)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: what})
	}
	if want == allowed && b.name == "go" {
		// The Go backend echoes what it got: the forwarded request.
		var e echoed
		if err := json.Unmarshal([]byte(r.body), &e); err != nil {
			t.Errorf("%s: echo: %v (%q)", what, err, r.body)
		} else if slices.Contains(e.Header.Values("X-Role"), "admin") {
			t.Errorf("%s: x-role admin reached the backend", what)
		}
	}
}

func headerList(h [][2]string) string {
	var parts []string
	for _, f := range h {
		parts = append(parts, f[0]+": "+f[1])
	}
	return strings.Join(parts, "; ")
}
