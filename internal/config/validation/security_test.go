package validation_test

import (
	"strings"
	"testing"
)

const selector = "selector: {matchLabels: {app: a}}"

func TestPeerAuthentication(t *testing.T) {
	runCases(t, "PeerAuthentication", []testCase{
		{name: "namespace strict", spec: "{mtls: {mode: STRICT}}"},
		{name: "empty", spec: "{}"},
		{name: "port level", spec: "{" + selector + ", mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}, 9090: {mode: PERMISSIVE}}}"},

		{name: "port level without selector", spec: "{portLevelMtls: {8080: {mode: DISABLE}}}", field: "spec.portLevelMtls", reason: "requires a selector"},
		{name: "port level with empty selector", spec: "{selector: {}, portLevelMtls: {8080: {mode: DISABLE}}}", field: "spec.portLevelMtls", reason: "requires a selector"},
		{name: "port zero", spec: "{" + selector + ", portLevelMtls: {0: {mode: DISABLE}}}", field: "spec.portLevelMtls[0]", reason: "1..65535"},
		{name: "port too big", spec: "{" + selector + ", portLevelMtls: {70000: {mode: DISABLE}}}", field: "spec.portLevelMtls[70000]", reason: "1..65535"},
		{name: "selector wildcard", spec: "{selector: {matchLabels: {app: '*'}}}", field: "spec.selector.matchLabels[app]", reason: "wildcard"},
		{name: "selector empty", spec: "{selector: {}}", field: "spec.selector", reason: "selects every workload", warn: true},
	})
}

func TestAuthorizationPolicy(t *testing.T) {
	runCases(t, "AuthorizationPolicy", []testCase{
		// Valid objects.
		{name: "deny all", spec: "{}"},
		{name: "allow", spec: `{` + selector + `, action: ALLOW, rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep], requestPrincipals: ['*']}},
			{source: {namespaces: [test], ipBlocks: [10.0.0.0/8, 1.2.3.4], notRemoteIpBlocks: ['::1']}}],
			to: [{operation: {methods: [GET], paths: ['/info*', '/api/{*}/items/{**}'], hosts: [a.com], ports: ['8080']}}],
			when: [{key: 'request.auth.claims[iss]', values: ['https://accounts.google.com']}, {key: source.ip, notValues: [10.1.0.0/16]},
			  {key: 'request.headers[x-token]', values: [a]}, {key: destination.port, values: ['443']}, {key: source.serviceAccount, values: [ns/sa]},
			  {key: connection.sni, values: [a.com]}, {key: 'experimental.envoy.filters.network.mysql_proxy[db.table]', values: ['[update]']}]}]}`},
		{name: "deny with ports", spec: "{action: DENY, rules: [{from: [{source: {notNamespaces: [a]}}], to: [{operation: {notPorts: ['22']}}]}]}"},
		{name: "custom", spec: "{action: CUSTOM, provider: {name: ext-authz}, rules: [{to: [{operation: {paths: [/admin]}}]}]}"},
		{name: "audit", spec: "{action: AUDIT, rules: [{}]}"},
		{name: "service accounts", spec: "{rules: [{from: [{source: {serviceAccounts: [sa, ns/sa2]}}]}]}"},
		{name: "target ref", spec: "{targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}, rules: [{}]}"},
		{name: "target refs", spec: "{targetRefs: [{kind: Service, name: a}, {kind: ServiceEntry, group: networking.istio.io, name: b}], rules: [{}]}"},

		// Attachment.
		{name: "selector and target ref", spec: "{" + selector + ", targetRef: {kind: Service, name: a}}", field: "spec", reason: "only one of selector, targetRef and targetRefs"},
		{name: "target ref kind", spec: "{targetRef: {kind: Deployment, group: apps, name: a}}", field: "spec.targetRef.kind", reason: `cannot attach to "Deployment"`},
		{name: "target ref namespace", spec: "{targetRef: {kind: Service, name: a, namespace: other}}", field: "spec.targetRef.namespace", reason: "cross-namespace"},
		{name: "target ref name", spec: "{targetRefs: [{kind: Service}]}", field: "spec.targetRefs[0].name", reason: "required"},
		{name: "too many target refs", spec: "{targetRefs: [" + strings.Repeat("{kind: Service, name: a}, ", 16) + "{kind: Service, name: a}]}", field: "spec.targetRefs", reason: "too many"},

		// Actions.
		{name: "custom without rules", spec: "{action: CUSTOM, provider: {name: a}}", field: "spec.rules", reason: "never applies"},
		{name: "custom without provider", spec: "{action: CUSTOM, rules: [{}]}", field: "spec.provider.name", reason: "required for action CUSTOM"},
		{name: "provider with allow", spec: "{action: ALLOW, provider: {name: a}, rules: [{}]}", field: "spec.provider", reason: "only allowed with action CUSTOM"},
		{name: "deny without rules", spec: "{action: DENY}", field: "spec.rules", reason: "never applies"},
		{name: "custom with principals", spec: "{action: CUSTOM, provider: {name: a}, rules: [{from: [{source: {principals: [a]}}]}]}", field: "spec.rules[0].from[0].source.principals", reason: "not supported with action CUSTOM"},
		{name: "custom with JWT condition", spec: "{action: CUSTOM, provider: {name: a}, rules: [{when: [{key: 'request.auth.claims[iss]', values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "not supported with action CUSTOM"},
		{name: "deny on HTTP attributes", spec: "{action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}", field: "spec.rules[0]", reason: "denies all TCP traffic", warn: true},

		// Sources.
		{name: "from without source", spec: "{rules: [{from: [{}]}]}", field: "spec.rules[0].from[0].source", reason: "required"},
		{name: "empty source", spec: "{rules: [{from: [{source: {}}]}]}", field: "spec.rules[0].from[0].source", reason: "at least one field"},
		{name: "empty principal", spec: "{rules: [{from: [{source: {principals: [a, '']}}]}]}", field: "spec.rules[0].from[0].source.principals[1]", reason: "must not be empty"},
		{name: "service accounts and namespaces", spec: "{rules: [{from: [{source: {serviceAccounts: [a], namespaces: [b]}}]}]}", field: "spec.rules[0].from[0].source.serviceAccounts", reason: "cannot be combined"},
		{name: "service account wildcard", spec: "{rules: [{from: [{source: {serviceAccounts: ['ns/*']}}]}]}", field: "spec.rules[0].from[0].source.serviceAccounts[0]", reason: "wildcards"},
		{name: "service account form", spec: "{rules: [{from: [{source: {notServiceAccounts: [a/b/c]}}]}]}", field: "spec.rules[0].from[0].source.notServiceAccounts[0]", reason: `"namespace/name"`},
		{name: "service account empty part", spec: "{rules: [{from: [{source: {serviceAccounts: [ns/]}}]}]}", field: "spec.rules[0].from[0].source.serviceAccounts[0]", reason: `"namespace/name"`},
		{name: "too many service accounts", spec: "{rules: [{from: [{source: {serviceAccounts: [" + strings.Repeat("a, ", 16) + "a]}}]}]}", field: "spec.rules[0].from[0].source.serviceAccounts", reason: "too many values"},
		{name: "ip block", spec: "{rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]}", field: "spec.rules[0].from[0].source.ipBlocks[0]", reason: "invalid CIDR"},
		{name: "remote ip", spec: "{rules: [{from: [{source: {remoteIpBlocks: [localhost]}}]}]}", field: "spec.rules[0].from[0].source.remoteIpBlocks[0]", reason: "invalid IP address"},

		// Operations.
		{name: "to without operation", spec: "{rules: [{to: [{}]}]}", field: "spec.rules[0].to[0].operation", reason: "required"},
		{name: "empty operation", spec: "{rules: [{to: [{operation: {}}]}]}", field: "spec.rules[0].to[0].operation", reason: "at least one field"},
		{name: "empty method", spec: "{rules: [{to: [{operation: {methods: ['']}}]}]}", field: "spec.rules[0].to[0].operation.methods[0]", reason: "must not be empty"},
		{name: "port", spec: "{rules: [{to: [{operation: {ports: [http]}}]}]}", field: "spec.rules[0].to[0].operation.ports[0]", reason: "invalid port"},
		{name: "port range", spec: "{rules: [{to: [{operation: {notPorts: ['70000']}}]}]}", field: "spec.rules[0].to[0].operation.notPorts[0]", reason: "invalid port"},
		{name: "path any not last", spec: "{rules: [{to: [{operation: {paths: ['/{**}/a/{*}']}}]}]}", field: "spec.rules[0].to[0].operation.paths[0]", reason: "{**} must be the last segment"},
		{name: "path partial template", spec: "{rules: [{to: [{operation: {paths: ['/a{*}/b/{*}']}}]}]}", field: "spec.rules[0].to[0].operation.paths[0]", reason: "whole segments"},
		{name: "path literal", spec: "{rules: [{to: [{operation: {notPaths: ['/a b/{*}']}}]}]}", field: "spec.rules[0].to[0].operation.notPaths[0]", reason: `segment "a b"`},

		// Conditions.
		{name: "condition without key", spec: "{rules: [{when: [{key: '', values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "required"},
		{name: "condition without values", spec: "{rules: [{when: [{key: source.namespace}]}]}", field: "spec.rules[0].when[0]", reason: "at least one of values or notValues"},
		{name: "condition empty value", spec: "{rules: [{when: [{key: source.namespace, values: ['']}]}]}", field: "spec.rules[0].when[0].values[0]", reason: "must not be empty"},
		{name: "condition unknown key", spec: "{rules: [{when: [{key: request.method, values: [GET]}]}]}", field: "spec.rules[0].when[0].key", reason: `unknown attribute "request.method"`},
		{name: "condition labels", spec: "{rules: [{when: [{key: 'destination.labels[app]', values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "workload selector"},
		{name: "condition destination namespace", spec: "{rules: [{when: [{key: destination.namespace, values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "metadata.namespace"},
		{name: "condition map key", spec: "{rules: [{when: [{key: request.headers, values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "name[value]"},
		{name: "condition empty map key", spec: "{rules: [{when: [{key: 'request.auth.claims[]', values: [a]}]}]}", field: "spec.rules[0].when[0].key", reason: "name[value]"},
		{name: "condition IP", spec: "{rules: [{when: [{key: destination.ip, values: [a.b.c.d]}]}]}", field: "spec.rules[0].when[0].values[0]", reason: "invalid IP"},
		{name: "condition port", spec: "{rules: [{when: [{key: destination.port, notValues: ['-1']}]}]}", field: "spec.rules[0].when[0].notValues[0]", reason: "invalid port"},
		{name: "condition service account", spec: "{rules: [{when: [{key: source.serviceAccount, values: ['*']}]}]}", field: "spec.rules[0].when[0].values[0]", reason: "wildcards"},
	})
}

func TestRequestAuthentication(t *testing.T) {
	const jwks = `{"keys": [{"kty": "RSA", "e": "AQAB", "n": "abc"}]}`
	runCases(t, "RequestAuthentication", []testCase{
		{name: "issuer and uri", spec: "{" + selector + ", jwtRules: [{issuer: 'https://accounts.google.com', jwksUri: 'https://www.googleapis.com/oauth2/v3/certs', audiences: [a], forwardOriginalToken: true, timeout: 5s}]}"},
		{name: "inline jwks", spec: "{jwtRules: [{issuer: a, jwks: '" + jwks + "'}]}"},
		{name: "locations", spec: "{jwtRules: [{issuer: a, fromHeaders: [{name: x-jwt-assertion, prefix: 'Bearer '}], fromParams: [token], fromCookies: [session], outputPayloadToHeader: x-jwt-payload, outputClaimToHeaders: [{header: x-sub, claim: sub}], spaceDelimitedClaims: [scope]}]}"},
		{name: "target refs", spec: "{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}], jwtRules: [{issuer: a}]}"},
		{name: "uri without issuer", spec: "{jwtRules: [{jwksUri: 'http://jwks.example.com:8080/keys'}]}"},

		{name: "no issuer", spec: "{jwtRules: [{audiences: [a]}]}", field: "spec.jwtRules[0].issuer", reason: "required unless jwksUri"},
		{name: "uri scheme", spec: "{jwtRules: [{issuer: a, jwksUri: 'ftp://a.com/keys'}]}", field: "spec.jwtRules[0].jwksUri", reason: "scheme must be http or https"},
		{name: "uri without host", spec: "{jwtRules: [{issuer: a, jwksUri: 'https:///keys'}]}", field: "spec.jwtRules[0].jwksUri", reason: "no host"},
		{name: "uri port", spec: "{jwtRules: [{issuer: a, jwksUri: 'https://a.com:99999/keys'}]}", field: "spec.jwtRules[0].jwksUri", reason: "bad port"},
		{name: "uri unparsable", spec: "{jwtRules: [{issuer: a, jwksUri: 'https://a.com/%zz'}]}", field: "spec.jwtRules[0].jwksUri", reason: "invalid URL"},
		{name: "jwks and uri", spec: "{jwtRules: [{issuer: a, jwksUri: 'https://a.com/k', jwks: '" + jwks + "'}]}", field: "spec.jwtRules[0].jwks", reason: "cannot both be set"},
		{name: "jwks not JSON", spec: "{jwtRules: [{issuer: a, jwks: 'not json'}]}", field: "spec.jwtRules[0].jwks", reason: "invalid JWKS"},
		{name: "jwks without keys", spec: "{jwtRules: [{issuer: a, jwks: '{\"keys\": []}'}]}", field: "spec.jwtRules[0].jwks", reason: "no keys"},
		{name: "jwks key type", spec: "{jwtRules: [{issuer: a, jwks: '{\"keys\": [{\"n\": \"a\"}]}'}]}", field: "spec.jwtRules[0].jwks", reason: `no "kty"`},
		{name: "empty audience", spec: "{jwtRules: [{issuer: a, audiences: ['']}]}", field: "spec.jwtRules[0].audiences[0]", reason: "must not be empty"},
		{name: "empty header name", spec: "{jwtRules: [{issuer: a, fromHeaders: [{name: ''}]}]}", field: "spec.jwtRules[0].fromHeaders[0].name", reason: "must not be empty"},
		{name: "header name", spec: "{jwtRules: [{issuer: a, fromHeaders: [{name: 'x jwt'}]}]}", field: "spec.jwtRules[0].fromHeaders[0].name", reason: "invalid header name"},
		{name: "empty param", spec: "{jwtRules: [{issuer: a, fromParams: ['']}]}", field: "spec.jwtRules[0].fromParams[0]", reason: "must not be empty"},
		{name: "empty cookie", spec: "{jwtRules: [{issuer: a, fromCookies: ['']}]}", field: "spec.jwtRules[0].fromCookies[0]", reason: "must not be empty"},
		{name: "payload header", spec: "{jwtRules: [{issuer: a, outputPayloadToHeader: 'x_payload'}]}", field: "spec.jwtRules[0].outputPayloadToHeader", reason: "invalid header name"},
		{name: "claim header", spec: "{jwtRules: [{issuer: a, outputClaimToHeaders: [{header: 'x:sub', claim: sub}]}]}", field: "spec.jwtRules[0].outputClaimToHeaders[0].header", reason: "invalid header name"},
		{name: "claim missing", spec: "{jwtRules: [{issuer: a, outputClaimToHeaders: [{header: x-sub}]}]}", field: "spec.jwtRules[0].outputClaimToHeaders[0].claim", reason: "required"},
		{name: "timeout", spec: "{jwtRules: [{issuer: a, timeout: 0s}]}", field: "spec.jwtRules[0].timeout", reason: "at least 1ms"},
		{name: "selector and target refs", spec: "{" + selector + ", targetRefs: [{kind: Service, name: a}]}", field: "spec", reason: "only one of selector"},
		{name: "selector empty key", spec: "{selector: {matchLabels: {'': a}}}", field: `spec.selector.matchLabels[""]`, reason: "empty key"},
	})
}
