package validation

import (
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func validateSidecar(r *report, p fieldPath, namespace string, sc *networking.Sidecar) {
	if ws := sc.WorkloadSelector; ws != nil {
		validateSelectorLabels(r, p.child("workloadSelector").child("labels"), ws.Labels)
		if len(ws.Labels) == 0 {
			r.warnf(p.child("workloadSelector"), "workload selector without labels applies the sidecar to every workload in the namespace")
		}
	}
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		r.errorf(p, "empty sidecar: set at least one of egress, ingress, outboundTrafficPolicy or inboundConnectionPool")
	}

	ports := make(map[uint32]bool)
	for i, in := range sc.Ingress {
		ip := p.child("ingress").index(i)
		if in == nil {
			r.errorf(ip, "must not be null")
			continue
		}
		if in.Port == nil {
			r.errorf(ip.child("port"), "required")
			continue
		}
		validateSidecarPort(r, ip.child("port"), in.Port, false)
		if in.Bind != "" {
			r.check(ip.child("bind"), ipProblem(in.Bind))
		}
		if ports[in.Port.Number] {
			r.errorf(ip.child("port").child("number"), "port %d is used by another ingress listener", in.Port.Number)
		}
		ports[in.Port.Number] = true
		if in.DefaultEndpoint != "" {
			validateDefaultEndpoint(r, ip.child("defaultEndpoint"), in.DefaultEndpoint)
		}
		if t := in.Tls; t != nil {
			tp := ip.child("tls")
			for _, f := range []struct {
				name string
				set  bool
			}{
				{"subjectAltNames", len(t.SubjectAltNames) > 0}, {"httpsRedirect", t.HttpsRedirect},
				{"credentialName", t.CredentialName != ""}, {"credentialNames", len(t.CredentialNames) > 0},
				{"tlsCertificates", len(t.TlsCertificates) > 0},
			} {
				if f.set {
					r.errorf(tp.child(f.name), "not supported on sidecar ingress listeners")
				}
			}
			if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				r.errorf(tp.child("mode"), "%s is not supported on sidecar ingress listeners", t.Mode)
			}
			if !parseProtocol(in.Port.Protocol).isTLS() {
				r.errorf(tp, "only HTTPS and TLS ports can have TLS settings")
			}
			validateServerTLS(r, tp, t)
		}
		validateConnectionPool(r, ip.child("connectionPool"), in.ConnectionPool)
		if in.ConnectionPool.GetHttp() != nil && !parseProtocol(in.Port.Protocol).isHTTP() {
			r.warnf(ip.child("connectionPool").child("http"), "port %d is not HTTP; only the TCP settings apply", in.Port.Number)
		}
	}
	validateConnectionPool(r, p.child("inboundConnectionPool"), sc.InboundConnectionPool)

	ports = make(map[uint32]bool)
	sockets := make(map[string]bool)
	catchAll := -1
	for i, eg := range sc.Egress {
		ep := p.child("egress").index(i)
		if eg == nil {
			r.errorf(ep, "must not be null")
			continue
		}
		if eg.Port == nil {
			switch {
			case catchAll >= 0:
				r.errorf(ep.child("port"), "only one egress listener may omit the port (egress[%d] already does)", catchAll)
			case i != len(sc.Egress)-1:
				r.errorf(ep.child("port"), "the egress listener without a port must be the last one")
			}
			catchAll = i
		} else {
			validateSidecarPort(r, ep.child("port"), eg.Port, true)
			if eg.Port.Number == 0 {
				if !strings.HasPrefix(eg.Bind, unixPrefix) {
					r.errorf(ep.child("bind"), "a listener with port 0 must bind to a unix domain socket (unix://path)")
				} else {
					r.check(ep.child("bind"), unixAddressProblem(strings.TrimPrefix(eg.Bind, unixPrefix)))
				}
				if eg.CaptureMode != networking.CaptureMode_DEFAULT && eg.CaptureMode != networking.CaptureMode_NONE {
					r.errorf(ep.child("captureMode"), "must be DEFAULT or NONE for unix domain socket listeners")
				}
				if sockets[eg.Bind] {
					r.errorf(ep.child("bind"), "unix domain socket %q is used by another listener", eg.Bind)
				}
				sockets[eg.Bind] = true
			} else {
				if eg.Bind != "" {
					r.check(ep.child("bind"), ipProblem(eg.Bind))
				}
				if ports[eg.Port.Number] {
					r.errorf(ep.child("port").child("number"), "port %d is used by another egress listener", eg.Port.Number)
				}
				ports[eg.Port.Number] = true
			}
		}
		validateEgressHosts(r, ep.child("hosts"), namespace, eg.Hosts)
	}
	if tp := sc.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		pp := p.child("outboundTrafficPolicy").child("egressProxy")
		if tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY {
			r.errorf(pp, "egressProxy requires mode ALLOW_ANY")
		}
		r.check(pp.child("host"), fqdnProblem(tp.EgressProxy.Host))
		if tp.EgressProxy.Port == nil {
			r.errorf(pp.child("port"), "required")
		}
		validateDestination(r, pp, tp.EgressProxy)
	}
}

// validateSidecarPort checks the port of a sidecar listener. Egress
// listeners may use port 0 with a unix domain socket.
func validateSidecarPort(r *report, p fieldPath, port *networking.SidecarPort, egress bool) {
	if port.Name != "" {
		r.check(p.child("name"), portNameProblem(port.Name))
	}
	r.check(p.child("protocol"), protocolProblem(port.Protocol))
	if !egress || port.Number != 0 {
		r.check(p.child("number"), portProblem(port.Number))
	}
	if port.TargetPort > 0 { //nolint:staticcheck // deprecated but still served
		r.errorf(p.child("targetPort"), "has no effect on sidecars")
	}
}

// validateDefaultEndpoint checks where an ingress listener forwards:
// 127.0.0.1:port, 0.0.0.0:port, [::1]:port, [::]:port, :port or unix://path.
func validateDefaultEndpoint(r *report, p fieldPath, ep string) {
	if path, ok := strings.CutPrefix(ep, unixPrefix); ok {
		r.check(p, unixAddressProblem(path))
		return
	}
	const form = "want 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>"
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		r.errorf(p, "invalid endpoint %q: %s", ep, form)
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		r.errorf(p, "invalid endpoint host %q: %s", host, form)
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		r.errorf(p, "invalid endpoint port %q: not a number", port)
		return
	}
	r.check(p, portProblem(uint32(n)))
}

// validateEgressHosts checks "namespace/host" entries and warns about
// entries that other entries already cover.
func validateEgressHosts(r *report, p fieldPath, namespace string, hosts []string) {
	if len(hosts) == 0 {
		r.errorf(p, "at least one host is required")
		return
	}
	byNamespace := map[string]map[string]bool{}
	for i, h := range hosts {
		hp := p.index(i)
		for _, problem := range namespacedHostProblems(h, false) {
			r.errorf(hp, "%s", problem)
		}
		ns, name, ok := strings.Cut(h, "/")
		if !ok {
			continue
		}
		if ns == "." {
			ns = namespace
		}
		names := byNamespace[ns]
		if names == nil {
			names = map[string]bool{}
			byNamespace[ns] = names
		}
		if names[name] || names["*"] || name == "*" && len(names) > 0 {
			r.warnf(hp, "duplicate egress host %q", h)
		}
		names[name] = true
	}
	if byNamespace["*"]["*"] && len(byNamespace) > 1 {
		r.warnf(p, "\"*/*\" selects everything; the other hosts are redundant")
	}
}
