package validation_test

import (
	"strings"
	"testing"
)

const sePorts = "ports: [{number: 80, name: http, protocol: HTTP}]"

func TestServiceEntry(t *testing.T) {
	runCases(t, "ServiceEntry", []testCase{
		// Valid objects.
		{name: "external DNS", spec: "{hosts: [www.googleapis.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}], resolution: DNS, location: MESH_EXTERNAL}"},
		{name: "static endpoints", spec: "{hosts: [mysql.local], addresses: [10.1.0.5], ports: [{number: 3306, name: mysql, protocol: TCP, targetPort: 13306}], resolution: STATIC, location: MESH_INTERNAL, endpoints: [{address: 10.1.1.1, ports: {mysql: 3307}, labels: {app: db}, network: n1, locality: us/a, weight: 2, serviceAccount: db}]}"},
		{name: "dns endpoints", spec: "{hosts: ['*.example.com'], " + sePorts + ", resolution: DNS, endpoints: [{address: lb.example.com}, {address: 10.0.0.1}]}"},
		{name: "none with CIDR", spec: "{hosts: [internal.net], addresses: [10.0.0.0/8], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: NONE}"},
		{name: "workload selector", spec: "{hosts: [vm.local], " + sePorts + ", resolution: STATIC, workloadSelector: {labels: {app: vm}}}"},
		{name: "round robin", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS_ROUND_ROBIN, endpoints: [{address: b.com}]}"},
		{name: "dynamic dns", spec: "{hosts: ['*.example.com'], " + sePorts + ", resolution: DYNAMIC_DNS}"},
		{name: "unix endpoint", spec: "{hosts: [uds.local], " + sePorts + ", resolution: STATIC, endpoints: [{address: 'unix:///var/run/a.sock'}]}"},
		{name: "export to no one", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS, exportTo: ['~']}"},
		{name: "several HTTP hosts", spec: "{hosts: [a.com, b.com], " + sePorts + ", resolution: DNS}"},

		// Hosts and addresses.
		{name: "no hosts", spec: "{" + sePorts + "}", field: "spec.hosts", reason: "at least one host"},
		{name: "wildcard host", spec: "{hosts: ['*'], " + sePorts + "}", field: "spec.hosts[0]", reason: `host "*" is not allowed`},
		{name: "invalid host", spec: "{hosts: [a_b.com], " + sePorts + "}", field: "spec.hosts[0]", reason: "not a valid DNS-1123 label"},
		{name: "partial wildcard host", spec: "{hosts: ['*foo.com'], " + sePorts + "}", field: "spec.hosts[0]", reason: "partial wildcard", warn: true},
		{name: "too many hosts", spec: "{hosts: [" + strings.Repeat("a.com, ", 256) + "a.com], " + sePorts + "}", field: "spec.hosts", reason: "too many hosts"},
		{name: "invalid address", spec: "{hosts: [a.com], addresses: [10.0.0.300], " + sePorts + "}", field: "spec.addresses[0]", reason: "not a valid IP"},
		{name: "invalid CIDR", spec: "{hosts: [a.com], addresses: [10.0.0.0/40], " + sePorts + "}", field: "spec.addresses[0]", reason: "not a valid CIDR"},
		{name: "CIDR with DNS", spec: "{hosts: [a.com], addresses: [10.0.0.0/8], " + sePorts + ", resolution: DNS}", field: "spec.addresses", reason: "only allowed with resolution NONE or STATIC"},

		// Ports.
		{name: "duplicate port number", spec: "{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 80, name: http2, protocol: HTTP2}]}", field: "spec.ports[1].number", reason: "duplicate port number 80"},
		{name: "duplicate port name", spec: "{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http, protocol: HTTP}]}", field: "spec.ports[1].name", reason: `duplicate port name "http"`},
		{name: "port name", spec: "{hosts: [a.com], ports: [{number: 80, name: http_web, protocol: HTTP}]}", field: "spec.ports[0].name", reason: "invalid port name"},
		{name: "port name missing", spec: "{hosts: [a.com], ports: [{number: 80, protocol: HTTP}]}", field: "spec.ports[0].name", reason: "invalid port name"},
		{name: "protocol", spec: "{hosts: [a.com], ports: [{number: 80, name: http, protocol: SPDY}]}", field: "spec.ports[0].protocol", reason: `unsupported protocol "SPDY"`},
		{name: "port number", spec: "{hosts: [a.com], ports: [{number: 0, name: http, protocol: HTTP}]}", field: "spec.ports[0].number", reason: "1..65535"},
		{name: "target port", spec: "{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP, targetPort: 70000}]}", field: "spec.ports[0].targetPort", reason: "1..65535"},
		{name: "several hosts with TCP", spec: "{hosts: [a.com, b.com], ports: [{number: 3306, name: mysql, protocol: TCP}], resolution: DNS}", field: "spec.ports[0].protocol", reason: "several hosts need HTTP or TLS ports"},
		{name: "several hosts with sniffing", spec: "{hosts: [a.com, b.com], ports: [{number: 80, name: web}], resolution: DNS}", field: "spec.ports[0].protocol", reason: "several hosts need HTTP or TLS ports"},

		// Resolution and endpoints.
		{name: "none with endpoints", spec: "{hosts: [a.com], " + sePorts + ", resolution: NONE, endpoints: [{address: 10.0.0.1}]}", field: "spec.endpoints", reason: "cannot be set with resolution NONE"},
		{name: "none with selector", spec: "{hosts: [a.com], " + sePorts + ", resolution: NONE, workloadSelector: {labels: {app: a}}}", field: "spec.workloadSelector", reason: "no effect with resolution NONE", warn: true},
		{name: "endpoints and selector", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 10.0.0.1}], workloadSelector: {labels: {app: a}}}", field: "spec.endpoints", reason: "cannot both be set"},
		{name: "static without endpoints", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC}", field: "spec", reason: "has no endpoints", warn: true},
		{name: "static hostname endpoint", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: b.com}]}", field: "spec.endpoints[0].address", reason: `"b.com" is not a valid IP address`},
		{name: "static endpoint without address", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{labels: {a: b}}]}", field: "spec.endpoints[0].address", reason: "required"},
		{name: "endpoint network only", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{network: west}]}", field: "spec.endpoints[0].address", reason: "reachable only through the gateway", warn: true},
		{name: "endpoint port not in service", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {grpc: 9090}}]}", field: "spec.endpoints[0].ports[grpc]", reason: "not defined by the service entry"},
		{name: "endpoint port number", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {http: 0}}]}", field: "spec.endpoints[0].ports[http]", reason: "1..65535"},
		{name: "unix endpoint with ports", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 'unix:///a.sock', ports: {http: 80}}]}", field: "spec.endpoints[0].ports", reason: "cannot have ports"},
		{name: "unix endpoint with two service ports", spec: "{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: b, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 'unix:///a.sock'}]}", field: "spec.endpoints[0].address", reason: "exactly one port"},
		{name: "unix endpoint directory", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 'unix:///run/'}]}", field: "spec.endpoints[0].address", reason: "not an absolute path to a file"},
		{name: "endpoint labels", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {'-a': b}}]}", field: "spec.endpoints[0].labels[-a]", reason: "invalid key"},
		{name: "dns wildcard without endpoints", spec: "{hosts: ['*.a.com'], " + sePorts + ", resolution: DNS}", field: "spec.hosts[0]", reason: "cannot be wildcards"},
		{name: "round robin endpoints", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS_ROUND_ROBIN, endpoints: [{address: b.com}, {address: c.com}]}", field: "spec.endpoints", reason: "at most one endpoint"},
		{name: "dns endpoint address", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS, endpoints: [{address: 'b_c.com'}]}", field: "spec.endpoints[0].address", reason: "not a valid IP address or hostname"},
		{name: "dns unix endpoint", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS, endpoints: [{address: 'unix:///a.sock'}]}", field: "spec.endpoints[0].address", reason: "cannot be resolved"},
		{name: "dns addresses with TCP", spec: "{hosts: [a.com, b.com], addresses: [10.0.0.1], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}", field: "spec.hosts", reason: "only the first host", warn: true},
		{name: "dynamic dns host", spec: "{hosts: [a.com], " + sePorts + ", resolution: DYNAMIC_DNS}", field: "spec.hosts[0]", reason: "requires wildcard hosts"},
		{name: "dynamic dns endpoints", spec: "{hosts: ['*.a.com'], " + sePorts + ", resolution: DYNAMIC_DNS, endpoints: [{address: 10.0.0.1}]}", field: "spec.endpoints", reason: "ignored", warn: true},

		// Selector and exportTo.
		{name: "selector wildcard", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, workloadSelector: {labels: {'app*': a}}}", field: "spec.workloadSelector.labels[app*]", reason: "wildcard"},
		{name: "selector empty key", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, workloadSelector: {labels: {'': a}}}", field: `spec.workloadSelector.labels[""]`, reason: "empty key"},
		{name: "selector empty", spec: "{hosts: [a.com], " + sePorts + ", resolution: STATIC, workloadSelector: {}}", field: "spec.workloadSelector", reason: "selects every workload", warn: true},
		{name: "export to no one and others", spec: "{hosts: [a.com], " + sePorts + ", resolution: DNS, exportTo: ['~', '.']}", field: "spec.exportTo", reason: `"~" (visible to no one) cannot be combined`},
	})
}

func TestWorkloadEntry(t *testing.T) {
	runCases(t, "WorkloadEntry", []testCase{
		{name: "full", spec: "{address: 10.0.0.1, ports: {http: 8080, grpc: 9090}, labels: {app: a, version: v1}, network: n1, locality: us-east/a, weight: 10, serviceAccount: a}"},
		{name: "hostname", spec: "{address: vm1.example.com}"},
		{name: "IPv6", spec: "{address: 'fd00::1'}"},
		{name: "unix", spec: "{address: 'unix:///var/run/a.sock'}"},
		{name: "abstract unix", spec: "{address: 'unix://@a'}"},

		{name: "missing address", spec: "{labels: {app: a}}", field: "spec.address", reason: "required"},
		{name: "network only", spec: "{network: west}", field: "spec.address", reason: "reachable only through the gateway", warn: true},
		{name: "bad address", spec: "{address: 'a_b'}", field: "spec.address", reason: "not a valid IP address or hostname"},
		{name: "long address", spec: "{address: " + strings.Repeat("a.", 130) + "com}", field: "spec.address", reason: "too long"},
		{name: "relative unix path", spec: "{address: 'unix://run/a.sock'}", field: "spec.address", reason: "not an absolute path"},
		{name: "empty unix path", spec: "{address: 'unix://'}", field: "spec.address", reason: "must not be empty"},
		{name: "unix with ports", spec: "{address: 'unix:///a.sock', ports: {http: 80}}", field: "spec.ports", reason: "cannot have ports"},
		{name: "port name", spec: "{address: 10.0.0.1, ports: {'h.ttp': 80}}", field: "spec.ports[h.ttp]", reason: "invalid port name"},
		{name: "port number", spec: "{address: 10.0.0.1, ports: {http: 0}}", field: "spec.ports[http]", reason: "1..65535"},
		{name: "labels", spec: "{address: 10.0.0.1, labels: {app: 'a b'}}", field: "spec.labels[app]", reason: "invalid label value"},
		{name: "service account", spec: "{address: 10.0.0.1, serviceAccount: " + strings.Repeat("a", 254) + "}", field: "spec.serviceAccount", reason: "too long"},
	})
}

func TestWorkloadGroup(t *testing.T) {
	const tmpl = "template: {ports: {http: 8080}, serviceAccount: sa, labels: {app: a}}"
	runCases(t, "WorkloadGroup", []testCase{
		{name: "http probe", spec: "{metadata: {labels: {app: a}, annotations: {a.io/b: c}}, " + tmpl + ", probe: {initialDelaySeconds: 5, periodSeconds: 10, httpGet: {path: /ready, port: 8080, scheme: HTTPS, httpHeaders: [{name: X-Probe, value: a}]}}}"},
		{name: "tcp probe", spec: "{" + tmpl + ", probe: {tcpSocket: {port: 8080}}}"},
		{name: "exec probe", spec: "{" + tmpl + ", probe: {exec: {command: [cat, /ready]}}}"},
		{name: "grpc probe", spec: "{" + tmpl + ", probe: {grpc: {port: 9090}}}"},
		{name: "empty template", spec: "{template: {}}"},

		{name: "no template", spec: "{metadata: {labels: {app: a}}}", field: "spec.template", reason: "required"},
		{name: "metadata labels", spec: "{metadata: {labels: {'a b': c}}, " + tmpl + "}", field: "spec.metadata.labels[a b]", reason: "invalid key"},
		{name: "metadata annotations", spec: "{metadata: {annotations: {'a b': c}}, " + tmpl + "}", field: "spec.metadata.annotations[a b]", reason: "invalid key"},
		{name: "template port", spec: "{template: {ports: {http: 0}}}", field: "spec.template.ports[http]", reason: "1..65535"},
		{name: "template port name", spec: "{template: {ports: {'': 80}}}", field: `spec.template.ports[""]`, reason: "invalid port name"},
		{name: "template unix with ports", spec: "{template: {address: 'unix:///a.sock', ports: {http: 80}}}", field: "spec.template.ports", reason: "cannot have ports"},
		{name: "template labels", spec: "{template: {labels: {a: '%'}}}", field: "spec.template.labels[a]", reason: "invalid label value"},
		{name: "negative period", spec: "{" + tmpl + ", probe: {periodSeconds: -1, tcpSocket: {port: 80}}}", field: "spec.probe.periodSeconds", reason: "must not be negative"},
		{name: "negative threshold", spec: "{" + tmpl + ", probe: {failureThreshold: -1, tcpSocket: {port: 80}}}", field: "spec.probe.failureThreshold", reason: "must not be negative"},
		{name: "probe without method", spec: "{" + tmpl + ", probe: {periodSeconds: 5}}", field: "spec.probe", reason: "one of httpGet, tcpSocket, exec or grpc"},
		{name: "http probe port", spec: "{" + tmpl + ", probe: {httpGet: {path: /}}}", field: "spec.probe.httpGet.port", reason: "1..65535"},
		{name: "http probe scheme", spec: "{" + tmpl + ", probe: {httpGet: {port: 80, scheme: ftp}}}", field: "spec.probe.httpGet.scheme", reason: `invalid scheme "ftp"`},
		{name: "http probe header", spec: "{" + tmpl + ", probe: {httpGet: {port: 80, httpHeaders: [{name: x_a}]}}}", field: "spec.probe.httpGet.httpHeaders[0].name", reason: "invalid header name"},
		{name: "tcp probe port", spec: "{" + tmpl + ", probe: {tcpSocket: {port: 70000}}}", field: "spec.probe.tcpSocket.port", reason: "1..65535"},
		{name: "exec without command", spec: "{" + tmpl + ", probe: {exec: {}}}", field: "spec.probe.exec.command", reason: "required"},
		{name: "exec empty argument", spec: "{" + tmpl + ", probe: {exec: {command: [a, '']}}}", field: "spec.probe.exec.command[1]", reason: "must not be empty"},
		{name: "grpc probe port", spec: "{" + tmpl + ", probe: {grpc: {service: a}}}", field: "spec.probe.grpc.port", reason: "1..65535"},
	})
}
