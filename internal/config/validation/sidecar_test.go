package validation_test

import "testing"

func TestSidecar(t *testing.T) {
	const egress = "egress: [{hosts: ['./*', 'istio-system/*']}]"
	runCases(t, "Sidecar", []testCase{
		// Valid objects.
		{name: "namespace default", spec: "{" + egress + "}"},
		{name: "full", spec: `{workloadSelector: {labels: {app: ratings}},
			ingress: [{port: {number: 9080, protocol: HTTP, name: somename}, defaultEndpoint: '127.0.0.1:8080', captureMode: NONE,
			  connectionPool: {http: {http1MaxPendingRequests: 10}}},
			  {port: {number: 9443, protocol: HTTPS, name: tls}, defaultEndpoint: 'unix:///var/run/app.sock', tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}},
			  {port: {number: 9090, protocol: GRPC}, defaultEndpoint: '[::1]:9090', bind: 0.0.0.0}],
			egress: [{port: {number: 0, protocol: HTTP, name: uds}, bind: 'unix:///var/run/egress.sock', hosts: ['*/*.example.com']},
			  {port: {number: 3306, protocol: MYSQL, name: mysql}, bind: 127.0.0.2, captureMode: IPTABLES, hosts: ['*/mysql.foo.com']},
			  {hosts: ['~/*', 'ns1/reviews.ns1.svc.cluster.local']}],
			outboundTrafficPolicy: {mode: REGISTRY_ONLY}, inboundConnectionPool: {tcp: {maxConnections: 100}}}`},
		{name: "egress proxy", spec: "{outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, subset: v1, port: {number: 3128}}}}"},

		// Selector and emptiness.
		{name: "empty", spec: "{}", field: "spec", reason: "empty sidecar"},
		{name: "selector without labels", spec: "{workloadSelector: {}, " + egress + "}", field: "spec.workloadSelector", reason: "every workload", warn: true},
		{name: "selector wildcard", spec: "{workloadSelector: {labels: {app: 'a*'}}, " + egress + "}", field: "spec.workloadSelector.labels[app]", reason: "wildcard"},

		// Ingress listeners.
		{name: "ingress port missing", spec: "{ingress: [{defaultEndpoint: '127.0.0.1:80'}]}", field: "spec.ingress[0].port", reason: "required"},
		{name: "ingress port number", spec: "{ingress: [{port: {number: 0, protocol: HTTP}}]}", field: "spec.ingress[0].port.number", reason: "1..65535"},
		{name: "ingress protocol", spec: "{ingress: [{port: {number: 80, protocol: HTTP3}}]}", field: "spec.ingress[0].port.protocol", reason: "unsupported protocol"},
		{name: "ingress port name", spec: "{ingress: [{port: {number: 80, protocol: HTTP, name: a_b}}]}", field: "spec.ingress[0].port.name", reason: "invalid port name"},
		{name: "ingress target port", spec: "{ingress: [{port: {number: 80, protocol: HTTP, targetPort: 8080}}]}", field: "spec.ingress[0].port.targetPort", reason: "no effect on sidecars"},
		{name: "ingress duplicate port", spec: "{ingress: [{port: {number: 80, protocol: HTTP}}, {port: {number: 80, protocol: TCP}}]}", field: "spec.ingress[1].port.number", reason: "used by another ingress listener"},
		{name: "ingress bind", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, bind: 'unix:///a'}]}", field: "spec.ingress[0].bind", reason: "not a valid IP"},
		{name: "default endpoint host", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, defaultEndpoint: '10.0.0.1:80'}]}", field: "spec.ingress[0].defaultEndpoint", reason: `invalid endpoint host "10.0.0.1"`},
		{name: "default endpoint without port", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, defaultEndpoint: 127.0.0.1}]}", field: "spec.ingress[0].defaultEndpoint", reason: "invalid endpoint"},
		{name: "default endpoint port", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, defaultEndpoint: '127.0.0.1:0'}]}", field: "spec.ingress[0].defaultEndpoint", reason: "1..65535"},
		{name: "default endpoint unix", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, defaultEndpoint: 'unix://relative'}]}", field: "spec.ingress[0].defaultEndpoint", reason: "not an absolute path"},
		{name: "ingress tls mode", spec: "{ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}]}", field: "spec.ingress[0].tls.mode", reason: "not supported on sidecar ingress"},
		{name: "ingress tls credential", spec: "{ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, credentialName: c}}]}", field: "spec.ingress[0].tls.credentialName", reason: "not supported on sidecar ingress"},
		{name: "ingress tls on HTTP", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]}", field: "spec.ingress[0].tls", reason: "only HTTPS and TLS ports"},
		{name: "ingress tls certificates", spec: "{ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE}}]}", field: "spec.ingress[0].tls.serverCertificate", reason: "required for SIMPLE TLS"},
		{name: "ingress pool", spec: "{ingress: [{port: {number: 80, protocol: HTTP}, connectionPool: {}}]}", field: "spec.ingress[0].connectionPool", reason: "must set http or tcp"},
		{name: "ingress HTTP pool on TCP", spec: "{ingress: [{port: {number: 80, protocol: TCP}, connectionPool: {http: {maxRetries: 1}}}]}", field: "spec.ingress[0].connectionPool.http", reason: "only the TCP settings apply", warn: true},
		{name: "inbound pool", spec: "{inboundConnectionPool: {tcp: {connectTimeout: 0s}}}", field: "spec.inboundConnectionPool.tcp.connectTimeout", reason: "at least 1ms"},

		// Egress listeners.
		{name: "two catch-all listeners", spec: "{egress: [{hosts: ['*/*']}, {hosts: ['./*']}]}", field: "spec.egress[1].port", reason: "only one egress listener may omit the port"},
		{name: "catch-all not last", spec: "{egress: [{hosts: ['*/*']}, {port: {number: 80, protocol: HTTP}, hosts: ['./*']}]}", field: "spec.egress[0].port", reason: "must be the last one"},
		{name: "port 0 without socket", spec: "{egress: [{port: {number: 0, protocol: HTTP}, hosts: ['./*']}]}", field: "spec.egress[0].bind", reason: "must bind to a unix domain socket"},
		{name: "socket capture mode", spec: "{egress: [{port: {number: 0, protocol: HTTP}, bind: 'unix:///a.sock', captureMode: IPTABLES, hosts: ['./*']}]}", field: "spec.egress[0].captureMode", reason: "DEFAULT or NONE"},
		{name: "duplicate socket", spec: "{egress: [{port: {number: 0, protocol: HTTP}, bind: 'unix:///a.sock', hosts: ['./*']}, {port: {number: 0, protocol: TCP}, bind: 'unix:///a.sock', hosts: ['./*']}]}", field: "spec.egress[1].bind", reason: "used by another listener"},
		{name: "duplicate egress port", spec: "{egress: [{port: {number: 80, protocol: HTTP}, hosts: ['./*']}, {port: {number: 80, protocol: HTTP}, hosts: ['*/*']}]}", field: "spec.egress[1].port.number", reason: "used by another egress listener"},
		{name: "egress bind", spec: "{egress: [{port: {number: 80, protocol: HTTP}, bind: example.com, hosts: ['./*']}]}", field: "spec.egress[0].bind", reason: "not a valid IP"},
		{name: "egress protocol", spec: "{egress: [{port: {number: 80, protocol: QUIC}, hosts: ['./*']}]}", field: "spec.egress[0].port.protocol", reason: "unsupported protocol"},
		{name: "egress without hosts", spec: "{egress: [{port: {number: 80, protocol: HTTP}}]}", field: "spec.egress[0].hosts", reason: "at least one host"},
		{name: "host without namespace", spec: "{egress: [{hosts: [a.com]}]}", field: "spec.egress[0].hosts[0]", reason: "namespace/dnsName"},
		{name: "short host", spec: "{egress: [{hosts: [ns/reviews]}]}", field: "spec.egress[0].hosts[0]", reason: "short names"},
		{name: "host namespace", spec: "{egress: [{hosts: ['ns_1/*']}]}", field: "spec.egress[0].hosts[0]", reason: `invalid namespace "ns_1"`},
		{name: "host IP", spec: "{egress: [{hosts: [ns/10.0.0.1]}]}", field: "spec.egress[0].hosts[0]", reason: "cannot be all numeric"},
		{name: "duplicate egress host", spec: "{egress: [{hosts: ['./*', 'ns/a.com']}]}", field: "spec.egress[0].hosts[1]", reason: `duplicate egress host "ns/a.com"`, warn: true},
		{name: "everything and more", spec: "{egress: [{hosts: ['*/*', 'ns/a.com']}]}", field: "spec.egress[0].hosts", reason: "selects everything", warn: true},

		// Outbound traffic policy.
		{name: "egress proxy mode", spec: "{outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: p.com, port: {number: 80}}}}", field: "spec.outboundTrafficPolicy.egressProxy", reason: "requires mode ALLOW_ANY"},
		{name: "egress proxy port", spec: "{outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: p.com}}}", field: "spec.outboundTrafficPolicy.egressProxy.port", reason: "required"},
		{name: "egress proxy host", spec: "{outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: '*.p.com', port: {number: 80}}}}", field: "spec.outboundTrafficPolicy.egressProxy.host", reason: "not a valid DNS-1123 label"},
	})
}
