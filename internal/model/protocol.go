package model

import "strings"

// Protocol is an application protocol as Istio names it on ports.
type Protocol string

// Protocols Istio knows. Unsupported means "not declared": traffic is sniffed.
const (
	ProtocolGRPC        Protocol = "GRPC"
	ProtocolGRPCWeb     Protocol = "GRPC-Web"
	ProtocolHTTP        Protocol = "HTTP"
	ProtocolHTTP10      Protocol = "HTTP_1_0"
	ProtocolHTTP2       Protocol = "HTTP2"
	ProtocolHTTPS       Protocol = "HTTPS"
	ProtocolTCP         Protocol = "TCP"
	ProtocolTLS         Protocol = "TLS"
	ProtocolUDP         Protocol = "UDP"
	ProtocolMongo       Protocol = "Mongo"
	ProtocolRedis       Protocol = "Redis"
	ProtocolMySQL       Protocol = "MySQL"
	ProtocolThrift      Protocol = "Thrift"
	ProtocolUnsupported Protocol = "UnsupportedProtocol"
)

// ParseProtocol maps a protocol name (case-insensitive) to a Protocol, or
// ProtocolUnsupported.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "tcp":
		return ProtocolTCP
	case "udp":
		return ProtocolUDP
	case "grpc":
		return ProtocolGRPC
	case "grpc-web":
		return ProtocolGRPCWeb
	case "http":
		return ProtocolHTTP
	case "http_1_0":
		return ProtocolHTTP10
	case "http2":
		return ProtocolHTTP2
	case "https":
		return ProtocolHTTPS
	case "tls":
		return ProtocolTLS
	case "mongo":
		return ProtocolMongo
	case "redis":
		return ProtocolRedis
	case "mysql":
		return ProtocolMySQL
	case "thrift":
		return ProtocolThrift
	}
	return ProtocolUnsupported
}

// ProtocolFromPortName applies Istio's port naming convention
// (<protocol>[-<suffix>]) as used for Kubernetes Service ports.
func ProtocolFromPortName(name string) Protocol {
	// "grpc-web" contains the separator itself: check it before the prefix.
	if strings.HasPrefix(strings.ToLower(name), "grpc-web") {
		return ProtocolGRPCWeb
	}
	prefix, _, _ := strings.Cut(name, "-")
	return ParseProtocol(prefix)
}

// IsHTTP reports whether the protocol is carried by the HTTP connection manager.
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolHTTP10, ProtocolGRPC, ProtocolGRPCWeb:
		return true
	}
	return false
}

// IsHTTP2 reports whether upstream connections must speak HTTP/2.
func (p Protocol) IsHTTP2() bool {
	return p == ProtocolHTTP2 || p == ProtocolGRPC || p == ProtocolGRPCWeb
}

// IsTCP reports whether the protocol is proxied as opaque TCP.
func (p Protocol) IsTCP() bool {
	switch p {
	case ProtocolTCP, ProtocolHTTPS, ProtocolTLS, ProtocolMongo, ProtocolRedis, ProtocolMySQL, ProtocolThrift:
		return true
	}
	return false
}

// IsTLS reports whether the protocol is TLS from the client (SNI routing).
func (p Protocol) IsTLS() bool { return p == ProtocolHTTPS || p == ProtocolTLS }

// IsUnsupported reports whether the protocol is undeclared (auto-detected).
func (p Protocol) IsUnsupported() bool { return p == ProtocolUnsupported }
