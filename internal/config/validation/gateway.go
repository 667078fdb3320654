package validation

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func validateGateway(r *report, p fieldPath, gw *networking.Gateway) {
	if len(gw.Servers) == 0 {
		r.errorf(p.child("servers"), "at least one server is required")
	}
	portNames := make(map[string]int)
	for i, s := range gw.Servers {
		sp := p.child("servers").index(i)
		if s == nil {
			r.errorf(sp, "must not be null")
			continue
		}
		validateServer(r, sp, s)
		if s.Port == nil {
			continue
		}
		if first, dup := portNames[s.Port.Name]; dup {
			r.errorf(sp.child("port").child("name"), "port name %q is already used by servers[%d]; port names must be unique", s.Port.Name, first)
		} else {
			portNames[s.Port.Name] = i
		}
		if !parseProtocol(s.Port.Protocol).isHTTP() && s.GetTls().GetHttpsRedirect() {
			r.warnf(sp.child("tls").child("httpsRedirect"), "only has an effect on HTTP servers")
		}
	}
	validateLabels(r, p.child("selector"), gw.Selector, true)
}

func validateServer(r *report, p fieldPath, s *networking.Server) {
	if len(s.Hosts) == 0 {
		r.errorf(p.child("hosts"), "at least one host is required")
	}
	for i, h := range s.Hosts {
		for _, problem := range namespacedHostProblems(h, true) {
			r.errorf(p.child("hosts").index(i), "%s", problem)
		}
	}
	unixBind := strings.HasPrefix(s.Bind, unixPrefix)
	portOK := false
	if port := s.Port; port == nil {
		r.errorf(p.child("port"), "required")
	} else {
		pp := p.child("port")
		portOK = true
		switch {
		case port.Protocol == "":
			r.errorf(pp.child("protocol"), "required")
			portOK = false
		case !r.check(pp.child("protocol"), protocolProblem(port.Protocol)):
			portOK = false
		}
		if port.Number > 0 || !unixBind {
			portOK = r.check(pp.child("number"), portProblem(port.Number)) && portOK
		}
		if port.TargetPort > 0 { //nolint:staticcheck // deprecated but still served
			r.errorf(pp.child("targetPort"), "has no effect on gateways")
		}
		if port.Name == "" {
			r.errorf(pp.child("name"), "required")
			portOK = false
		}
	}
	switch {
	case unixBind:
		r.check(p.child("bind"), unixAddressProblem(strings.TrimPrefix(s.Bind, unixPrefix)))
		if s.Port != nil && s.Port.Number != 0 {
			r.errorf(p.child("port").child("number"), "must be 0 when binding to a unix domain socket")
		}
	case s.Bind != "":
		r.check(p.child("bind"), ipProblem(s.Bind))
	}
	if s.Tls != nil {
		validateServerTLS(r, p.child("tls"), s.Tls)
	}
	if !portOK {
		return
	}
	switch proto := parseProtocol(s.Port.Protocol); {
	case proto.isTLS() && s.Tls == nil:
		r.errorf(p.child("tls"), "required for %s servers", s.Port.Protocol)
	case !proto.isTLS() && s.Tls != nil:
		// A plain HTTP server may only ask for a redirect to HTTPS.
		passthrough := s.Tls.Mode == networking.ServerTLSSettings_PASSTHROUGH || s.Tls.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
		switch {
		case !proto.isHTTP():
			r.errorf(p.child("tls"), "only HTTPS and TLS servers can have TLS settings")
		case !passthrough || s.Tls.CaCertificates != "" || s.Tls.PrivateKey != "" || s.Tls.ServerCertificate != "":
			r.errorf(p.child("tls"), "a plain text HTTP server can only set httpsRedirect")
		}
	}
}

// cipherSuites are the cipher suite names Envoy (BoringSSL) accepts.
var cipherSuites = map[string]bool{
	"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-RSA-AES128-GCM-SHA256": true,
	"ECDHE-ECDSA-AES256-GCM-SHA384": true, "ECDHE-RSA-AES256-GCM-SHA384": true,
	"ECDHE-ECDSA-CHACHA20-POLY1305": true, "ECDHE-RSA-CHACHA20-POLY1305": true,
	"ECDHE-ECDSA-AES128-SHA": true, "ECDHE-RSA-AES128-SHA": true,
	"ECDHE-ECDSA-AES256-SHA": true, "ECDHE-RSA-AES256-SHA": true,
	"AES128-GCM-SHA256": true, "AES256-GCM-SHA384": true, "AES128-SHA": true, "AES256-SHA": true,
	"DES-CBC3-SHA": true,
}

// validCipherSuite accepts known names, "ALL", and expressions starting
// with an operator ("-", "+", "!", "[") that are not parsed here.
func validCipherSuite(cs string) bool {
	if cs == "" || cs == "ALL" || cipherSuites[cs] {
		return true
	}
	c := cs[0]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
}

// validateServerTLS checks the TLS settings of a Gateway server or a
// Sidecar ingress listener.
func validateServerTLS(r *report, p fieldPath, t *networking.ServerTLSSettings) {
	if (t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) && len(t.CipherSuites) == 0 {
		r.warnf(p.child("minProtocolVersion"), "TLS versions below 1.2 need cipherSuites that support them; the default suites do not")
	}
	seen := make(map[string]bool)
	for i, cs := range t.CipherSuites {
		cp := p.child("cipherSuites").index(i)
		switch {
		case !validCipherSuite(cs):
			r.warnf(cp, "unknown cipher suite %q is ignored", cs)
		case seen[cs]:
			r.warnf(cp, "duplicate cipher suite %q is ignored", cs)
		}
		seen[cs] = true
	}
	if len(t.CredentialNames) > 2 {
		r.errorf(p.child("credentialNames"), "at most 2 credentials may be given")
	}
	if len(t.TlsCertificates) > 2 {
		r.errorf(p.child("tlsCertificates"), "at most 2 certificates may be given")
	}
	if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		// The mesh certificates are used; nothing else may be given.
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"serverCertificate", t.ServerCertificate != ""}, {"privateKey", t.PrivateKey != ""},
			{"caCertificates", t.CaCertificates != ""}, {"tlsCertificates", len(t.TlsCertificates) > 0},
			{"credentialName", t.CredentialName != ""}, {"credentialNames", len(t.CredentialNames) > 0},
		} {
			if f.set {
				r.errorf(p.child(f.name), "cannot be set in ISTIO_MUTUAL mode")
			}
		}
		return
	}
	if t.Mode == networking.ServerTLSSettings_PASSTHROUGH || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		if t.CaCrl != "" || t.ServerCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" ||
			len(t.TlsCertificates) > 0 || t.CredentialName != "" || len(t.CredentialNames) > 0 {
			r.warnf(p, "%s mode does not use certificates; they are ignored", t.Mode)
		}
	}
	sources := 0
	for _, set := range []bool{t.ServerCertificate != "" && t.PrivateKey != "", t.CredentialName != "", len(t.CredentialNames) > 0, len(t.TlsCertificates) > 0} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		r.errorf(p, "only one of credentialName, credentialNames, serverCertificate/privateKey or tlsCertificates may be set")
	}
	terminating := t.Mode == networking.ServerTLSSettings_SIMPLE || t.Mode == networking.ServerTLSSettings_MUTUAL ||
		t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if terminating && t.CredentialName == "" && len(t.CredentialNames) == 0 {
		mutual := t.Mode != networking.ServerTLSSettings_SIMPLE
		if mutual && t.CaCertificates == "" {
			r.errorf(p.child("caCertificates"), "required for %s TLS (or set credentialName)", t.Mode)
		}
		if len(t.TlsCertificates) > 0 {
			for i, c := range t.TlsCertificates {
				cp := p.child("tlsCertificates").index(i)
				if c.GetServerCertificate() == "" {
					r.errorf(cp.child("serverCertificate"), "required")
				}
				if c.GetPrivateKey() == "" {
					r.errorf(cp.child("privateKey"), "required")
				}
			}
		} else {
			if t.ServerCertificate == "" {
				r.errorf(p.child("serverCertificate"), "required for %s TLS (or set credentialName)", t.Mode)
			}
			if t.PrivateKey == "" {
				r.errorf(p.child("privateKey"), "required for %s TLS (or set credentialName)", t.Mode)
			}
		}
	}
	if t.CaCrl != "" {
		if t.CredentialName != "" {
			r.errorf(p.child("caCrl"), "cannot be set with credentialName; put the CRL in the credential")
		}
		if t.Mode == networking.ServerTLSSettings_SIMPLE {
			r.errorf(p.child("caCrl"), "has no effect in SIMPLE mode, which does not verify clients")
		}
	}
}
