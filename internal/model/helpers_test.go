package model

import (
	"time"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Small constructors shared by the tests of this package. Everything is built
// in Go so that the tests do not depend on other packages' fixtures.

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// at is a creation time: epoch plus sec seconds.
func at(sec int) time.Time { return epoch.Add(time.Duration(sec) * time.Second) }

func newConfig(kind config.GroupKind, ns, name string, created int, spec proto.Message) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: kind, Name: name, Namespace: ns, CreationTimestamp: at(created)},
		Spec: spec,
	}
}

// nsName is how tests name a config in expectations: "namespace/name".
func nsName(c config.Config) string { return c.Namespace + "/" + c.Name }

func nsNames(cs []config.Config) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, nsName(c))
	}
	return out
}

// sidecar builds a Sidecar with one egress listener holding hosts (none: no
// egress listener at all).
func sidecar(ns, name string, created int, selector map[string]string, hosts ...string) config.Config {
	sc := &networking.Sidecar{}
	if selector != nil {
		sc.WorkloadSelector = &networking.WorkloadSelector{Labels: selector}
	}
	if len(hosts) > 0 {
		sc.Egress = []*networking.IstioEgressListener{{Hosts: hosts}}
	}
	return newConfig(schema.Sidecar, ns, name, created, sc)
}

// withOutbound sets a Sidecar's outboundTrafficPolicy.
func withOutbound(c config.Config, mode networking.OutboundTrafficPolicy_Mode) config.Config {
	c.Spec.(*networking.Sidecar).OutboundTrafficPolicy = &networking.OutboundTrafficPolicy{Mode: mode}
	return c
}

type drOption func(*networking.DestinationRule)

func exportTo(ns ...string) drOption {
	return func(d *networking.DestinationRule) { d.ExportTo = ns }
}

func drSelector(labels map[string]string) drOption {
	return func(d *networking.DestinationRule) {
		d.WorkloadSelector = &typev1beta1.WorkloadSelector{MatchLabels: labels}
	}
}

func subsets(names ...string) drOption {
	return func(d *networking.DestinationRule) {
		for _, n := range names {
			d.Subsets = append(d.Subsets, &networking.Subset{Name: n, Labels: map[string]string{"version": n}})
		}
	}
}

func newDR(ns, name string, created int, host string, opts ...drOption) config.Config {
	d := &networking.DestinationRule{Host: host}
	for _, o := range opts {
		o(d)
	}
	return newConfig(schema.DestinationRule, ns, name, created, d)
}

type vsOption func(*networking.VirtualService)

func gateways(gw ...string) vsOption {
	return func(v *networking.VirtualService) { v.Gateways = gw }
}

func vsExportTo(ns ...string) vsOption {
	return func(v *networking.VirtualService) { v.ExportTo = ns }
}

func virtualService(ns, name string, created int, hosts []string, opts ...vsOption) config.Config {
	v := &networking.VirtualService{Hosts: hosts}
	for _, o := range opts {
		o(v)
	}
	return newConfig(schema.VirtualService, ns, name, created, v)
}

func service(host, ns string, exportTo ...string) *Service {
	return &Service{
		Hostname:  host,
		Namespace: ns,
		ExportTo:  exportTo,
		Ports:     []Port{{Name: "http", Number: 80, Protocol: ProtocolHTTP}},
	}
}

func serviceKeys(svcs []*Service) []string {
	out := []string{}
	for _, s := range svcs {
		out = append(out, s.Key().String())
	}
	return out
}

// sidecarProxy is a sidecar in ns with the given labels.
func sidecarProxy(ns string, labels map[string]string) *Proxy {
	if labels == nil {
		labels = map[string]string{}
	}
	return &Proxy{
		ID:          "sidecar~10.0.0.1~pod." + ns + "~" + ns + ".svc.cluster.local",
		Type:        SidecarProxy,
		IPAddresses: []string{"10.0.0.1"},
		Name:        "pod." + ns,
		Namespace:   ns,
		DNSDomain:   ns + ".svc.cluster.local",
		Labels:      labels,
		Metadata:    map[string]string{},
	}
}

// meshWith returns the default mesh changed by fn.
func meshWith(fn func(*meshconfig.MeshConfig)) *meshconfig.MeshConfig {
	m := DefaultMesh()
	fn(m)
	return m
}

func fqdn(name, ns string) string { return name + "." + ns + ".svc.cluster.local" }
