package analysis

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// destinationRules reports rules whose host matches no service (IST0174)
// and subsets whose labels select no endpoint of the host's services
// (IST0173). Services are looked up in every namespace: a rule may live in
// the root namespace or elsewhere and still apply.
func destinationRules(c *env) []Message {
	var out []Message
	for _, cfg := range c.snap.Configs(schema.DestinationRule) {
		dr, _ := cfg.Spec.(*networking.DestinationRule) // nil-safe getters if mistyped
		o := originOf(cfg)
		host := c.snap.ResolveHost(dr.GetHost(), cfg.Namespace)
		svcs := c.services(host, "")
		if len(svcs) == 0 {
			out = append(out, newMessage(UnknownDestinationRuleHost, o, "spec.host",
				"The host %s defined in the DestinationRule does not match any services in the mesh.", dr.GetHost()))
			continue
		}
		var eps []*model.Endpoint
		checkable := false
		for _, svc := range svcs {
			if svc.Resolution == model.Passthrough {
				continue // no endpoints by design: subsets cannot select any
			}
			checkable = true
			eps = append(eps, c.snap.Endpoints(svc.Key())...)
		}
		if !checkable {
			continue
		}
		for i, ss := range dr.GetSubsets() {
			if !selectsAny(ss.GetLabels(), eps) {
				out = append(out, newMessage(DestinationRuleSubsetNotSelectPods, o, fmt.Sprintf("spec.subsets[%d]", i),
					"The Subset %s defined in the DestinationRule does not select any endpoints, which may lead to 503 UH (NoHealthyUpstream).", ss.GetName()))
			}
		}
	}
	return out
}

func selectsAny(selector map[string]string, eps []*model.Endpoint) bool {
	for _, ep := range eps {
		if model.LabelsMatch(selector, ep.Labels) {
			return true
		}
	}
	return false
}

// serviceEntryPorts reports ServiceEntry ports without a protocol. Unlike
// Kubernetes Service ports, their protocol is not taken from the port name:
// it is sniffed.
func serviceEntryPorts(c *env) []Message {
	var out []Message
	for _, cfg := range c.snap.Configs(schema.ServiceEntry) {
		se, _ := cfg.Spec.(*networking.ServiceEntry)
		for i, p := range se.GetPorts() {
			if p.GetProtocol() != "" {
				continue
			}
			hint := ""
			if guess := model.ProtocolFromPortName(p.GetName()); !guess.IsUnsupported() {
				hint = fmt.Sprintf(" (the name suggests %s, but names are not read for ServiceEntry ports)", guess)
			}
			out = append(out, newMessage(ServiceEntryPortWithoutProtocol, originOf(cfg), fmt.Sprintf("spec.ports[%d].protocol", i),
				"Port %d (%q) declares no protocol%s: traffic on it is sniffed. Set the protocol explicitly.", p.GetNumber(), p.GetName(), hint))
		}
	}
	return out
}

// sidecars reports namespaces with more than one Sidecar without a
// workloadSelector: which one applies is undefined.
func sidecars(c *env) []Message {
	byNS := map[string][]config.Config{}
	var nss []string
	for _, cfg := range c.snap.Configs(schema.Sidecar) {
		if sc, _ := cfg.Spec.(*networking.Sidecar); len(sc.GetWorkloadSelector().GetLabels()) > 0 {
			continue
		}
		if byNS[cfg.Namespace] == nil {
			nss = append(nss, cfg.Namespace)
		}
		byNS[cfg.Namespace] = append(byNS[cfg.Namespace], cfg)
	}
	var out []Message
	for _, ns := range nss {
		list := byNS[ns]
		if len(list) < 2 {
			continue
		}
		names := make([]string, len(list))
		for i, cfg := range list {
			names[i] = cfg.Name
		}
		for _, cfg := range list {
			out = append(out, newMessage(MultipleSidecarsWithoutWorkloadSelectors, originOf(cfg), "spec.workloadSelector",
				"The Sidecars [%s] in namespace %q have no workload selector, which can lead to undefined behavior.",
				strings.Join(names, " "), ns))
		}
	}
	return out
}
