package up

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store/memory"
	"github.com/trellismesh/trellis/internal/model"
)

// LabelWorkload is the label up adds to each sidecar's own labels (never
// to the WorkloadEntry): the workload's name, which the generated
// Sidecar selects, so that two WorkloadEntries with the same labels each
// get their own.
const LabelWorkload = "trellis.dev/workload"

// sidecarPrefix starts the names of the Sidecars up generates.
const sidecarPrefix = "trellis-up-"

// proxyLabels are the labels the workload's sidecar announces.
func (w Workload) proxyLabels() map[string]string {
	out := make(map[string]string, len(w.Labels)+1)
	for k, v := range w.Labels {
		out[k] = v
	}
	out[LabelWorkload] = w.Name
	return out
}

// inboundSidecars returns the Sidecar resource of every workload that
// serves a port, the configuration that gives local workloads an inbound
// sidecar hop without capture, as Istio does for VMs that cannot
// redirect traffic:
//
//	workloadSelector: {trellis.dev/workload: <name>}
//	ingress, per port P of the workload (protocol and name of its service port):
//	  port: P, bind: <WorkloadEntry address>, captureMode: NONE,
//	  defaultEndpoint: 127.0.0.1:<the application's private port>
//
// The control plane then gives the sidecar a listener at address:P with
// the inbound filter chains of P (PeerAuthentication's mTLS chains,
// AuthorizationPolicy, destination metrics) and an inbound cluster to
// the application. The WorkloadEntry, and every user object, keeps its
// meaning: clients still send to address:P, which is now the sidecar.
//
// The Sidecar that would otherwise apply to the workload (the
// namespace's, else the root namespace's, without a selector) lends its
// egress, outboundTrafficPolicy and inboundConnectionPool, read once at
// start. A Sidecar of the directory that selects the workload, or one
// that declares ingress itself, is an error: in local mode up owns the
// workloads' ingress.
func inboundSidecars(snap *model.Snapshot, ws []Workload) ([]config.Config, error) {
	var out []config.Config
	for _, w := range ws {
		if len(w.Ports) == 0 {
			continue
		}
		spec := &networking.Sidecar{
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{LabelWorkload: w.Name}},
		}
		p := &model.Proxy{Type: model.SidecarProxy, Namespace: w.Namespace, Labels: w.proxyLabels()}
		if base, ok := snap.SidecarFor(p); ok {
			bs := base.Spec.(*networking.Sidecar)
			where := fmt.Sprintf("Sidecar %s/%s in %s", base.Namespace, base.Name, base.Source.File)
			switch {
			case len(bs.GetWorkloadSelector().GetLabels()) > 0:
				return nil, fmt.Errorf("%s selects WorkloadEntry %s: trellis up gives every workload a Sidecar of its own (its inbound listeners); put the egress settings in a Sidecar without workloadSelector, which up carries over", where, w.ID())
			case len(bs.GetIngress()) > 0:
				return nil, fmt.Errorf("%s: spec.ingress applies to WorkloadEntry %s, but trellis up owns the workloads' ingress listeners in local mode; remove spec.ingress", where, w.ID())
			}
			for _, eg := range bs.GetEgress() {
				spec.Egress = append(spec.Egress, proto.Clone(eg).(*networking.IstioEgressListener))
			}
			if otp := bs.GetOutboundTrafficPolicy(); otp != nil {
				spec.OutboundTrafficPolicy = proto.Clone(otp).(*networking.OutboundTrafficPolicy)
			}
			if cp := bs.GetInboundConnectionPool(); cp != nil {
				spec.InboundConnectionPool = proto.Clone(cp).(*networking.ConnectionPoolSettings)
			}
		}
		for _, port := range w.Ports {
			sp := w.portInfo[port]
			spec.Ingress = append(spec.Ingress, &networking.IstioIngressListener{
				Port:            &networking.SidecarPort{Number: port, Protocol: string(sp.Protocol), Name: sp.Name},
				Bind:            w.Address.String(),
				CaptureMode:     networking.CaptureMode_NONE,
				DefaultEndpoint: net.JoinHostPort(AppHost, strconv.Itoa(int(w.AppPorts[port]))),
			})
		}
		name := sidecarPrefix + w.Name
		if _, taken := findConfig(snap, schema.Sidecar, w.Namespace, name); taken {
			return nil, fmt.Errorf("Sidecar %s/%s: the name is the one trellis up gives the Sidecar it generates for WorkloadEntry %s; rename it", w.Namespace, name, w.ID())
		}
		out = append(out, config.Config{
			Meta: config.Meta{Kind: schema.Sidecar, Version: "v1", Namespace: w.Namespace, Name: name,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "trellis-up"}},
			Spec:   spec,
			Source: config.Source{File: "trellis up (generated for WorkloadEntry " + w.ID() + ")"},
		})
	}
	return out, nil
}

func findConfig(snap *model.Snapshot, kind config.GroupKind, ns, name string) (config.Config, bool) {
	for _, c := range snap.Configs(kind) {
		if c.Namespace == ns && c.Name == name {
			return c, true
		}
	}
	return config.Config{}, false
}

// sidecarStore is an in-memory configuration source holding the
// generated Sidecars, validated as any object of the directory; the
// control plane reads it after the directory.
func sidecarStore(ctx context.Context, cfgs []config.Config) (*memory.Store, error) {
	st, err := memory.New(memory.Config{Schemas: schema.Istio(), Validate: ingest.Validate})
	if err != nil {
		return nil, err
	}
	for _, c := range cfgs {
		if _, err := st.Create(ctx, c); err != nil {
			return nil, fmt.Errorf("generated %s %s/%s (%s): %w", c.Kind.Kind, c.Namespace, c.Name, c.Source.File, err)
		}
	}
	return st, nil
}
