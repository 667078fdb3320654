package model

import "testing"

func TestParseProtocol(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Protocol
	}{
		{"tcp", ProtocolTCP},
		{"TCP", ProtocolTCP},
		{"udp", ProtocolUDP},
		{"grpc", ProtocolGRPC},
		{"GRPC", ProtocolGRPC},
		{"grpc-web", ProtocolGRPCWeb},
		{"GRPC-Web", ProtocolGRPCWeb},
		{"http", ProtocolHTTP},
		{"Http", ProtocolHTTP},
		{"http_1_0", ProtocolHTTP10},
		{"HTTP_1_0", ProtocolHTTP10},
		{"http2", ProtocolHTTP2},
		{"HTTP2", ProtocolHTTP2},
		{"https", ProtocolHTTPS},
		{"tls", ProtocolTLS},
		{"mongo", ProtocolMongo},
		{"Redis", ProtocolRedis},
		{"mysql", ProtocolMySQL},
		{"thrift", ProtocolThrift},
		{"", ProtocolUnsupported},
		{"h2", ProtocolUnsupported},
		{"http-foo", ProtocolUnsupported}, // a name, not a protocol
		{"UnsupportedProtocol", ProtocolUnsupported},
	} {
		if got := ParseProtocol(tc.in); got != tc.want {
			t.Errorf("ParseProtocol(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProtocolFromPortName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Protocol
	}{
		{"http", ProtocolHTTP},
		{"http-foo", ProtocolHTTP},
		{"HTTP-Foo", ProtocolHTTP},
		{"http-", ProtocolHTTP},
		{"http2-api", ProtocolHTTP2},
		{"https-443", ProtocolHTTPS},
		{"grpc", ProtocolGRPC},
		{"grpc-api", ProtocolGRPC},
		{"grpc-web", ProtocolGRPCWeb},
		{"grpc-web-ui", ProtocolGRPCWeb},
		{"GRPC-WEB", ProtocolGRPCWeb},
		{"tcp", ProtocolTCP},
		{"tcp-db", ProtocolTCP},
		{"tls-passthrough", ProtocolTLS},
		{"mongo", ProtocolMongo},
		{"redis-cache", ProtocolRedis},
		{"mysql-primary", ProtocolMySQL},
		{"thrift-rpc", ProtocolThrift},
		{"udp-dns", ProtocolUDP},
		{"", ProtocolUnsupported},
		{"web", ProtocolUnsupported},
		{"httpfoo", ProtocolUnsupported},  // no separator: the whole name is the prefix
		{"foo-http", ProtocolUnsupported}, // the protocol must be the prefix
		{"-http", ProtocolUnsupported},
	} {
		if got := ProtocolFromPortName(tc.name); got != tc.want {
			t.Errorf("ProtocolFromPortName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProtocolPredicates(t *testing.T) {
	type preds struct{ http, http2, tcp, tls, unsupported bool }
	for _, tc := range []struct {
		p    Protocol
		want preds
	}{
		{ProtocolHTTP, preds{http: true}},
		{ProtocolHTTP10, preds{http: true}},
		{ProtocolHTTP2, preds{http: true, http2: true}},
		{ProtocolGRPC, preds{http: true, http2: true}},
		{ProtocolGRPCWeb, preds{http: true, http2: true}},
		{ProtocolHTTPS, preds{tcp: true, tls: true}},
		{ProtocolTLS, preds{tcp: true, tls: true}},
		{ProtocolTCP, preds{tcp: true}},
		{ProtocolMongo, preds{tcp: true}},
		{ProtocolRedis, preds{tcp: true}},
		{ProtocolMySQL, preds{tcp: true}},
		{ProtocolThrift, preds{tcp: true}},
		{ProtocolUDP, preds{}},
		{ProtocolUnsupported, preds{unsupported: true}},
	} {
		got := preds{tc.p.IsHTTP(), tc.p.IsHTTP2(), tc.p.IsTCP(), tc.p.IsTLS(), tc.p.IsUnsupported()}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.p, got, tc.want)
		}
	}
}
