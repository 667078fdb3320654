package validation

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Limits from Istio's ServiceEntry CRD schema.
const (
	maxServiceEntryHosts     = 256
	maxServiceEntryAddresses = 256
	maxServiceEntryPorts     = 256
	maxServiceEntryEndpoints = 4096
)

func validateServiceEntry(r *report, p fieldPath, namespace string, se *networking.ServiceEntry) {
	if se.WorkloadSelector != nil {
		validateSelectorLabels(r, p.child("workloadSelector").child("labels"), se.WorkloadSelector.Labels)
		if len(se.WorkloadSelector.Labels) == 0 {
			r.warnf(p.child("workloadSelector"), "workload selector without labels selects every workload in the namespace")
		}
		if len(se.Endpoints) > 0 {
			r.errorf(p.child("endpoints"), "endpoints and workloadSelector cannot both be set")
		}
	}

	hp := p.child("hosts")
	switch {
	case len(se.Hosts) == 0:
		r.errorf(hp, "at least one host is required")
	case len(se.Hosts) > maxServiceEntryHosts:
		r.errorf(hp, "too many hosts (%d, limit %d)", len(se.Hosts), maxServiceEntryHosts)
	}
	for i, h := range se.Hosts {
		if h == "*" {
			r.errorf(hp.index(i), "host \"*\" is not allowed; a service entry must name its hosts")
			continue
		}
		if r.check(hp.index(i), wildcardDomainProblem(h)) {
			if problem := partialWildcardProblem(h); problem != "" {
				r.warnf(hp.index(i), "%s", problem)
			}
		}
	}

	cidr := false
	if len(se.Addresses) > maxServiceEntryAddresses {
		r.errorf(p.child("addresses"), "too many addresses (%d, limit %d)", len(se.Addresses), maxServiceEntryAddresses)
	}
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		r.check(p.child("addresses").index(i), subnetProblem(a))
	}
	res := se.Resolution
	if cidr && res != networking.ServiceEntry_NONE && res != networking.ServiceEntry_STATIC {
		r.errorf(p.child("addresses"), "CIDR addresses are only allowed with resolution NONE or STATIC")
	}

	portNames := make(map[string]bool)
	if len(se.Ports) > maxServiceEntryPorts {
		r.errorf(p.child("ports"), "too many ports (%d, limit %d)", len(se.Ports), maxServiceEntryPorts)
	}
	numbers := make(map[uint32]bool)
	for i, port := range se.Ports {
		pp := p.child("ports").index(i)
		if port == nil {
			r.errorf(pp, "must not be null")
			continue
		}
		if portNames[port.Name] {
			r.errorf(pp.child("name"), "duplicate port name %q", port.Name)
		}
		portNames[port.Name] = true
		if numbers[port.Number] {
			r.errorf(pp.child("number"), "duplicate port number %d", port.Number)
		}
		numbers[port.Number] = true
		r.check(pp.child("name"), portNameProblem(port.Name))
		r.check(pp.child("protocol"), protocolProblem(port.Protocol))
		r.check(pp.child("number"), portProblem(port.Number))
		if port.TargetPort != 0 {
			r.check(pp.child("targetPort"), portProblem(port.TargetPort))
		}
	}

	ep := p.child("endpoints")
	if len(se.Endpoints) > maxServiceEntryEndpoints {
		r.errorf(ep, "too many endpoints (%d, limit %d)", len(se.Endpoints), maxServiceEntryEndpoints)
	}
	switch res {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			r.errorf(ep, "endpoints cannot be set with resolution NONE")
		}
		if se.WorkloadSelector != nil {
			r.warnf(p.child("workloadSelector"), "has no effect with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		if len(se.Endpoints) == 0 && se.WorkloadSelector == nil {
			r.warnf(p, "resolution STATIC without endpoints or workloadSelector: the service has no endpoints")
		}
		for i, e := range se.Endpoints {
			if e == nil {
				r.errorf(ep.index(i), "must not be null")
				continue
			}
			validateWorkloadEntry(r, ep.index(i), e, portNames, false)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if h != "*" && wildcardDomainProblem(h) == "" && fqdnProblem(h) != "" {
					r.errorf(hp.index(i), "with resolution %s and no endpoints, hosts are resolved and cannot be wildcards", res)
				}
			}
		}
		if res == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			r.errorf(ep, "resolution DNS_ROUND_ROBIN allows at most one endpoint")
		}
		for i, e := range se.Endpoints {
			if e == nil {
				r.errorf(ep.index(i), "must not be null")
				continue
			}
			validateWorkloadEntry(r, ep.index(i), e, portNames, true)
			if strings.HasPrefix(e.Address, unixPrefix) {
				r.errorf(ep.index(i).child("address"), "unix domain sockets cannot be resolved with resolution %s", res)
			}
		}
		if len(se.Addresses) > 0 && len(se.Hosts) > 1 {
			for _, port := range se.Ports {
				if port != nil && parseProtocol(port.Protocol).isTCP() {
					r.warnf(p.child("hosts"), "with addresses and a TCP port, only the first host can be told apart")
					break
				}
			}
		}
	case networking.ServiceEntry_DYNAMIC_DNS:
		for i, h := range se.Hosts {
			if !strings.HasPrefix(h, "*.") {
				r.errorf(hp.index(i), "resolution DYNAMIC_DNS requires wildcard hosts such as \"*.example.com\"")
			}
		}
		if len(se.Endpoints) > 0 {
			r.warnf(ep, "endpoints are ignored with resolution DYNAMIC_DNS")
		}
	default:
		r.errorf(p.child("resolution"), "unsupported resolution %d", res)
	}

	// Plain TCP cannot tell several hosts apart; HTTP (Host header) and TLS
	// (SNI) can. With resolution NONE the hosts are not used for routing.
	if res != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, port := range se.Ports {
			if port == nil {
				continue
			}
			if proto := parseProtocol(port.Protocol); !proto.isHTTP() && !proto.isTLS() {
				r.errorf(p.child("ports").index(i).child("protocol"), "several hosts need HTTP or TLS ports to be told apart, not %q", port.Protocol)
				break
			}
		}
	}
	validateExportTo(r, p.child("exportTo"), namespace, se.ExportTo, true, false)
}
