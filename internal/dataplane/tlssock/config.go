package tlssock

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Type URLs of the TLS transport socket's configurations.
const (
	DownstreamType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	UpstreamType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	// Name is the transport socket's name.
	Name = "envoy.transport_sockets.tls"
)

// common is a compiled CommonTlsContext.
type common struct {
	// certName is the SDS name of the own certificate, "" for none.
	certName string
	// validation is nil when the peer is not verified.
	validation *validation
	alpn       []string
	minVersion uint16
	maxVersion uint16
	ciphers    []uint16 // nil: Go's defaults
}

// validation is a compiled certificate validation context.
type validation struct {
	rootsName string
	sans      []sanMatcher
}

func compileCommon(c *tlsv3.CommonTlsContext) (*common, error) {
	out := &common{alpn: append([]string(nil), c.GetAlpnProtocols()...)}
	switch {
	case len(c.GetTlsCertificates()) > 0:
		return nil, errors.New("tls_certificates: inline certificates are not supported (use tls_certificate_sds_secret_configs)")
	case c.GetTlsCertificateProviderInstance() != nil || c.GetTlsCertificateCertificateProvider() != nil || c.GetTlsCertificateCertificateProviderInstance() != nil:
		return nil, errors.New("tls_certificate_provider_instance: certificate providers are not supported")
	case c.GetCustomTlsCertificateSelector() != nil:
		return nil, errors.New("custom_tls_certificate_selector is not supported")
	case c.GetCustomHandshaker() != nil:
		return nil, errors.New("custom_handshaker is not supported")
	case c.GetKeyLog() != nil:
		return nil, errors.New("key_log is not supported")
	}
	for i, p := range out.alpn {
		if p == "" || len(p) > 255 {
			return nil, fmt.Errorf("alpn_protocols[%d]: %q is not a valid protocol name", i, p)
		}
	}
	switch sds := c.GetTlsCertificateSdsSecretConfigs(); len(sds) {
	case 0:
	case 1:
		if sds[0].GetName() == "" {
			return nil, errors.New("tls_certificate_sds_secret_configs[0]: name is required")
		}
		out.certName = sds[0].GetName()
	default:
		return nil, errors.New("tls_certificate_sds_secret_configs: only one certificate is supported")
	}
	var err error
	if out.validation, err = compileValidation(c); err != nil {
		return nil, err
	}
	if err := out.compileParams(c.GetTlsParams()); err != nil {
		return nil, fmt.Errorf("tls_params: %w", err)
	}
	return out, nil
}

func compileValidation(c *tlsv3.CommonTlsContext) (*validation, error) {
	switch vc := c.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if vc.ValidationContextSdsSecretConfig.GetName() == "" {
			return nil, errors.New("validation_context_sds_secret_config: name is required")
		}
		return &validation{rootsName: vc.ValidationContextSdsSecretConfig.GetName()}, nil
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		cv := vc.CombinedValidationContext
		name := cv.GetValidationContextSdsSecretConfig().GetName()
		if name == "" {
			return nil, errors.New("combined_validation_context.validation_context_sds_secret_config: name is required")
		}
		if cv.GetValidationContextCertificateProviderInstance() != nil || cv.GetValidationContextCertificateProvider() != nil {
			return nil, errors.New("combined_validation_context: certificate providers are not supported")
		}
		v := &validation{rootsName: name}
		if d := cv.GetDefaultValidationContext(); d != nil {
			sans, err := compileDefaultValidation(d)
			if err != nil {
				return nil, fmt.Errorf("combined_validation_context.default_validation_context: %w", err)
			}
			v.sans = sans
		}
		return v, nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		return nil, errors.New("validation_context: inline trust bundles are not supported (use validation_context_sds_secret_config or combined_validation_context)")
	default:
		return nil, fmt.Errorf("%T: certificate providers are not supported", vc)
	}
}

// compileDefaultValidation reads the parts of a CertificateValidationContext
// that may accompany an SDS trust bundle: the SAN matchers.
func compileDefaultValidation(d *tlsv3.CertificateValidationContext) ([]sanMatcher, error) {
	switch {
	case d.GetTrustedCa() != nil || d.GetCaCertificateProviderInstance() != nil || d.GetSystemRootCerts() != nil:
		return nil, errors.New("trusted_ca: a trust bundle here is not supported (the SDS secret is the bundle)")
	case len(d.GetVerifyCertificateSpki()) > 0:
		return nil, errors.New("verify_certificate_spki is not supported")
	case len(d.GetVerifyCertificateHash()) > 0:
		return nil, errors.New("verify_certificate_hash is not supported")
	case d.GetCrl() != nil:
		return nil, errors.New("crl is not supported")
	case d.GetAllowExpiredCertificate():
		return nil, errors.New("allow_expired_certificate is not supported")
	case d.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN:
		return nil, fmt.Errorf("trust_chain_verification %s is not supported", d.GetTrustChainVerification())
	case d.GetCustomValidatorConfig() != nil:
		return nil, errors.New("custom_validator_config is not supported")
	case d.GetRequireSignedCertificateTimestamp().GetValue():
		return nil, errors.New("require_signed_certificate_timestamp is not supported")
	case d.GetMaxVerifyDepth() != nil:
		return nil, errors.New("max_verify_depth is not supported")
	}
	var out []sanMatcher
	for i, m := range d.GetMatchTypedSubjectAltNames() {
		sm, err := compileTypedSAN(m)
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d]: %w", i, err)
		}
		out = append(out, sm)
	}
	for i, m := range d.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated, still honoured
		sm, err := compileStringMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		out = append(out, sanMatcher{kind: sanAny, match: sm})
	}
	return out, nil
}

func (out *common) compileParams(p *tlsv3.TlsParameters) error {
	var err error
	if out.minVersion, err = tlsVersion(p.GetTlsMinimumProtocolVersion(), tls.VersionTLS12); err != nil {
		return fmt.Errorf("tls_minimum_protocol_version: %w", err)
	}
	if out.maxVersion, err = tlsVersion(p.GetTlsMaximumProtocolVersion(), tls.VersionTLS13); err != nil {
		return fmt.Errorf("tls_maximum_protocol_version: %w", err)
	}
	if out.minVersion > out.maxVersion {
		return fmt.Errorf("tls_minimum_protocol_version %s is above tls_maximum_protocol_version %s",
			p.GetTlsMinimumProtocolVersion(), p.GetTlsMaximumProtocolVersion())
	}
	switch {
	case len(p.GetEcdhCurves()) > 0:
		return errors.New("ecdh_curves is not supported")
	case len(p.GetSignatureAlgorithms()) > 0:
		return errors.New("signature_algorithms is not supported")
	case len(p.GetCompliancePolicies()) > 0:
		return errors.New("compliance_policies is not supported")
	}
	if out.ciphers, err = cipherSuites(p.GetCipherSuites()); err != nil {
		return fmt.Errorf("cipher_suites: %w", err)
	}
	return nil
}

func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, auto uint16) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return auto, nil
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10, nil
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unknown protocol version %d", v)
}

// openSSLCiphers maps the OpenSSL names Envoy takes to crypto/tls suites
// (TLS 1.2 and below; TLS 1.3 suites are not configurable).
var openSSLCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// cipherSuites maps an Envoy cipher list; BoringSSL's equal-preference
// groups "[A|B]" are flattened in order.
func cipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var out []uint16
	for i, n := range names {
		group := n
		if strings.HasPrefix(n, "[") && strings.HasSuffix(n, "]") {
			group = n[1 : len(n)-1]
		}
		for _, name := range strings.Split(group, "|") {
			id, ok := openSSLCiphers[strings.TrimSpace(name)]
			if !ok {
				return nil, fmt.Errorf("[%d]: unknown or unsupported cipher suite %q", i, name)
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// baseConfig is the part of a tls.Config both sides share.
func (c *common) baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   c.minVersion,
		MaxVersion:   c.maxVersion,
		CipherSuites: c.ciphers,
	}
}
