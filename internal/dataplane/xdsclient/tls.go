package xdsclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// MeshTLS returns the credentials of an ADS connection over mutual TLS to
// the control plane's secure port (Istio's discoveryAddress :15012): the
// client certificate is the workload's ("default") and the server is
// verified against the mesh trust bundle ("ROOTCA") for serverName, both
// read from store on every handshake, so a renewed certificate or a
// rotated bundle applies from the next (re)connection.
func MeshTLS(store secrets.Store, serverName string) (credentials.TransportCredentials, error) {
	if store == nil {
		return nil, errors.New("xdsclient: mesh TLS needs a secret store")
	}
	if serverName == "" {
		return nil, errors.New("xdsclient: mesh TLS needs the control plane's server name")
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := store.Certificate(secrets.WorkloadCertificate)
			if err != nil {
				return nil, fmt.Errorf("xDS client certificate: %w", err)
			}
			return c, nil
		},
		// The bundle changes at run time, so crypto/tls' fixed RootCAs
		// cannot verify: VerifyConnection does, with the current one.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(store, serverName, cs)
		},
	}), nil
}

// verifyServer checks the control plane's chain against the current mesh
// bundle and its name, as crypto/tls would with RootCAs and ServerName.
func verifyServer(store secrets.Store, serverName string, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("control plane presented no certificate")
	}
	roots, err := store.Roots(secrets.RootCA)
	if err != nil {
		return fmt.Errorf("verifying the control plane: %w", err)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("verifying the control plane as %q: %w", serverName, err)
	}
	return nil
}
