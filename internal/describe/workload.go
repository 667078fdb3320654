package describe

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry/serviceentry"
)

// FindWorkload returns the WorkloadEntry ns/name and the endpoint it
// makes, as the ServiceEntry registry converts it.
func FindWorkload(snap *model.Snapshot, ns, name string) (config.Config, *model.Endpoint, error) {
	if ns == "" {
		ns = config.DefaultNamespace
	}
	c, ok := snap.Config(config.Key{Kind: schema.WorkloadEntry, Namespace: ns, Name: name})
	if !ok {
		var known []string
		for _, we := range snap.Configs(schema.WorkloadEntry) {
			known = append(known, we.Namespace+"/"+we.Name)
		}
		return config.Config{}, nil, &NotFoundError{What: fmt.Sprintf("workload %s/%s (a WorkloadEntry)", ns, name), Known: known}
	}
	ep := serviceentry.ConvertWorkloadEntry(c)
	if ep == nil {
		return config.Config{}, nil, fmt.Errorf("workload %s/%s: not a WorkloadEntry", ns, name)
	}
	return c, ep, nil
}

// Workload describes the WorkloadEntry ns/name.
func Workload(in Input, ns, name string) (*WorkloadReport, error) {
	snap := in.Snapshot
	if snap == nil {
		return nil, errors.New("describe: no snapshot")
	}
	c, ep, err := FindWorkload(snap, ns, name)
	if err != nil {
		return nil, err
	}
	we := c.Spec.(*networking.WorkloadEntry)
	r := &WorkloadReport{
		Object:  objectOf(snap, c.Key()),
		Address: we.GetAddress(), Labels: ep.Labels, ServiceAccount: we.GetServiceAccount(),
		Ports: we.GetPorts(), Network: we.GetNetwork(), Locality: we.GetLocality(),
	}
	if sa := we.GetServiceAccount(); sa != "" {
		r.Identity = "spiffe://" + trustDomain(snap) + "/ns/" + c.Namespace + "/sa/" + sa
	}
	involved := map[config.Key]bool{c.Key(): true}

	// Services: those with an endpoint made from this WorkloadEntry.
	r.Services = []WorkloadService{}
	var targets []uint32
	for _, svc := range snap.Services() {
		for _, e := range snap.Endpoints(svc.Key()) {
			if e.Address != ep.Address || e.Namespace != ep.Namespace || e.WorkloadName != ep.WorkloadName {
				continue
			}
			ws := WorkloadService{Host: svc.Hostname, Namespace: svc.Namespace}
			for _, p := range svc.Ports {
				t := e.PortFor(p)
				ws.Ports = append(ws.Ports, fmt.Sprintf("%s %d→%d/%s", p.Name, p.Number, t, p.Protocol))
				if !slices.Contains(targets, t) {
					targets = append(targets, t)
				}
			}
			r.Services = append(r.Services, ws)
			involved[svc.Source] = true
			break
		}
	}
	slices.Sort(targets)

	proxy := &model.Proxy{Type: model.SidecarProxy, Namespace: c.Namespace, Labels: ep.Labels}
	sc := snap.Scope(proxy)
	if sc.Sidecar != nil {
		r.Sidecar = sidecarInfo(snap, sc.Sidecar, ep.Labels)
		involved[sc.Sidecar.Key()] = true
	} else {
		r.SidecarReason = "no Sidecar resource selects it, none without a selector in namespace " + c.Namespace +
			" or the root namespace " + snap.Mesh.GetRootNamespace() + ": the mesh default applies (every host imported)"
	}
	r.Outbound = Outbound{VisibleServices: len(sc.Services), VirtualServices: []string{}, AllowAny: sc.OutboundAllowAny()}
	for _, vs := range sc.VirtualServices {
		r.Outbound.VirtualServices = append(r.Outbound.VirtualServices,
			vs.Namespace+"/"+vs.Name+": "+strings.Join(vs.Spec.(*networking.VirtualService).GetHosts(), ","))
	}

	pa := snap.PeerAuthentication(c.Namespace, ep.Labels)
	r.MTLSDefault = portMTLS(snap, pa, 0)
	r.MTLSDefault.Workload = name
	if r.MTLSDefault.Policy != "" {
		involved[peerAuthnKey(r.MTLSDefault.Policy)] = true
	}
	for p := range pa.PerPort {
		if !slices.Contains(targets, p) {
			targets = append(targets, p)
		}
	}
	slices.Sort(targets)
	r.MTLS = []PortMTLS{}
	for _, t := range targets {
		m := portMTLS(snap, pa, t)
		m.Workload = name
		if m.Policy != "" {
			involved[peerAuthnKey(m.Policy)] = true
		}
		r.MTLS = append(r.MTLS, m)
	}
	authz := newAuthzCollector(snap)
	authz.add(c.Namespace, name, ep.Labels)
	r.Authorization = authz.list(involved)
	r.Messages = messagesFor(in.Messages, involved)
	return r, nil
}

func trustDomain(snap *model.Snapshot) string {
	if td := snap.Mesh.GetTrustDomain(); td != "" {
		return td
	}
	return "cluster.local"
}

// sidecarInfo describes the Sidecar resource in force and why.
func sidecarInfo(snap *model.Snapshot, c *config.Config, labels map[string]string) *Sidecar {
	spec := c.Spec.(*networking.Sidecar)
	s := &Sidecar{Object: objectOf(snap, c.Key())}
	sel := spec.GetWorkloadSelector().GetLabels()
	switch {
	case len(sel) > 0:
		s.Reason = "its workloadSelector " + labelString(sel) + " selects the workload (selected Sidecars win over namespace defaults)"
	case c.Namespace == snap.Mesh.GetRootNamespace():
		s.Reason = "the root namespace's Sidecar without a selector: the mesh-wide default (no Sidecar in the workload's namespace)"
	default:
		s.Reason = "the namespace's Sidecar without a selector (no Sidecar in the namespace selects the workload)"
	}
	for _, eg := range spec.GetEgress() {
		line := strings.Join(eg.GetHosts(), " ")
		if p := eg.GetPort(); p != nil {
			line = "port " + strconv.FormatUint(uint64(p.GetNumber()), 10) + ": " + line
		}
		s.Egress = append(s.Egress, line)
	}
	for _, in := range spec.GetIngress() {
		s.Ingress = append(s.Ingress, fmt.Sprintf("port %d → %s", in.GetPort().GetNumber(), in.GetDefaultEndpoint()))
	}
	if otp := spec.GetOutboundTrafficPolicy(); otp != nil {
		s.Outbound = otp.GetMode().String()
	}
	return s
}
