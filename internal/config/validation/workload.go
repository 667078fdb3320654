package validation

import (
	"regexp"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Limits from Istio's WorkloadEntry CRD schema.
const (
	maxServiceAccountLength = 253
	maxLocalityLength       = 2048
	maxNetworkLength        = 2048
	maxWorkloadPorts        = 128
)

// validateWorkloadEntry checks a WorkloadEntry, or an endpoint of a
// ServiceEntry. servicePorts, when not nil, are the port names of the
// ServiceEntry; allowFQDN says whether the address may be a hostname (DNS
// resolution) rather than an IP.
func validateWorkloadEntry(r *report, p fieldPath, we *networking.WorkloadEntry, servicePorts map[string]bool, allowFQDN bool) {
	ap := p.child("address")
	addr := we.Address
	unix := strings.HasPrefix(addr, unixPrefix)
	switch {
	case addr == "" && we.Network == "":
		r.errorf(ap, "required (unless network is set)")
	case addr == "":
		r.warnf(ap, "address is unset; the workload is reachable only through the gateway of network %q", we.Network)
	case unix:
		r.check(ap, unixAddressProblem(strings.TrimPrefix(addr, unixPrefix)))
		if len(we.Ports) > 0 {
			r.errorf(p.child("ports"), "a unix domain socket endpoint cannot have ports")
		}
		if servicePorts != nil && len(servicePorts) != 1 {
			r.errorf(ap, "a unix domain socket endpoint needs a service with exactly one port")
		}
	case len(addr) > 256:
		r.errorf(ap, "address is too long (%d characters, limit 256)", len(addr))
	case isIP(addr):
	case !allowFQDN:
		r.errorf(ap, "%q is not a valid IP address", addr)
	case fqdnProblem(addr) != "":
		r.errorf(ap, "%q is not a valid IP address or hostname", addr)
	}
	if len(we.Ports) > maxWorkloadPorts {
		r.errorf(p.child("ports"), "too many ports (%d, limit %d)", len(we.Ports), maxWorkloadPorts)
	}
	for _, name := range sortedKeys(we.Ports) {
		pp := p.child("ports").key(name)
		if servicePorts != nil && !servicePorts[name] {
			r.errorf(pp, "port %q is not defined by the service entry", name)
		}
		r.check(pp, portNameProblem(name))
		r.check(pp, portProblem(we.Ports[name]))
	}
	validateLabels(r, p.child("labels"), we.Labels, false)
	if len(we.ServiceAccount) > maxServiceAccountLength {
		r.errorf(p.child("serviceAccount"), "too long (%d characters, limit %d)", len(we.ServiceAccount), maxServiceAccountLength)
	}
	if len(we.Locality) > maxLocalityLength {
		r.errorf(p.child("locality"), "too long (%d characters, limit %d)", len(we.Locality), maxLocalityLength)
	}
	if len(we.Network) > maxNetworkLength {
		r.errorf(p.child("network"), "too long (%d characters, limit %d)", len(we.Network), maxNetworkLength)
	}
}

// probeHeaderRe is the header name syntax Kubernetes allows in probes.
var probeHeaderRe = regexp.MustCompile(`^[-A-Za-z0-9]+$`)

func validateWorkloadGroup(r *report, p fieldPath, wg *networking.WorkloadGroup) {
	if m := wg.Metadata; m != nil {
		validateLabels(r, p.child("metadata").child("labels"), m.Labels, true)
		for _, k := range sortedKeys(m.Annotations) {
			r.check(p.child("metadata").child("annotations").key(k), labelKeyProblem(k))
		}
	}
	if t := wg.Template; t == nil {
		r.errorf(p.child("template"), "required")
	} else {
		// The template is a WorkloadEntry whose address is filled in when a
		// workload registers, so it may be empty.
		tp := p.child("template")
		if strings.HasPrefix(t.Address, unixPrefix) {
			r.check(tp.child("address"), unixAddressProblem(strings.TrimPrefix(t.Address, unixPrefix)))
			if len(t.Ports) > 0 {
				r.errorf(tp.child("ports"), "a unix domain socket endpoint cannot have ports")
			}
		}
		for _, name := range sortedKeys(t.Ports) {
			r.check(tp.child("ports").key(name), portNameProblem(name))
			r.check(tp.child("ports").key(name), portProblem(t.Ports[name]))
		}
		validateLabels(r, tp.child("labels"), t.Labels, false)
	}
	if pr := wg.Probe; pr != nil {
		validateProbe(r, p.child("probe"), pr)
	}
}

func validateProbe(r *report, p fieldPath, pr *networking.ReadinessProbe) {
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", pr.InitialDelaySeconds}, {"timeoutSeconds", pr.TimeoutSeconds},
		{"periodSeconds", pr.PeriodSeconds}, {"successThreshold", pr.SuccessThreshold},
		{"failureThreshold", pr.FailureThreshold},
	} {
		if f.v < 0 {
			r.errorf(p.child(f.name), "must not be negative")
		}
	}
	switch m := pr.HealthCheckMethod.(type) {
	case *networking.ReadinessProbe_HttpGet:
		hp := p.child("httpGet")
		if m.HttpGet == nil {
			r.errorf(hp, "must not be null")
			return
		}
		r.check(hp.child("port"), portProblem(m.HttpGet.Port))
		if s := m.HttpGet.Scheme; s != "" && s != "HTTP" && s != "HTTPS" {
			r.errorf(hp.child("scheme"), "invalid scheme %q: want \"HTTP\" or \"HTTPS\"", s)
		}
		for i, h := range m.HttpGet.HttpHeaders {
			if h == nil {
				r.errorf(hp.child("httpHeaders").index(i), "must not be null")
				continue
			}
			if !probeHeaderRe.MatchString(h.Name) {
				r.errorf(hp.child("httpHeaders").index(i).child("name"), "invalid header name %q: use letters, digits and '-'", h.Name)
			}
		}
	case *networking.ReadinessProbe_TcpSocket:
		if m.TcpSocket == nil {
			r.errorf(p.child("tcpSocket"), "must not be null")
			return
		}
		r.check(p.child("tcpSocket").child("port"), portProblem(m.TcpSocket.Port))
	case *networking.ReadinessProbe_Exec:
		ep := p.child("exec").child("command")
		if len(m.Exec.GetCommand()) == 0 {
			r.errorf(ep, "required")
		}
		for i, c := range m.Exec.GetCommand() {
			if c == "" {
				r.errorf(ep.index(i), "must not be empty")
			}
		}
	case *networking.ReadinessProbe_Grpc:
		if m.Grpc == nil {
			r.errorf(p.child("grpc"), "must not be null")
			return
		}
		r.check(p.child("grpc").child("port"), portProblem(m.Grpc.Port))
	default:
		r.errorf(p, "one of httpGet, tcpSocket, exec or grpc is required")
	}
}
