package validation

import (
	"strings"
	"testing"
)

// problemCase checks that a helper accepts (want "") or rejects (want a
// fragment of the reason) an input.
type problemCase struct {
	in, want string
}

func checkProblems(t *testing.T, name string, f func(string) string, cases []problemCase) {
	t.Helper()
	for _, c := range cases {
		got := f(c.in)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s(%q) = %q, want %q", name, c.in, got, c.want)
		}
	}
}

func TestHostnames(t *testing.T) {
	checkProblems(t, "wildcardDomainProblem", wildcardDomainProblem, []problemCase{
		{"reviews", ""},
		{"Reviews.default.svc.cluster.local", ""}, // Istio accepts upper case
		{"*", ""},
		{"*.example.com", ""},
		{"*-foo.example.com", ""},
		{"istio.io.", ""},
		{"123", ""}, // a single label is not a top-level domain
		{"", "must not be empty"},
		{strings.Repeat("a.", 128), "too long"},
		{"a..b", `label ""`},
		{"-a.com", `label "-a"`},
		{"a.*.com", `label "*"`},
		{"a.com*", `label "com*"`},
		{"a.123", "all numeric"},
		{strings.Repeat("a", 64) + ".com", "not a valid DNS-1123 label"},
	})
	checkProblems(t, "fqdnProblem", fqdnProblem, []problemCase{
		{"a.example.com", ""},
		{"*.example.com", `label "*"`},
		{"10.0.0.1", "all numeric"},
	})
	checkProblems(t, "partialWildcardProblem", partialWildcardProblem, []problemCase{
		{"*", ""}, {"*.a.com", ""}, {"a.com", ""}, {"*a.com", "partial wildcard"}, {"a*.com", "partial wildcard"},
	})
	checkProblems(t, "gatewayHostProblem(sni)", func(s string) string { return gatewayHostProblem(true, s) }, []problemCase{
		{"outbound_.80_._.a.ns.svc.cluster.local", ""},
		{"outbound_.x_._.a.com", "not a number"},
		{"outbound_.80_", "want the form"},
		{"outbound_.80_._.123", "want the form"},
		{"a.com", ""},
	})
	if gatewayHostProblem(false, "outbound_.80_._.a.com") == "" {
		t.Error("auto-passthrough names are only accepted with SNI matching")
	}
}

func TestHostMatching(t *testing.T) {
	tests := []struct {
		a, b            string
		matches, subset bool
	}{
		{"a.com", "a.com", true, true},
		{"a.com", "b.com", false, false},
		{"a.b.com", "*.b.com", true, true},
		{"*.b.com", "a.b.com", true, false},
		{"*.b.com", "*.com", true, true},
		{"*.com", "*.b.com", true, false},
		{"*", "a.com", true, false},
		{"a.com", "*", true, true},
		{"*.a.com", "*.b.com", false, false},
	}
	for _, tt := range tests {
		if got := hostMatches(tt.a, tt.b); got != tt.matches {
			t.Errorf("hostMatches(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := hostSubsetOf(tt.a, tt.b); got != tt.subset {
			t.Errorf("hostSubsetOf(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestNamespacedHosts(t *testing.T) {
	tests := []struct {
		host    string
		gateway bool
		want    string
	}{
		{"ns/a.com", false, ""},
		{"*/*", false, ""},
		{"~/*", false, ""},
		{"./*.a.com", true, ""},
		{"a.com", true, ""},
		{"10.1.2.3", true, ""}, // gateways accept IP addresses
		{"ns/10.1.2.3", true, ""},
		{"a.com", false, "namespace/dnsName"},
		{"~/a.com", true, `invalid namespace "~"`},
		{"ns/a", false, "short names"},
		{"ns/*a.com", false, "partial wildcard"},
		{"ns/", false, "must not be empty"},
	}
	for _, tt := range tests {
		got := strings.Join(namespacedHostProblems(tt.host, tt.gateway), "; ")
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("namespacedHostProblems(%q, %v) = %q, want %q", tt.host, tt.gateway, got, tt.want)
		}
	}
}

func TestAddresses(t *testing.T) {
	checkProblems(t, "subnetProblem", subnetProblem, []problemCase{
		{"10.0.0.1", ""}, {"10.0.0.0/8", ""}, {"2001:db8::/32", ""}, {"::1", ""},
		{"10.0.0.0/33", "not a valid CIDR"}, {"10.0.0.0/8/8", "not a valid IP"}, {"a.com", "not a valid IP"}, {"", "not a valid IP"},
	})
	checkProblems(t, "unixAddressProblem", unixAddressProblem, []problemCase{
		{"/var/run/a.sock", ""}, {"@abstract", ""}, {"", "must not be empty"}, {"a.sock", "absolute"}, {"/var/run/", "absolute path to a file"},
	})
}

func TestLabels(t *testing.T) {
	checkProblems(t, "labelKeyProblem", labelKeyProblem, []problemCase{
		{"app", ""}, {"app.kubernetes.io/name", ""}, {"a_b.c-d", ""}, {"A", ""},
		{"", "invalid key"}, {"-a", "invalid key"}, {"a/b/c", "invalid key"}, {"a b", "invalid key"},
		{strings.Repeat("a", 64), "longer than 63"}, {strings.Repeat("a.", 127) + "a/b", "prefix is longer than 253"},
	})
}

func TestHeaders(t *testing.T) {
	checkProblems(t, "headerNameProblem", headerNameProblem, []problemCase{
		{"x-user", ""}, {"X_Custom.Header~1", ""}, {"", "must not be empty"}, {"x user", "invalid"}, {"x:y", "invalid"}, {"ü", "invalid"},
	})
	checkProblems(t, "matchHeaderProblem", matchHeaderProblem, []problemCase{
		{":authority", ""}, {"@request.auth.claims.sub", ""}, {"@request.auth.claims[a][b]", ""},
		{":foo", "invalid"}, {"@request.auth.claims.", "invalid"}, {"@request.auth.claims[]", "invalid"},
	})
	checkProblems(t, "headerValueProblem", headerValueProblem, []problemCase{
		{"", ""}, {"plain value", ""}, {"100%%", ""}, {"%HOSTNAME%", ""}, {"a %START_TIME% b", ""},
		{`%REQ(x-foo)%`, ""}, {`%PER_REQUEST_STATE(a.b)%`, ""}, {`%UPSTREAM_METADATA(["ns", "k)%"])%`, ""}, {"%VAR( )% tail", ""},
		{"50%", "unterminated"}, {"%HOSTNAME", "unterminated"}, {"%REQ(x", "unterminated"}, {"%REQ(x)y%", "unterminated"},
		{"a\rb", "control characters"}, {"a\x00", "control characters"}, {"tab\tok", ""},
	})
}

func TestRegex(t *testing.T) {
	checkProblems(t, "regexProblem", regexProblem, []problemCase{
		{"^/api/v[0-9]+/.*$", ""}, {`\d{1,3}`, ""}, {"(?i)abc", ""},
		{"", "must not be empty"}, {"a(", "missing closing )"}, {"a{2,1}", "invalid"}, {`\8`, "invalid"},
		{strings.Repeat("a", maxRegexLength), ""}, {strings.Repeat("a", maxRegexLength+1), "too long"},
		{"a{1001}", "invalid"},
	})
}

func TestLocalities(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"us-east", "us-west/zone1", "us-west/zone2/sub", "eu/*"}, ""},
		{[]string{"*"}, ""},
		{[]string{"*", "a"}, "overlaps"},
		{[]string{"a", "a"}, "overlaps"},
		{[]string{"a", "a/b"}, "overlaps"},
		{[]string{"a/b", "a/b/c"}, "overlaps"},
		{[]string{"a/b/c", "a/b/c"}, "overlaps"},
		{[]string{"a/*/c"}, "once, at the end"},
		{[]string{"a/**"}, "once, at the end"},
		{[]string{"a//c"}, "empty region"},
		{[]string{""}, "empty region"},
	}
	for _, tt := range tests {
		got := localitiesProblem(tt.in)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("localitiesProblem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMisc(t *testing.T) {
	for n, want := range map[uint64]bool{1: true, 2: true, 3: true, 4: false, 9: false, 65537: true, 65536: false, 5000011: true} {
		if isPrime(n) != want {
			t.Errorf("isPrime(%d) = %v", n, !want)
		}
	}
	for _, s := range []string{"", "ALL", "AES128-SHA", "-AES256-SHA", "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"} {
		if !validCipherSuite(s) {
			t.Errorf("validCipherSuite(%q) = false", s)
		}
	}
	if validCipherSuite("RC4-MD5") {
		t.Error("RC4-MD5 accepted")
	}
	for in, want := range map[string]protocol{"http": protoHTTP, "GRPC-WEB": protoGRPCWeb, "Mongo": protoMongo, "h3": protoUnknown} {
		if got := parseProtocol(in); got != want {
			t.Errorf("parseProtocol(%q) = %q", in, got)
		}
	}
	if !protoHTTPS.isTLS() || protoHTTPS.isHTTP() || !protoGRPC.isHTTP() || !protoMySQL.isTCP() || protoUDP.isTCP() {
		t.Error("protocol classes")
	}
	if p := fieldPath("spec").child("a").index(2).key("x.y").key("").key("a]b"); p != `spec.a[2][x.y][""]["a]b"]` {
		t.Errorf("path %q", p)
	}
}
