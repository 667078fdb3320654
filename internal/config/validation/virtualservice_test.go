package validation_test

import (
	"strings"
	"testing"
)

// vsHTTP wraps one HTTP route (flow YAML) in a VirtualService for host a.
func vsHTTP(route string) string {
	return "{hosts: [a], http: [" + route + "]}"
}

const dest = "route: [{destination: {host: a}}]"

func TestVirtualService(t *testing.T) {
	runCases(t, "VirtualService", []testCase{
		// Valid objects.
		{name: "simple", spec: vsHTTP("{" + dest + "}")},
		{name: "gateway wildcard host", spec: "{hosts: ['*'], gateways: [bookinfo-gateway], http: [{route: [{destination: {host: productpage, port: {number: 9080}}}]}]}"},
		{name: "IP host", spec: "{hosts: [10.0.0.1], http: [{" + dest + "}]}"},
		{name: "FQDN and wildcard hosts", spec: "{hosts: [reviews.ns.svc.cluster.local, '*.example.com'], http: [{" + dest + "}]}"},
		{name: "delegate target", spec: "{http: [{" + dest + "}]}"},
		{name: "root route", spec: vsHTTP("{delegate: {name: reviews, namespace: ns2}}")},
		{name: "relative weights", spec: vsHTTP("{route: [{destination: {host: a, subset: v1}, weight: 1}, {destination: {host: a, subset: v2}, weight: 2}]}")},
		{name: "one zero weight", spec: vsHTTP("{route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 5}]}")},
		{name: "redirect", spec: vsHTTP("{redirect: {uri: /b, redirectCode: 301, scheme: https, port: 8443}}")},
		{name: "redirect derivePort", spec: vsHTTP("{redirect: {derivePort: FROM_REQUEST_PORT}}")},
		{name: "direct response", spec: vsHTTP("{directResponse: {status: 503, body: {string: unavailable}}}")},
		{name: "matches", spec: vsHTTP(`{match: [{uri: {prefix: ""}, headers: {x-user: {exact: jason}, x-b: {prefix: a}, x-c: {regex: "^a.*$"}, ":authority": {exact: a}},
			queryParams: {q: {exact: "1"}}, withoutHeaders: {x-debug: {regex: "*"}}, method: {exact: GET}, scheme: {exact: https},
			authority: {prefix: a}, port: 8080, sourceLabels: {app: b}, gateways: [mesh], sourceNamespace: ns2}], ` + dest + "}")},
		{name: "retries", spec: vsHTTP("{retries: {attempts: 3, perTryTimeout: 2s, retryOn: '5xx,reset,503,unavailable,retriable-4xx', backoff: 25ms}, " + dest + "}")},
		{name: "retries disabled", spec: vsHTTP("{retries: {attempts: 0}, " + dest + "}")},
		{name: "timeout", spec: vsHTTP("{timeout: 1.5s, " + dest + "}")},
		{name: "fault", spec: vsHTTP("{fault: {delay: {fixedDelay: 5s, percentage: {value: 0.5}}, abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}, " + dest + "}")},
		{name: "cors", spec: vsHTTP("{corsPolicy: {allowOrigins: [{exact: 'https://a.com'}, {regex: '.*\\.b\\.com'}], allowMethods: [GET, POST, '*'], allowHeaders: [x-a, '*'], exposeHeaders: [x-b], maxAge: 24h, allowCredentials: true}, " + dest + "}")},
		{name: "header operations", spec: vsHTTP(`{headers: {request: {set: {host: b.com, x-a: "100%%"}, add: {x-b: "%HOSTNAME%", x-c: '%REQ(x-d)%'}, remove: [x-e]}, response: {set: {x-f: g}, remove: [x-h]}}, ` + dest + "}")},
		{name: "rewrite", spec: vsHTTP("{rewrite: {uri: /v2, authority: b}, " + dest + "}")},
		{name: "regex rewrite", spec: vsHTTP("{rewrite: {uriRegexRewrite: {match: '^/a(/.*)', rewrite: '/b\\1'}}, " + dest + "}")},
		{name: "mirrors", spec: vsHTTP("{mirrors: [{destination: {host: b}, percentage: {value: 10}}], " + dest + "}")},
		{name: "jwt claim route on gateway", spec: "{hosts: [a.com], gateways: [gw], http: [{match: [{headers: {'@request.auth.claims.group': {exact: admin}}}], " + dest + "}]}"},
		{name: "tls route", spec: "{hosts: ['*.example.com'], gateways: [ns/gw], tls: [{match: [{sniHosts: [a.example.com], port: 443, destinationSubnets: [10.0.0.0/8]}], route: [{destination: {host: a.example.com}}]}]}"},
		{name: "auto passthrough sni", spec: "{hosts: ['outbound_.80_._.a.ns.svc.cluster.local'], gateways: [gw], tls: [{match: [{sniHosts: ['outbound_.80_._.a.ns.svc.cluster.local']}], route: [{destination: {host: a.ns.svc.cluster.local}}]}]}"},
		{name: "tcp route", spec: "{hosts: [db], tcp: [{match: [{port: 3306, destinationSubnets: [10.1.0.0/16], sourceLabels: {app: x}}], route: [{destination: {host: db, port: {number: 3306}}, weight: 100}]}]}"},
		{name: "exportTo", spec: "{hosts: [a], exportTo: ['.', other], http: [{" + dest + "}]}"},

		// Hosts and gateways.
		{name: "invalid host", spec: "{hosts: [a_b], http: [{" + dest + "}]}", field: "spec.hosts[0]", reason: `label "a_b" is not a valid DNS-1123 label`},
		{name: "numeric TLD", spec: "{hosts: [a.123], http: [{" + dest + "}]}", field: "spec.hosts[0]", reason: "cannot be all numeric"},
		{name: "mesh wildcard host", spec: "{hosts: ['*'], http: [{" + dest + "}]}", field: "spec.hosts[0]", reason: "not allowed for virtual services bound to the mesh"},
		{name: "mesh listed wildcard host", spec: "{hosts: ['*'], gateways: [gw, mesh], http: [{" + dest + "}]}", field: "spec.hosts[0]", reason: "bound to the mesh"},
		{name: "duplicate hosts", spec: "{hosts: ['*.a.com', b.a.com], http: [{" + dest + "}]}", field: "spec.hosts[1]", reason: `duplicate host: "b.a.com" overlaps "*.a.com"`},
		{name: "no routes", spec: "{hosts: [a]}", field: "spec", reason: "at least one http, tcp or tls route"},
		{name: "delegate with gateways", spec: "{gateways: [gw], http: [{" + dest + "}]}", field: "spec.gateways", reason: "delegate virtual service"},
		{name: "delegate with tcp", spec: "{tcp: [{route: [{destination: {host: a}}]}]}", field: "spec.tcp", reason: "delegate virtual service"},
		{name: "gateway namespace", spec: "{hosts: [a], gateways: [a_b/gw], http: [{" + dest + "}]}", field: "spec.gateways[0]", reason: `namespace "a_b"`},
		{name: "gateway name", spec: "{hosts: [a], gateways: [ns/g.w], http: [{" + dest + "}]}", field: "spec.gateways[0]", reason: `name "g.w"`},
		{name: "gateway empty part", spec: "{hosts: [a], gateways: [/gw], http: [{" + dest + "}]}", field: "spec.gateways[0]", reason: "must not be empty"},
		{name: "legacy gateway name", spec: "{hosts: [a], gateways: [gw.ns], http: [{" + dest + "}]}", field: "spec.gateways[0]", reason: `prefer namespace/name: "ns/gw"`, warn: true},
		{name: "jwt claim route on mesh", spec: vsHTTP("{match: [{headers: {'@request.auth.claims.sub': {exact: a}}}], " + dest + "}"), field: "spec.http[0].match[0].headers[@request.auth.claims.sub]", reason: "only supported for virtual services bound to gateways"},

		// Route actions.
		{name: "route and redirect", spec: vsHTTP("{redirect: {uri: /b}, " + dest + "}"), field: "spec.http[0].route", reason: "route and redirect cannot both be set"},
		{name: "fault and redirect", spec: vsHTTP("{redirect: {uri: /b}, fault: {abort: {httpStatus: 500}}}"), field: "spec.http[0].fault", reason: "fault and redirect"},
		{name: "rewrite and direct response", spec: vsHTTP("{directResponse: {status: 200}, rewrite: {uri: /}}"), field: "spec.http[0].rewrite", reason: "rewrite and directResponse"},
		{name: "redirect and direct response", spec: vsHTTP("{directResponse: {status: 200}, redirect: {uri: /}}"), field: "spec.http[0].directResponse", reason: "directResponse and redirect"},
		{name: "no action", spec: vsHTTP("{match: [{uri: {prefix: /}}]}"), field: "spec.http[0]", reason: "one of route, redirect or directResponse is required"},
		{name: "root route with route", spec: vsHTTP("{delegate: {name: b}, " + dest + "}"), field: "spec.http[0].route", reason: "delegate must not have route"},
		{name: "root route with redirect", spec: vsHTTP("{delegate: {name: b}, redirect: {uri: /}}"), field: "spec.http[0].redirect", reason: "delegate must not have redirect"},
		{name: "delegate name", spec: vsHTTP("{delegate: {name: B_c}}"), field: "spec.http[0].delegate.name", reason: "invalid virtual service name"},
		{name: "delegate without name", spec: vsHTTP("{delegate: {namespace: b}}"), field: "spec.http[0].delegate.name", reason: "required"},
		{name: "nested delegate", spec: "{http: [{delegate: {name: b}}]}", field: "spec.http[0].delegate", reason: "cannot delegate again"},
		{name: "mirror and mirrors", spec: vsHTTP("{mirror: {host: b}, mirrors: [{destination: {host: c}}], " + dest + "}"), field: "spec.http[0].mirrors", reason: "cannot both be set"},

		// Destinations and weights.
		{name: "destination required", spec: vsHTTP("{route: [{weight: 100}]}"), field: "spec.http[0].route[0].destination", reason: "required"},
		{name: "destination wildcard", spec: vsHTTP("{route: [{destination: {host: '*'}}]}"), field: "spec.http[0].route[0].destination.host", reason: `invalid destination host "*"`},
		{name: "destination empty host", spec: vsHTTP("{route: [{destination: {host: ''}}]}"), field: "spec.http[0].route[0].destination.host", reason: "must not be empty"},
		{name: "destination subset", spec: vsHTTP("{route: [{destination: {host: a, subset: v_1}}]}"), field: "spec.http[0].route[0].destination.subset", reason: "invalid subset name"},
		{name: "destination port zero", spec: vsHTTP("{route: [{destination: {host: a, port: {number: 0}}}]}"), field: "spec.http[0].route[0].destination.port.number", reason: "1..65535"},
		{name: "destination port too big", spec: vsHTTP("{route: [{destination: {host: a, port: {number: 70000}}}]}"), field: "spec.http[0].route[0].destination.port.number", reason: "1..65535"},
		{name: "negative weight", spec: vsHTTP("{route: [{destination: {host: a}, weight: -1}]}"), field: "spec.http[0].route[0].weight", reason: "must not be negative"},
		{name: "zero total weight", spec: vsHTTP("{route: [{destination: {host: a}}, {destination: {host: b}}]}"), field: "spec.http[0].route", reason: "add up to 0"},
		{name: "destination header operation", spec: vsHTTP("{route: [{destination: {host: a}, headers: {request: {set: {':path': /x}}}}]}"), field: "spec.http[0].route[0].headers.request.set[:path]", reason: "pseudo headers cannot be modified"},

		// Matches.
		{name: "empty header prefix", spec: vsHTTP("{match: [{headers: {x-a: {prefix: ''}}}], " + dest + "}"), field: "spec.http[0].match[0].headers[x-a].prefix", reason: "must not be empty"},
		{name: "header name", spec: vsHTTP("{match: [{headers: {'x a': {exact: b}}}], " + dest + "}"), field: "spec.http[0].match[0].headers[x a]", reason: `invalid header name "x a"`},
		{name: "without header name", spec: vsHTTP("{match: [{withoutHeaders: {'x(a)': {exact: b}}}], " + dest + "}"), field: "spec.http[0].match[0].withoutHeaders[x(a)]", reason: "invalid header name"},
		{name: "bad uri regex", spec: vsHTTP("{match: [{uri: {regex: 'a('}}], " + dest + "}"), field: "spec.http[0].match[0].uri.regex", reason: "invalid RE2 regex: missing closing )"},
		{name: "perl regex", spec: vsHTTP("{match: [{uri: {regex: '(?=a)'}}], " + dest + "}"), field: "spec.http[0].match[0].uri.regex", reason: "invalid RE2 regex"},
		{name: "regex too long", spec: vsHTTP("{match: [{uri: {regex: '" + strings.Repeat("a", 1025) + "'}}], " + dest + "}"), field: "spec.http[0].match[0].uri.regex", reason: "too long (1025 bytes, limit 1024)"},
		{name: "empty method regex", spec: vsHTTP("{match: [{method: {regex: ''}}], " + dest + "}"), field: "spec.http[0].match[0].method.regex", reason: "must not be empty"},
		{name: "empty scheme prefix", spec: vsHTTP("{match: [{scheme: {prefix: ''}}], " + dest + "}"), field: "spec.http[0].match[0].scheme.prefix", reason: "must not be empty"},
		{name: "empty authority prefix", spec: vsHTTP("{match: [{authority: {prefix: ''}}], " + dest + "}"), field: "spec.http[0].match[0].authority.prefix", reason: "must not be empty"},
		{name: "query param regex", spec: vsHTTP("{match: [{queryParams: {q: {regex: '['}}}], " + dest + "}"), field: "spec.http[0].match[0].queryParams[q].regex", reason: "invalid RE2"},
		{name: "match port", spec: vsHTTP("{match: [{port: 70000}], " + dest + "}"), field: "spec.http[0].match[0].port", reason: "1..65535"},
		{name: "source labels", spec: vsHTTP("{match: [{sourceLabels: {'a b': c}}], " + dest + "}"), field: "spec.http[0].match[0].sourceLabels[a b]", reason: "invalid key"},
		{name: "match gateways", spec: vsHTTP("{match: [{gateways: [a/b/c]}], " + dest + "}"), field: "spec.http[0].match[0].gateways[0]", reason: "not a valid DNS-1123 label"},
		{name: "source namespace", spec: vsHTTP("{match: [{sourceNamespace: a_b}], " + dest + "}"), field: "spec.http[0].match[0].sourceNamespace", reason: "invalid namespace"},

		// Retries, timeouts, faults, mirrors.
		{name: "negative attempts", spec: vsHTTP("{retries: {attempts: -1}, " + dest + "}"), field: "spec.http[0].retries.attempts", reason: "must not be negative"},
		{name: "disabled retries with settings", spec: vsHTTP("{retries: {attempts: 0, perTryTimeout: 1s}, " + dest + "}"), field: "spec.http[0].retries.attempts", reason: "retries are disabled"},
		{name: "retryOn unknown", spec: vsHTTP("{retries: {attempts: 2, retryOn: '5xx,bogus'}, " + dest + "}"), field: "spec.http[0].retries.retryOn", reason: `"bogus" is not a valid retry condition`},
		{name: "retryOn spaces", spec: vsHTTP("{retries: {attempts: 2, retryOn: '5xx, reset'}, " + dest + "}"), field: "spec.http[0].retries.retryOn", reason: `" reset"`},
		{name: "retryOn unknown status", spec: vsHTTP("{retries: {attempts: 2, retryOn: '599'}, " + dest + "}"), field: "spec.http[0].retries.retryOn", reason: `"599"`},
		{name: "perTryTimeout sub-millisecond", spec: vsHTTP("{retries: {attempts: 2, perTryTimeout: 0.5ms}, " + dest + "}"), field: "spec.http[0].retries.perTryTimeout", reason: "at least 1ms"},
		{name: "zero timeout", spec: vsHTTP("{timeout: 0s, " + dest + "}"), field: "spec.http[0].timeout", reason: "at least 1ms"},
		{name: "timeout precision", spec: vsHTTP("{timeout: 1500us, " + dest + "}"), field: "spec.http[0].timeout", reason: "whole number of milliseconds"},
		{name: "empty fault", spec: vsHTTP("{fault: {}, " + dest + "}"), field: "spec.http[0].fault", reason: "at least one of abort or delay"},
		{name: "abort percentage", spec: vsHTTP("{fault: {abort: {httpStatus: 500, percentage: {value: 101}}}, " + dest + "}"), field: "spec.http[0].fault.abort.percentage", reason: "between 0.0001 and 100"},
		{name: "tiny percentage", spec: vsHTTP("{fault: {abort: {httpStatus: 500, percentage: {value: 0.00001}}}, " + dest + "}"), field: "spec.http[0].fault.abort.percentage", reason: "between 0.0001 and 100"},
		{name: "abort status", spec: vsHTTP("{fault: {abort: {httpStatus: 600}}, " + dest + "}"), field: "spec.http[0].fault.abort.httpStatus", reason: "between 200 and 599"},
		{name: "abort grpc status", spec: vsHTTP("{fault: {abort: {grpcStatus: '14'}}, " + dest + "}"), field: "spec.http[0].fault.abort.grpcStatus", reason: `unknown gRPC status "14"`},
		{name: "abort http2 error", spec: vsHTTP("{fault: {abort: {http2Error: REFUSED_STREAM}}, " + dest + "}"), field: "spec.http[0].fault.abort.http2Error", reason: "not supported"},
		{name: "abort without error", spec: vsHTTP("{fault: {abort: {percentage: {value: 5}}}, " + dest + "}"), field: "spec.http[0].fault.abort", reason: "no effect", warn: true},
		{name: "delay without fixedDelay", spec: vsHTTP("{fault: {delay: {percentage: {value: 5}}}, " + dest + "}"), field: "spec.http[0].fault.delay.fixedDelay", reason: "required"},
		{name: "zero delay", spec: vsHTTP("{fault: {delay: {fixedDelay: 0s}}, " + dest + "}"), field: "spec.http[0].fault.delay.fixedDelay", reason: "at least 1ms"},
		{name: "exponential delay", spec: vsHTTP("{fault: {delay: {exponentialDelay: 1s}}, " + dest + "}"), field: "spec.http[0].fault.delay.exponentialDelay", reason: "not supported"},
		{name: "deprecated delay percent", spec: vsHTTP("{fault: {delay: {fixedDelay: 1s, percent: 10}}, " + dest + "}"), field: "spec.http[0].fault.delay.percent", reason: "deprecated", warn: true},
		{name: "mirror percentage", spec: vsHTTP("{mirror: {host: b}, mirrorPercentage: {value: 150}, " + dest + "}"), field: "spec.http[0].mirrorPercentage", reason: "between 0 and 100"},
		{name: "deprecated mirror percent", spec: vsHTTP("{mirror: {host: b}, mirrorPercent: 50, " + dest + "}"), field: "spec.http[0].mirrorPercent", reason: "deprecated", warn: true},
		{name: "mirror host", spec: vsHTTP("{mirror: {host: '*'}, " + dest + "}"), field: "spec.http[0].mirror.host", reason: "invalid destination host"},
		{name: "mirrors destination", spec: vsHTTP("{mirrors: [{percentage: {value: 5}}], " + dest + "}"), field: "spec.http[0].mirrors[0].destination", reason: "required"},
		{name: "mirrors percentage", spec: vsHTTP("{mirrors: [{destination: {host: b}, percentage: {value: -1}}], " + dest + "}"), field: "spec.http[0].mirrors[0].percentage", reason: "between 0 and 100"},

		// CORS.
		{name: "cors empty origin", spec: vsHTTP("{corsPolicy: {allowOrigins: [{exact: ''}]}, " + dest + "}"), field: "spec.http[0].corsPolicy.allowOrigins[0].exact", reason: "must not be empty"},
		{name: "cors origin without match", spec: vsHTTP("{corsPolicy: {allowOrigins: [{}]}, " + dest + "}"), field: "spec.http[0].corsPolicy.allowOrigins[0]", reason: "one of exact, prefix or regex"},
		{name: "cors origin regex", spec: vsHTTP("{corsPolicy: {allowOrigins: [{regex: '*'}]}, " + dest + "}"), field: "spec.http[0].corsPolicy.allowOrigins[0].regex", reason: "invalid RE2"},
		{name: "cors method", spec: vsHTTP("{corsPolicy: {allowMethods: [FETCH]}, " + dest + "}"), field: "spec.http[0].corsPolicy.allowMethods[0]", reason: `unsupported HTTP method "FETCH"`},
		{name: "cors header", spec: vsHTTP("{corsPolicy: {exposeHeaders: ['x y']}, " + dest + "}"), field: "spec.http[0].corsPolicy.exposeHeaders[0]", reason: "invalid header name"},
		{name: "cors max age", spec: vsHTTP("{corsPolicy: {maxAge: 1500ms}, " + dest + "}"), field: "spec.http[0].corsPolicy.maxAge", reason: "whole number of seconds"},
		{name: "cors deprecated allowOrigin", spec: vsHTTP("{corsPolicy: {allowOrigin: ['*']}, " + dest + "}"), field: "spec.http[0].corsPolicy.allowOrigin", reason: "deprecated", warn: true},

		// Header operations, rewrites, redirects, direct responses.
		{name: "set pseudo header", spec: vsHTTP("{headers: {request: {set: {':path': /x}}}, " + dest + "}"), field: "spec.http[0].headers.request.set[:path]", reason: "pseudo headers"},
		{name: "remove host", spec: vsHTTP("{headers: {request: {remove: [Host]}}, " + dest + "}"), field: "spec.http[0].headers.request.remove[0]", reason: "Host header"},
		{name: "response host", spec: vsHTTP("{headers: {response: {set: {host: a}}}, " + dest + "}"), field: "spec.http[0].headers.response.set[host]", reason: "Host header"},
		{name: "empty header name", spec: vsHTTP("{headers: {response: {add: {'': a}}}, " + dest + "}"), field: `spec.http[0].headers.response.add[""]`, reason: "must not be empty"},
		{name: "header value percent", spec: vsHTTP("{headers: {request: {add: {x-a: '100%'}}}, " + dest + "}"), field: "spec.http[0].headers.request.add[x-a]", reason: "unterminated"},
		{name: "header value variable", spec: vsHTTP("{headers: {request: {add: {x-a: '%REQ(x-b'}}}, " + dest + "}"), field: "spec.http[0].headers.request.add[x-a]", reason: "unterminated"},
		{name: "header value control", spec: vsHTTP("{headers: {request: {add: {x-a: \"a\\nb\"}}}, " + dest + "}"), field: "spec.http[0].headers.request.add[x-a]", reason: "control characters"},
		{name: "authority twice", spec: vsHTTP("{rewrite: {authority: a}, headers: {request: {set: {host: b}}}, " + dest + "}"), field: "spec.http[0].headers.request.set[host]", reason: "more than once"},
		{name: "rewrite uri twice", spec: vsHTTP("{rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}, " + dest + "}"), field: "spec.http[0].rewrite.uriRegexRewrite", reason: "cannot both be set"},
		{name: "empty rewrite", spec: vsHTTP("{rewrite: {}, " + dest + "}"), field: "spec.http[0].rewrite", reason: "at least one of uri, uriRegexRewrite or authority"},
		{name: "regex rewrite without rewrite", spec: vsHTTP("{rewrite: {uriRegexRewrite: {match: '^/a'}}, " + dest + "}"), field: "spec.http[0].rewrite.uriRegexRewrite.rewrite", reason: "required"},
		{name: "regex rewrite match", spec: vsHTTP("{rewrite: {uriRegexRewrite: {match: '(', rewrite: /}}, " + dest + "}"), field: "spec.http[0].rewrite.uriRegexRewrite.match", reason: "invalid RE2"},
		{name: "empty redirect", spec: vsHTTP("{redirect: {redirectCode: 301}}"), field: "spec.http[0].redirect", reason: "at least one of uri"},
		{name: "redirect code", spec: vsHTTP("{redirect: {uri: /a, redirectCode: 200}}"), field: "spec.http[0].redirect.redirectCode", reason: "want 3xx"},
		{name: "redirect scheme", spec: vsHTTP("{redirect: {scheme: ftp}}"), field: "spec.http[0].redirect.scheme", reason: `invalid scheme "ftp"`},
		{name: "redirect port", spec: vsHTTP("{redirect: {port: 70000}}"), field: "spec.http[0].redirect.port", reason: "1..65535"},
		{name: "redirect uri and prefix", spec: vsHTTP("{redirect: {uri: /a, prefixRewrite: /b}}"), field: "spec.http[0].redirect.prefixRewrite", reason: "cannot both be set"},
		{name: "direct response status", spec: vsHTTP("{directResponse: {status: 99}}"), field: "spec.http[0].directResponse.status", reason: "between 200 and 599"},
		{name: "direct response large body", spec: vsHTTP("{directResponse: {status: 200, body: {string: " + strings.Repeat("a", 101<<10) + "}}}"), field: "spec.http[0].directResponse.body", reason: "large bodies", warn: true},
		{name: "direct response huge body", spec: vsHTTP("{directResponse: {status: 200, body: {string: " + strings.Repeat("a", 1<<20+1) + "}}}"), field: "spec.http[0].directResponse.body", reason: "too large"},

		// TLS and TCP routes.
		{name: "tls without match", spec: "{hosts: [a.com], tls: [{route: [{destination: {host: a.com}}]}]}", field: "spec.tls[0].match", reason: "at least one match"},
		{name: "tls without sni", spec: "{hosts: [a.com], tls: [{match: [{port: 443}], route: [{destination: {host: a.com}}]}]}", field: "spec.tls[0].match[0].sniHosts", reason: "at least one SNI host"},
		{name: "sni outside hosts", spec: "{hosts: [a.com], tls: [{match: [{sniHosts: [b.com]}], route: [{destination: {host: a.com}}]}]}", field: "spec.tls[0].match[0].sniHosts[0]", reason: "not covered by any of the virtual service hosts"},
		{name: "sni wider than host", spec: "{hosts: [a.b.com], tls: [{match: [{sniHosts: ['*.b.com']}], route: [{destination: {host: a.b.com}}]}]}", field: "spec.tls[0].match[0].sniHosts[0]", reason: "not covered"},
		{name: "sni IP", spec: "{hosts: ['*'], gateways: [gw], tls: [{match: [{sniHosts: [10.0.0.1]}], route: [{destination: {host: a.com}}]}]}", field: "spec.tls[0].match[0].sniHosts[0]", reason: "IP address", warn: true},
		{name: "tls without route", spec: "{hosts: [a.com], tls: [{match: [{sniHosts: [a.com]}]}]}", field: "spec.tls[0].route", reason: "at least one destination"},
		{name: "tls subnet", spec: "{hosts: [a.com], tls: [{match: [{sniHosts: [a.com], destinationSubnets: [10.0.0.0/33]}], route: [{destination: {host: a.com}}]}]}", field: "spec.tls[0].match[0].destinationSubnets[0]", reason: "not a valid CIDR block"},
		{name: "tls weights", spec: "{hosts: [a.com], tls: [{match: [{sniHosts: [a.com]}], route: [{destination: {host: a.com}, weight: -5}]}]}", field: "spec.tls[0].route[0].weight", reason: "must not be negative"},
		{name: "tcp without route", spec: "{hosts: [db], tcp: [{match: [{port: 3306}]}]}", field: "spec.tcp[0].route", reason: "at least one destination"},
		{name: "tcp port", spec: "{hosts: [db], tcp: [{match: [{port: 70000}], route: [{destination: {host: db}}]}]}", field: "spec.tcp[0].match[0].port", reason: "1..65535"},
		{name: "tcp source subnet", spec: "{hosts: [db], tcp: [{match: [{sourceSubnet: a}], route: [{destination: {host: db}}]}]}", field: "spec.tcp[0].match[0].sourceSubnet", reason: "not a valid IP"},
		{name: "tcp zero weights", spec: "{hosts: [db], tcp: [{route: [{destination: {host: db}}, {destination: {host: db2}}]}]}", field: "spec.tcp[0].route", reason: "add up to 0"},

		// exportTo and unreachable rules.
		{name: "exportTo duplicate", spec: "{hosts: [a], exportTo: [b, b], http: [{" + dest + "}]}", field: "spec.exportTo[1]", reason: `duplicate entry "b"`},
		{name: "exportTo current namespace twice", spec: "{hosts: [a], exportTo: [ns, '.'], http: [{" + dest + "}]}", field: "spec.exportTo[1]", reason: "both name the current namespace"},
		{name: "exportTo none", spec: "{hosts: [a], exportTo: ['~'], http: [{" + dest + "}]}", field: "spec.exportTo[0]", reason: "only allowed on ServiceEntry"},
		{name: "exportTo public and more", spec: "{hosts: [a], exportTo: ['*', b], http: [{" + dest + "}]}", field: "spec.exportTo", reason: "cannot be combined"},
		{name: "exportTo invalid", spec: "{hosts: [a], exportTo: [a_b], http: [{" + dest + "}]}", field: "spec.exportTo[0]", reason: "invalid entry"},
		{name: "duplicate match", spec: "{hosts: [a], http: [{name: one, match: [{uri: {exact: /a}}], " + dest + "}, {match: [{uri: {exact: /a}, name: two}], " + dest + "}]}", field: "spec.http[1].match[0]", reason: "http[0] has the same match", warn: true},
		{name: "route after catch-all", spec: "{hosts: [a], http: [{" + dest + "}, {match: [{uri: {exact: /a}}], " + dest + "}]}", field: "spec.http[1]", reason: "route is never used", warn: true},
	})
}
