package validation_test

import "testing"

// drPolicy wraps a traffic policy (flow YAML) in a DestinationRule.
func drPolicy(policy string) string {
	return "{host: reviews, trafficPolicy: " + policy + "}"
}

func TestDestinationRule(t *testing.T) {
	runCases(t, "DestinationRule", []testCase{
		// Valid objects.
		{name: "subsets", spec: "{host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}]}"},
		{name: "wildcard host", spec: "{host: '*.example.com', trafficPolicy: {tls: {mode: SIMPLE}}}"},
		{name: "full policy", spec: drPolicy(`{loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 1024}},
			localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/zone1/*: 80, us-west/zone2/*: 20}}]}, warmup: {duration: 30s, minimumPercent: 10, aggression: 1.5}},
			connectionPool: {tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s, tcpKeepalive: {time: 7200s, interval: 75s}},
			http: {http1MaxPendingRequests: 10, http2MaxRequests: 100, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: 1h, h2UpgradePolicy: UPGRADE}},
			outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 100, minHealthPercent: 50},
			tls: {mode: ISTIO_MUTUAL}, portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: LEAST_REQUEST}}]}`)},
		{name: "maglev", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}}")},
		{name: "failover", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}, outlierDetection: {consecutive5xxErrors: 1}}")},
		{name: "mutual tls with credential", spec: drPolicy("{tls: {mode: MUTUAL, credentialName: client-cert, sni: a.com}}")},
		{name: "mutual tls with files", spec: drPolicy("{tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}}")},
		{name: "tunnel", spec: drPolicy("{tunnel: {protocol: CONNECT, targetHost: proxy.example.com, targetPort: 3128}}")},
		{name: "selector exported to own namespace", spec: "{host: a, exportTo: ['.'], workloadSelector: {matchLabels: {app: a}}, trafficPolicy: {tls: {mode: DISABLE}}}"},

		// Host and subsets.
		{name: "host missing", spec: "{subsets: [{name: v1}]}", field: "spec.host", reason: "must not be empty"},
		{name: "host invalid", spec: "{host: 'a..b'}", field: "spec.host", reason: `label "" is not a valid DNS-1123 label`},
		{name: "subset without name", spec: "{host: a, subsets: [{labels: {v: a}}]}", field: "spec.subsets[0].name", reason: "required"},
		{name: "subset name", spec: "{host: a, subsets: [{name: v.1}]}", field: "spec.subsets[0].name", reason: "invalid subset name"},
		{name: "duplicate subset", spec: "{host: a, subsets: [{name: v1}, {name: v1}]}", field: "spec.subsets[1].name", reason: `duplicate subset name "v1"`},
		{name: "subset labels", spec: "{host: a, subsets: [{name: v1, labels: {version: '-v1'}}]}", field: "spec.subsets[0].labels[version]", reason: "invalid label value"},
		{name: "subset policy", spec: "{host: a, subsets: [{name: v1, trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}}]}", field: "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections", reason: "must not be negative"},

		// Traffic policy.
		{name: "empty policy", spec: drPolicy("{}"), field: "spec.trafficPolicy", reason: "at least one field"},
		{name: "tunnel and proxy protocol", spec: drPolicy("{tunnel: {targetHost: a.com, targetPort: 80}, proxyProtocol: {version: V2}}"), field: "spec.trafficPolicy.proxyProtocol", reason: "cannot both be set"},
		{name: "tunnel protocol", spec: drPolicy("{tunnel: {protocol: GET, targetHost: a.com, targetPort: 80}}"), field: "spec.trafficPolicy.tunnel.protocol", reason: `invalid protocol "GET"`},
		{name: "tunnel host", spec: drPolicy("{tunnel: {targetHost: 'a b', targetPort: 80}}"), field: "spec.trafficPolicy.tunnel.targetHost", reason: "not a valid hostname or IP"},
		{name: "tunnel port", spec: drPolicy("{tunnel: {targetHost: 10.0.0.1}}"), field: "spec.trafficPolicy.tunnel.targetPort", reason: "1..65535"},
		{name: "retry budget", spec: drPolicy("{retryBudget: {percent: 150}}"), field: "spec.trafficPolicy.retryBudget.percent", reason: "between 0 and 100"},

		// Outlier detection.
		{name: "deprecated consecutive errors", spec: drPolicy("{outlierDetection: {consecutiveErrors: 5}}"), field: "spec.trafficPolicy.outlierDetection.consecutiveErrors", reason: "deprecated", warn: true},
		{name: "negative consecutive errors", spec: drPolicy("{outlierDetection: {consecutiveErrors: -1}}"), field: "spec.trafficPolicy.outlierDetection.consecutiveErrors", reason: "must not be negative"},
		{name: "local origin without split", spec: drPolicy("{outlierDetection: {consecutiveLocalOriginFailures: 5}}"), field: "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", reason: "splitExternalLocalOriginErrors"},
		{name: "outlier interval", spec: drPolicy("{outlierDetection: {interval: 0s}}"), field: "spec.trafficPolicy.outlierDetection.interval", reason: "at least 1ms"},
		{name: "base ejection time", spec: drPolicy("{outlierDetection: {baseEjectionTime: 100us}}"), field: "spec.trafficPolicy.outlierDetection.baseEjectionTime", reason: "at least 1ms"},
		{name: "max ejection percent", spec: drPolicy("{outlierDetection: {maxEjectionPercent: 101}}"), field: "spec.trafficPolicy.outlierDetection.maxEjectionPercent", reason: "between 0 and 100"},
		{name: "min health percent", spec: drPolicy("{outlierDetection: {minHealthPercent: -1}}"), field: "spec.trafficPolicy.outlierDetection.minHealthPercent", reason: "between 0 and 100"},
		{name: "error codes", spec: drPolicy("{outlierDetection: {outlierDetectionHttpErrorCodes: [503, 700]}}"), field: "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1]", reason: "between 100 and 599"},

		// Connection pool.
		{name: "empty connection pool", spec: drPolicy("{connectionPool: {}}"), field: "spec.trafficPolicy.connectionPool", reason: "must set http or tcp"},
		{name: "negative pending requests", spec: drPolicy("{connectionPool: {http: {http1MaxPendingRequests: -1}}}"), field: "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests", reason: "must not be negative"},
		{name: "negative max requests", spec: drPolicy("{connectionPool: {http: {http2MaxRequests: -1}}}"), field: "spec.trafficPolicy.connectionPool.http.http2MaxRequests", reason: "must not be negative"},
		{name: "negative retries", spec: drPolicy("{connectionPool: {http: {maxRetries: -2}}}"), field: "spec.trafficPolicy.connectionPool.http.maxRetries", reason: "must not be negative"},
		{name: "http idle timeout", spec: drPolicy("{connectionPool: {http: {idleTimeout: 0s}}}"), field: "spec.trafficPolicy.connectionPool.http.idleTimeout", reason: "at least 1ms"},
		{name: "upgrade with client protocol", spec: drPolicy("{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}"), field: "spec.trafficPolicy.connectionPool.http.useClientProtocol", reason: "h2UpgradePolicy is UPGRADE"},
		{name: "http2 keepalive", spec: drPolicy("{connectionPool: {http: {http2KeepAlive: {interval: 0s}}}}"), field: "spec.trafficPolicy.connectionPool.http.http2KeepAlive.interval", reason: "at least 1ms"},
		{name: "negative connections", spec: drPolicy("{connectionPool: {tcp: {maxConnections: -1}}}"), field: "spec.trafficPolicy.connectionPool.tcp.maxConnections", reason: "must not be negative"},
		{name: "connect timeout", spec: drPolicy("{connectionPool: {tcp: {connectTimeout: 0s}}}"), field: "spec.trafficPolicy.connectionPool.tcp.connectTimeout", reason: "at least 1ms"},
		{name: "tcp idle timeout precision", spec: drPolicy("{connectionPool: {tcp: {idleTimeout: 1500us}}}"), field: "spec.trafficPolicy.connectionPool.tcp.idleTimeout", reason: "whole number of milliseconds"},
		{name: "keepalive time", spec: drPolicy("{connectionPool: {tcp: {tcpKeepalive: {time: 0s}}}}"), field: "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time", reason: "at least 1ms"},

		// Load balancing.
		{name: "cookie without name", spec: drPolicy("{loadBalancer: {consistentHash: {httpCookie: {ttl: 10s}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", reason: "required"},
		{name: "cookie ttl", spec: drPolicy("{loadBalancer: {consistentHash: {httpCookie: {name: a, ttl: -1s}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl", reason: "non-negative"},
		{name: "hash header", spec: drPolicy("{loadBalancer: {consistentHash: {httpHeaderName: 'x y'}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName", reason: "invalid header name"},
		{name: "hash query parameter", spec: drPolicy("{loadBalancer: {consistentHash: {httpQueryParameterName: ''}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.httpQueryParameterName", reason: "must not be empty"},
		{name: "no hash key", spec: drPolicy("{loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 64}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash", reason: "no hash key", warn: true},
		{name: "deprecated ring size", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 64}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", reason: "deprecated", warn: true},
		{name: "ring size and maglev", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 64, maglev: {tableSize: 7}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", reason: "cannot be set together"},
		{name: "ring too big", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 9000000}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize", reason: "at most"},
		{name: "maglev size missing", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", reason: "required"},
		{name: "maglev not prime", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", reason: "not a prime"},
		{name: "maglev too big", spec: drPolicy("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}}}"), field: "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", reason: "less than 5000011"},
		{name: "distribute and failover", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 100}}], failover: [{from: a, to: b}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting", reason: "cannot both be set"},
		{name: "distribute total", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 50, c: 40}}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", reason: "add up to 90"},
		{name: "distribute weight", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 0, c: 100}}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to[b]", reason: "between 1 and 100"},
		{name: "locality wildcard", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: 'a/*/c', to: {b: 100}}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute", reason: "only appear once, at the end"},
		{name: "locality overlap", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 100}}, {from: a/z, to: {b: 100}}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute", reason: `"a/z" overlaps`},
		{name: "locality empty zone", spec: drPolicy("{loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {'b//c': 100}}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", reason: "empty region, zone or subzone"},
		{name: "failover same region", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}, outlierDetection: {interval: 1s}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]", reason: "different regions"},
		{name: "failover zone", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: a/z, to: b}]}}, outlierDetection: {interval: 1s}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]", reason: "between regions"},
		{name: "failover wildcard", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: a, to: '*'}]}}, outlierDetection: {interval: 1s}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]", reason: "wildcard"},
		{name: "failover priority label", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], failoverPriority: [topology.kubernetes.io/zone]}}, outlierDetection: {interval: 1s}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]", reason: "cannot be used together with failover"},
		{name: "failover without outlier detection", spec: drPolicy("{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}}"), field: "spec.trafficPolicy.loadBalancer.localityLbSetting", reason: "outlierDetection", warn: true},
		{name: "warmup duration", spec: drPolicy("{loadBalancer: {warmup: {minimumPercent: 10}}}"), field: "spec.trafficPolicy.loadBalancer.warmup.duration", reason: "required"},
		{name: "warmup percent", spec: drPolicy("{loadBalancer: {warmup: {duration: 1s, minimumPercent: 150}}}"), field: "spec.trafficPolicy.loadBalancer.warmup.minimumPercent", reason: "between 0 and 100"},
		{name: "warmup aggression", spec: drPolicy("{loadBalancer: {warmup: {duration: 1s, aggression: 0.5}}}"), field: "spec.trafficPolicy.loadBalancer.warmup.aggression", reason: "at least 1"},

		// Client TLS.
		{name: "mutual without certificate", spec: drPolicy("{tls: {mode: MUTUAL, privateKey: /k.pem}}"), field: "spec.trafficPolicy.tls.clientCertificate", reason: "required for MUTUAL TLS"},
		{name: "mutual without key", spec: drPolicy("{tls: {mode: MUTUAL, clientCertificate: /c.pem}}"), field: "spec.trafficPolicy.tls.privateKey", reason: "required for MUTUAL TLS"},
		{name: "credential and files", spec: drPolicy("{tls: {mode: SIMPLE, credentialName: a, caCertificates: /ca.pem}}"), field: "spec.trafficPolicy.tls.credentialName", reason: "cannot be set together with credentialName"},
		{name: "insecure with CA", spec: drPolicy("{tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}"), field: "spec.trafficPolicy.tls.insecureSkipVerify", reason: "cannot be set when insecureSkipVerify"},
		{name: "insecure mutual with SANs", spec: drPolicy("{tls: {mode: MUTUAL, insecureSkipVerify: true, credentialName: c, subjectAltNames: [a]}}"), field: "spec.trafficPolicy.tls.insecureSkipVerify", reason: "cannot be set when insecureSkipVerify"},

		// Port level settings.
		{name: "port missing", spec: drPolicy("{portLevelSettings: [{tls: {mode: SIMPLE}}]}"), field: "spec.trafficPolicy.portLevelSettings[0].port", reason: "required"},
		{name: "port zero", spec: drPolicy("{portLevelSettings: [{port: {number: 0}, tls: {mode: SIMPLE}}]}"), field: "spec.trafficPolicy.portLevelSettings[0].port.number", reason: "1..65535"},
		{name: "port policy empty", spec: drPolicy("{portLevelSettings: [{port: {number: 80}}]}"), field: "spec.trafficPolicy.portLevelSettings[0]", reason: "at least one of"},
		{name: "port policy invalid", spec: drPolicy("{portLevelSettings: [{port: {number: 80}, outlierDetection: {maxEjectionPercent: 200}}]}"), field: "spec.trafficPolicy.portLevelSettings[0].outlierDetection.maxEjectionPercent", reason: "between 0 and 100"},
		{name: "port duplicate", spec: drPolicy("{portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE}}, {port: {number: 80}, tls: {mode: DISABLE}}]}"), field: "spec.trafficPolicy.portLevelSettings[1].port.number", reason: "already configured by portLevelSettings[0]", warn: true},

		// exportTo and selectors.
		{name: "selector exported elsewhere", spec: "{host: a, exportTo: [other], workloadSelector: {matchLabels: {app: a}}, trafficPolicy: {tls: {mode: DISABLE}}}", field: "spec.exportTo", reason: "beyond its own namespace"},
		{name: "selector exported twice", spec: "{host: a, exportTo: ['.', other], workloadSelector: {matchLabels: {app: a}}, trafficPolicy: {tls: {mode: DISABLE}}}", field: "spec.exportTo", reason: "several exportTo entries"},
		{name: "selector wildcard", spec: "{host: a, workloadSelector: {matchLabels: {app: '*'}}, trafficPolicy: {tls: {mode: DISABLE}}}", field: "spec.workloadSelector.matchLabels[app]", reason: "wildcard is not supported"},
		{name: "selector empty", spec: "{host: a, workloadSelector: {}, trafficPolicy: {tls: {mode: DISABLE}}}", field: "spec.workloadSelector", reason: "selects every workload", warn: true},
	})
}
