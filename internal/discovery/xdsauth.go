package discovery

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	caserver "github.com/trellismesh/trellis/internal/ca/server"
	"github.com/trellismesh/trellis/internal/model"
)

// meshAuth authenticates ADS streams on the secure port: the caller must
// present a mesh certificate, verified as the CA verifies renewals
// (caserver.CertAuthenticator: chain to the current trust bundle, one
// SPIFFE URI SAN, CA:FALSE, the CA's trust domain). The proxy is then
// served as that identity: node metadata that names another namespace or
// service account is refused, and the model proxy's Namespace and
// ServiceAccount are the certificate's.
type meshAuth struct {
	cert caserver.CertAuthenticator
}

func (a meshAuth) authenticate(ctx context.Context, proxy *model.Proxy) error {
	p, ok := peer.FromContext(ctx)
	var ti credentials.TLSInfo
	if ok {
		ti, ok = p.AuthInfo.(credentials.TLSInfo)
	}
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return status.Error(codes.Unauthenticated, "xDS on the secure port requires a mesh client certificate (use the plaintext xDS port without one)")
	}
	id, err := a.cert.Authenticate(ctx, caserver.Credentials{PeerCertificates: ti.State.PeerCertificates, RemoteAddr: p.Addr})
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "client certificate not accepted: %v", err)
	}
	if proxy.Namespace != id.Namespace {
		return status.Errorf(codes.PermissionDenied, "node claims namespace %q but the client certificate is %s", proxy.Namespace, id)
	}
	if sa := proxy.Metadata[model.MetaServiceAccount]; sa != "" && sa != id.ServiceAccount {
		return status.Errorf(codes.PermissionDenied, "node metadata %s %q does not match the client certificate %s", model.MetaServiceAccount, sa, id)
	}
	proxy.ServiceAccount = id.ServiceAccount
	return nil
}
