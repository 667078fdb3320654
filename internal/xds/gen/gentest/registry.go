package gentest

import (
	"sort"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// Registry derives services and endpoints from the ServiceEntry and
// WorkloadEntry objects among cfgs, the way Istio's ServiceEntry registry
// does for the common cases:
//
//   - one service per host (short hosts completed with domainSuffix) with
//     the entry's ports, addresses, resolution, location, exportTo and
//     subjectAltNames (as service accounts);
//   - endpoints from inline endpoints, or from the WorkloadEntries of the
//     entry's namespace that its workloadSelector matches;
//   - for DNS resolution without endpoints, one endpoint per host;
//   - tlsMode from the security.istio.io/tlsMode label, else "istio" when
//     the workload has a service account, else "disabled".
func Registry(cfgs []config.Config, domainSuffix string) ([]*model.Service, map[model.ServiceKey][]*model.Endpoint) {
	if domainSuffix == "" {
		domainSuffix = model.DefaultDomainSuffix
	}
	var entries []config.Config
	for _, c := range cfgs {
		if c.Kind == schema.WorkloadEntry {
			entries = append(entries, c)
		}
	}
	var services []*model.Service
	endpoints := map[model.ServiceKey][]*model.Endpoint{}
	for _, c := range cfgs {
		if c.Kind != schema.ServiceEntry {
			continue
		}
		se := c.Spec.(*networking.ServiceEntry)
		var ports []model.Port
		for _, p := range se.GetPorts() {
			proto := model.ParseProtocol(p.GetProtocol())
			if p.GetProtocol() == "" {
				proto = model.ProtocolFromPortName(p.GetName())
			}
			ports = append(ports, model.Port{Name: p.GetName(), Number: p.GetNumber(), Protocol: proto, TargetPort: p.GetTargetPort()})
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i].Number < ports[j].Number })
		var exportTo []string
		for _, e := range se.GetExportTo() {
			if e == "." {
				e = c.Namespace
			}
			exportTo = append(exportTo, e)
		}
		var eps []*model.Endpoint
		for _, we := range se.GetEndpoints() {
			eps = append(eps, workloadEndpoint(we, c.Namespace, ""))
		}
		if sel := se.GetWorkloadSelector().GetLabels(); len(sel) > 0 {
			for _, wc := range entries {
				we := wc.Spec.(*networking.WorkloadEntry)
				if wc.Namespace == c.Namespace && model.LabelsMatch(sel, we.GetLabels()) {
					eps = append(eps, workloadEndpoint(we, wc.Namespace, wc.Name))
				}
			}
		}
		for _, h := range se.GetHosts() {
			host := model.ResolveShortName(h, c.Namespace, domainSuffix)
			svc := &model.Service{
				Hostname:          host,
				Namespace:         c.Namespace,
				Addresses:         se.GetAddresses(),
				Ports:             ports,
				Resolution:        resolution(se.GetResolution()),
				MeshExternal:      se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
				ExportTo:          exportTo,
				Labels:            c.Labels,
				Selector:          se.GetWorkloadSelector().GetLabels(),
				ServiceAccounts:   se.GetSubjectAltNames(),
				Source:            c.Key(),
				CreationTimestamp: c.CreationTimestamp,
			}
			services = append(services, svc)
			hostEps := eps
			if len(hostEps) == 0 && svc.Resolution == model.DNSLB || len(hostEps) == 0 && svc.Resolution == model.DNSRoundRobinLB {
				hostEps = []*model.Endpoint{{Address: host, Namespace: c.Namespace, TLSMode: "disabled"}}
			}
			endpoints[svc.Key()] = append(endpoints[svc.Key()], hostEps...)
		}
	}
	return services, endpoints
}

func resolution(r networking.ServiceEntry_Resolution) model.Resolution {
	switch r {
	case networking.ServiceEntry_NONE:
		return model.Passthrough
	case networking.ServiceEntry_DNS:
		return model.DNSLB
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return model.DNSRoundRobinLB
	}
	return model.ClientSideLB
}

func workloadEndpoint(we *networking.WorkloadEntry, ns, name string) *model.Endpoint {
	tlsMode := "disabled"
	if v, ok := we.GetLabels()["security.istio.io/tlsMode"]; ok {
		tlsMode = v
	} else if we.GetServiceAccount() != "" {
		tlsMode = "istio"
	}
	return &model.Endpoint{
		Address:        we.GetAddress(),
		Ports:          we.GetPorts(),
		Labels:         we.GetLabels(),
		Network:        we.GetNetwork(),
		Locality:       we.GetLocality(),
		Weight:         we.GetWeight(),
		ServiceAccount: we.GetServiceAccount(),
		Namespace:      ns,
		WorkloadName:   name,
		TLSMode:        tlsMode,
	}
}
