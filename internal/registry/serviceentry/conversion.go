package serviceentry

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// TLS modes of endpoints (values of the security.istio.io/tlsMode label).
const (
	TLSModeIstio    = "istio"
	TLSModeDisabled = "disabled"
)

// localityLabel is Istio's legacy locality label; Kubernetes label values
// cannot hold "/", so "." separates region, zone and subzone.
const localityLabel = "istio-locality"

// ConvertServices returns one service per host of a ServiceEntry, in the
// order of its hosts (duplicates dropped). It returns nil when cfg is not a
// ServiceEntry. See the package documentation for the field mapping.
func ConvertServices(cfg config.Config) []*model.Service {
	se, ok := cfg.Spec.(*networking.ServiceEntry)
	if !ok || se == nil {
		return nil
	}
	ports := convertPorts(se.GetPorts())
	addresses := convertAddresses(se.GetAddresses())
	exportTo := resolveExportTo(se.GetExportTo(), cfg.Namespace)
	var selector map[string]string
	if ws := se.GetWorkloadSelector(); ws != nil {
		selector = maps.Clone(ws.GetLabels())
		if selector == nil {
			selector = map[string]string{}
		}
	}
	out := make([]*model.Service, 0, len(se.GetHosts()))
	seen := make(map[string]bool, len(se.GetHosts()))
	for _, h := range se.GetHosts() {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, &model.Service{
			Hostname:          h,
			Namespace:         cfg.Namespace,
			Addresses:         slices.Clone(addresses),
			Ports:             slices.Clone(ports),
			Resolution:        convertResolution(se.GetResolution()),
			MeshExternal:      se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo:          slices.Clone(exportTo),
			Labels:            maps.Clone(cfg.Labels),
			Selector:          maps.Clone(selector),
			ServiceAccounts:   slices.Clone(se.GetSubjectAltNames()),
			Source:            cfg.Key(),
			CreationTimestamp: cfg.CreationTimestamp,
		})
	}
	return out
}

func convertPorts(in []*networking.ServicePort) []model.Port {
	if len(in) == 0 {
		return nil
	}
	out := make([]model.Port, 0, len(in))
	for _, p := range in {
		if p == nil {
			continue
		}
		out = append(out, model.Port{
			Name:       p.GetName(),
			Number:     p.GetNumber(),
			Protocol:   model.ParseProtocol(p.GetProtocol()),
			TargetPort: p.GetTargetPort(),
		})
	}
	slices.SortStableFunc(out, func(a, b model.Port) int { return int(a.Number) - int(b.Number) })
	return out
}

func convertResolution(r networking.ServiceEntry_Resolution) model.Resolution {
	switch r {
	case networking.ServiceEntry_DNS:
		return model.DNSLB
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return model.DNSRoundRobinLB
	case networking.ServiceEntry_STATIC:
		return model.ClientSideLB
	}
	return model.Passthrough // NONE, the enum's zero value
}

// convertAddresses keeps IPs and CIDRs, turning full-length prefixes into
// plain IPs, and drops anything else.
func convertAddresses(in []string) []string {
	var out []string
	for _, a := range in {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.String())
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			if p.Bits() == p.Addr().BitLen() {
				out = append(out, p.Addr().String())
			} else {
				out = append(out, p.String())
			}
		}
	}
	return out
}

// resolveExportTo replaces "." by ns and sorts and deduplicates the list;
// "*" and "~" are kept for model.NewVisibility.
func resolveExportTo(in []string, ns string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, e := range in {
		if e == "." {
			e = ns
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// isDNS reports whether a resolution makes the proxy resolve host names.
func isDNS(r model.Resolution) bool { return r == model.DNSLB || r == model.DNSRoundRobinLB }

// ConvertEndpoints returns the endpoints a ServiceEntry declares inline for
// svc, one of the services ConvertServices returned for it. A DNS entry
// with neither endpoints nor workloadSelector yields one endpoint whose
// address is the service's host name. Endpoints selected through the
// workloadSelector are not included (see the Registry).
func ConvertEndpoints(cfg config.Config, svc *model.Service) []*model.Endpoint {
	se, ok := cfg.Spec.(*networking.ServiceEntry)
	if !ok || se == nil || svc == nil {
		return nil
	}
	if len(se.GetEndpoints()) == 0 {
		if se.GetWorkloadSelector() != nil || !isDNS(svc.Resolution) || strings.HasPrefix(svc.Hostname, "*") {
			return nil
		}
		return []*model.Endpoint{{
			Address:   svc.Hostname,
			Namespace: cfg.Namespace,
			TLSMode:   TLSModeDisabled,
		}}
	}
	out := make([]*model.Endpoint, 0, len(se.GetEndpoints()))
	for _, we := range se.GetEndpoints() {
		if we == nil {
			continue
		}
		ep := convertWorkload(we, we.GetLabels())
		ep.Namespace = cfg.Namespace
		out = append(out, ep)
	}
	return out
}

// ConvertWorkloadEntry returns the endpoint a WorkloadEntry describes, or
// nil when cfg is not a WorkloadEntry. Ports map service port names to
// endpoint ports; model.Endpoint.PortFor applies Istio's precedence
// (entry port > service targetPort > service port).
func ConvertWorkloadEntry(cfg config.Config) *model.Endpoint {
	we, ok := cfg.Spec.(*networking.WorkloadEntry)
	if !ok || we == nil {
		return nil
	}
	labels := mergeLabels(we.GetLabels(), cfg.Labels)
	ep := convertWorkload(we, labels)
	ep.Namespace = cfg.Namespace
	ep.WorkloadName = workloadName(cfg.Name, cfg.Annotations, labels)
	return ep
}

func convertWorkload(we *networking.WorkloadEntry, labels map[string]string) *model.Endpoint {
	locality := we.GetLocality()
	if locality == "" && labels[localityLabel] != "" {
		locality = strings.ReplaceAll(labels[localityLabel], ".", "/")
	}
	return &model.Endpoint{
		Address:        we.GetAddress(),
		Ports:          maps.Clone(we.GetPorts()),
		Labels:         maps.Clone(labels),
		Network:        we.GetNetwork(),
		Locality:       locality,
		Weight:         we.GetWeight(),
		ServiceAccount: we.GetServiceAccount(),
		TLSMode:        tlsMode(labels, we.GetServiceAccount()),
	}
}

// tlsMode is Istio's getTLSModeFromWorkloadEntry: the tlsMode label, else
// "istio" when the workload has a service account.
func tlsMode(labels map[string]string, serviceAccount string) string {
	if v, ok := labels[label.SecurityTlsMode.Name]; ok {
		return v
	}
	if serviceAccount != "" {
		return TLSModeIstio
	}
	return TLSModeDisabled
}

// workloadName is Istio's WorkloadNameFromWorkloadEntry.
func workloadName(name string, annotations, labels map[string]string) string {
	if g, ok := annotations[annotation.IoIstioAutoRegistrationGroup.Name]; ok {
		return g
	}
	if n, ok := labels[label.ServiceWorkloadName.Name]; ok {
		return n
	}
	return name
}

// mergeLabels returns a new map with the entries of every map, later maps
// winning; nil when all are empty.
func mergeLabels(ms ...map[string]string) map[string]string {
	var out map[string]string
	for _, m := range ms {
		if len(m) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(m))
		}
		maps.Copy(out, m)
	}
	return out
}

// groupOf returns the name of the WorkloadGroup a WorkloadEntry was
// registered from, or "".
func groupOf(cfg config.Config) string {
	return cfg.Annotations[annotation.IoIstioAutoRegistrationGroup.Name]
}

// applyGroup returns a copy of the WorkloadEntry cfg with the defaults of
// the WorkloadGroup wg filled in, as auto-registration would have created
// it. cfg and wg are not modified.
func applyGroup(cfg config.Config, wg *networking.WorkloadGroup) config.Config {
	we, ok := cfg.Spec.(*networking.WorkloadEntry)
	if !ok || we == nil || wg == nil {
		return cfg
	}
	t := wg.GetTemplate()
	merged := &networking.WorkloadEntry{
		Address:        we.GetAddress(),
		Ports:          we.GetPorts(),
		Labels:         mergeLabels(t.GetLabels(), wg.GetMetadata().GetLabels(), we.GetLabels()),
		Network:        orDefault(we.GetNetwork(), t.GetNetwork()),
		Locality:       orDefault(we.GetLocality(), t.GetLocality()),
		Weight:         we.GetWeight(),
		ServiceAccount: orDefault(we.GetServiceAccount(), t.GetServiceAccount()),
	}
	if len(merged.Ports) == 0 {
		merged.Ports = t.GetPorts()
	}
	if merged.Weight == 0 {
		merged.Weight = t.GetWeight()
	}
	out := cfg
	out.Spec = merged
	out.Annotations = mergeLabels(wg.GetMetadata().GetAnnotations(), cfg.Annotations)
	return out
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
