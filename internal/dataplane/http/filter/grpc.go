package filter

import (
	"net/http"
	"strings"
)

// IsGRPC reports whether a content type is gRPC's ("application/grpc",
// optionally followed by '+' or ';'), as Envoy's
// Grpc::Common::isGrpcRequestHeaders.
func IsGRPC(contentType string) bool {
	const ct = "application/grpc"
	if !strings.HasPrefix(contentType, ct) {
		return false
	}
	return len(contentType) == len(ct) || contentType[len(ct)] == '+' || contentType[len(ct)] == ';'
}

// gRPC status codes the proxy produces.
const (
	GRPCUnknown          = 2
	GRPCPermissionDenied = 7
	GRPCUnimplemented    = 12
	GRPCInternal         = 13
	GRPCUnavailable      = 14
	GRPCUnauthenticated  = 16
)

// GRPCStatusFor maps an HTTP status to the gRPC status of a local reply,
// as Envoy's Grpc::Utility::httpToGrpcStatus.
func GRPCStatusFor(httpStatus int) int {
	switch httpStatus {
	case http.StatusBadRequest:
		return GRPCInternal
	case http.StatusUnauthorized:
		return GRPCUnauthenticated
	case http.StatusForbidden:
		return GRPCPermissionDenied
	case http.StatusNotFound:
		return GRPCUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return GRPCUnavailable
	}
	return GRPCUnknown
}

// grpcMessage percent-encodes a grpc-message value (gRPC's wire format:
// bytes outside printable ASCII, and '%', are escaped).
func grpcMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}
