package validation_test

import (
	"testing"

	"github.com/trellismesh/trellis/internal/config/validation"
)

// gwServer wraps one server (flow YAML) in a Gateway.
func gwServer(server string) string {
	return "{selector: {istio: ingressgateway}, servers: [" + server + "]}"
}

const httpPort = "port: {number: 80, name: http, protocol: HTTP}"

func TestGateway(t *testing.T) {
	runCases(t, "Gateway", []testCase{
		// Valid objects.
		{name: "http", spec: gwServer("{" + httpPort + ", hosts: ['*']}")},
		{name: "namespaced hosts", spec: gwServer("{" + httpPort + ", hosts: ['ns1/a.example.com', '*/b.example.com', './*.c.example.com', '*/*']}")},
		{name: "IP host", spec: gwServer("{" + httpPort + ", hosts: [10.0.0.1]}")},
		{name: "https redirect", spec: gwServer("{" + httpPort + ", hosts: [a.com], tls: {httpsRedirect: true}}")},
		{name: "https credential", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: a-cert}}")},
		{name: "https files", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}}")},
		{name: "two certificates", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /rsa.pem, privateKey: /rsa.key}, {serverCertificate: /ec.pem, privateKey: /ec.key}]}}")},
		{name: "passthrough", spec: gwServer("{port: {number: 443, name: tls, protocol: TLS}, hosts: [a.com], tls: {mode: PASSTHROUGH}}")},
		{name: "istio mutual", spec: gwServer("{port: {number: 15443, name: tls, protocol: TLS}, hosts: ['*.local'], tls: {mode: ISTIO_MUTUAL}}")},
		{name: "tcp", spec: gwServer("{port: {number: 3306, name: mysql, protocol: MYSQL}, hosts: ['*']}")},
		{name: "unix bind", spec: gwServer("{port: {number: 0, name: uds, protocol: HTTP}, bind: 'unix:///var/run/gw.sock', hosts: ['*']}")},
		{name: "cipher suites", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_1, cipherSuites: [ECDHE-RSA-AES128-SHA, '-AES256-SHA']}}")},

		// Name and servers.
		{name: "no servers", spec: "{selector: {istio: ingressgateway}}", field: "spec.servers", reason: "at least one server"},
		{name: "selector label", spec: "{selector: {'a b': c}, servers: [{" + httpPort + ", hosts: ['*']}]}", field: "spec.selector[a b]", reason: "invalid key"},
		{name: "no hosts", spec: gwServer("{" + httpPort + "}"), field: "spec.servers[0].hosts", reason: "at least one host"},
		{name: "short host", spec: gwServer("{" + httpPort + ", hosts: [ns/reviews]}"), field: "spec.servers[0].hosts[0]", reason: "short names"},
		{name: "partial wildcard", spec: gwServer("{" + httpPort + ", hosts: ['*foo.com']}"), field: "spec.servers[0].hosts[0]", reason: "partial wildcard"},
		{name: "host namespace", spec: gwServer("{" + httpPort + ", hosts: [a_b/a.com]}"), field: "spec.servers[0].hosts[0]", reason: `invalid namespace "a_b"`},
		{name: "host empty namespace", spec: gwServer("{" + httpPort + ", hosts: [/a.com]}"), field: "spec.servers[0].hosts[0]", reason: "must not be empty"},
		{name: "host none namespace", spec: gwServer("{" + httpPort + ", hosts: [~/a.com]}"), field: "spec.servers[0].hosts[0]", reason: `invalid namespace "~"`},
		{name: "host invalid", spec: gwServer("{" + httpPort + ", hosts: [a_b.com]}"), field: "spec.servers[0].hosts[0]", reason: "not a valid DNS-1123 label"},

		// Ports and binds.
		{name: "port missing", spec: gwServer("{hosts: ['*']}"), field: "spec.servers[0].port", reason: "required"},
		{name: "protocol invalid", spec: gwServer("{port: {number: 80, name: http, protocol: HTTP3}, hosts: ['*']}"), field: "spec.servers[0].port.protocol", reason: `unsupported protocol "HTTP3"`},
		{name: "protocol missing", spec: gwServer("{port: {number: 80, name: http}, hosts: ['*']}"), field: "spec.servers[0].port.protocol", reason: "required"},
		{name: "port number", spec: gwServer("{port: {number: 0, name: http, protocol: HTTP}, hosts: ['*']}"), field: "spec.servers[0].port.number", reason: "1..65535"},
		{name: "port name", spec: gwServer("{port: {number: 80, protocol: HTTP}, hosts: ['*']}"), field: "spec.servers[0].port.name", reason: "required"},
		{name: "target port", spec: gwServer("{port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}, hosts: ['*']}"), field: "spec.servers[0].port.targetPort", reason: "no effect on gateways"},
		{name: "duplicate port names", spec: "{servers: [{" + httpPort + ", hosts: [a.com]}, {port: {number: 81, name: http, protocol: HTTP}, hosts: [b.com]}]}", field: "spec.servers[1].port.name", reason: "already used by servers[0]"},
		{name: "unix bind with port", spec: gwServer("{port: {number: 80, name: uds, protocol: HTTP}, bind: 'unix:///a.sock', hosts: ['*']}"), field: "spec.servers[0].port.number", reason: "must be 0"},
		{name: "unix bind path", spec: gwServer("{port: {number: 0, name: uds, protocol: HTTP}, bind: 'unix://a.sock', hosts: ['*']}"), field: "spec.servers[0].bind", reason: "not an absolute path"},
		{name: "bind address", spec: gwServer("{" + httpPort + ", bind: localhost, hosts: ['*']}"), field: "spec.servers[0].bind", reason: "not a valid IP"},

		// TLS.
		{name: "https without tls", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com]}"), field: "spec.servers[0].tls", reason: "required for HTTPS servers"},
		{name: "tcp with tls", spec: gwServer("{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ['*'], tls: {mode: SIMPLE, credentialName: c}}"), field: "spec.servers[0].tls", reason: "only HTTPS and TLS servers"},
		{name: "http with certificates", spec: gwServer("{" + httpPort + ", hosts: ['*'], tls: {mode: SIMPLE, credentialName: c}}"), field: "spec.servers[0].tls", reason: "can only set httpsRedirect"},
		{name: "simple without certificate", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, privateKey: /k.pem}}"), field: "spec.servers[0].tls.serverCertificate", reason: "required for SIMPLE TLS"},
		{name: "simple without key", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, serverCertificate: /c.pem}}"), field: "spec.servers[0].tls.privateKey", reason: "required for SIMPLE TLS"},
		{name: "mutual without CA", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}}"), field: "spec.servers[0].tls.caCertificates", reason: "required for MUTUAL TLS"},
		{name: "certificate without key", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c.pem}]}}"), field: "spec.servers[0].tls.tlsCertificates[0].privateKey", reason: "required"},
		{name: "too many credentials", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialNames: [a, b, c]}}"), field: "spec.servers[0].tls.credentialNames", reason: "at most 2"},
		{name: "istio mutual with credential", spec: gwServer("{port: {number: 443, name: tls, protocol: TLS}, hosts: [a.com], tls: {mode: ISTIO_MUTUAL, credentialName: c}}"), field: "spec.servers[0].tls.credentialName", reason: "cannot be set in ISTIO_MUTUAL mode"},
		{name: "two certificate sources", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c.pem, privateKey: /k.pem}}"), field: "spec.servers[0].tls", reason: "only one of credentialName"},
		{name: "CRL with simple", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}}"), field: "spec.servers[0].tls.caCrl", reason: "SIMPLE mode"},
		{name: "CRL with credential", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: MUTUAL, credentialName: c, caCrl: /crl.pem}}"), field: "spec.servers[0].tls.caCrl", reason: "credentialName"},
		{name: "passthrough certificates", spec: gwServer("{port: {number: 443, name: tls, protocol: TLS}, hosts: [a.com], tls: {mode: PASSTHROUGH, credentialName: c}}"), field: "spec.servers[0].tls", reason: "does not use certificates", warn: true},
		{name: "old TLS without ciphers", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}}"), field: "spec.servers[0].tls.minProtocolVersion", reason: "cipherSuites", warn: true},
		{name: "unknown cipher", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, cipherSuites: [ROT13]}}"), field: "spec.servers[0].tls.cipherSuites[0]", reason: `unknown cipher suite "ROT13"`, warn: true},
		{name: "duplicate cipher", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA, AES128-SHA]}}"), field: "spec.servers[0].tls.cipherSuites[1]", reason: "duplicate", warn: true},
		{name: "redirect on TLS server", spec: gwServer("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.com], tls: {mode: SIMPLE, credentialName: c, httpsRedirect: true}}"), field: "spec.servers[0].tls.httpsRedirect", reason: "only has an effect on HTTP servers", warn: true},
	})
}

func TestGatewayName(t *testing.T) {
	// Kubernetes allows dots in object names; Istio does not for gateways,
	// which VirtualServices name as namespace/name.
	c := mustDecode(t, "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: my.gateway}\nspec: {servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n")
	_, err := validation.Validate(c)
	if err == nil || err.Error() != `metadata.name: invalid gateway name "my.gateway": must be a DNS-1123 label (no dots)` {
		t.Fatalf("got %v", err)
	}
}
