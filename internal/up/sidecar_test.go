package up

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config/ingest"
)

const twoReplicas = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 80, targetPort: 8080, name: http-web, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-a, namespace: shop}
spec: {address: 127.0.0.20, labels: {app: web}, serviceAccount: web}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-b, namespace: shop}
spec: {address: 127.0.0.21, labels: {app: web}, serviceAccount: web}
`

const nsSidecar = `
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`

func planYAML(t *testing.T, yaml string) ([]Workload, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	next := uint16(42000)
	ws, snap, err := plan(t.Context(), dir, 15080, func() (uint16, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	gen, err := inboundSidecars(snap, ws)
	if err != nil {
		return nil, err
	}
	if len(gen) != len(ws) {
		t.Fatalf("%d Sidecars for %d workloads", len(gen), len(ws))
	}
	for i, c := range gen {
		if _, err := ingest.Validate(c); err != nil {
			t.Errorf("generated Sidecar %s does not validate: %v", c.Name, err)
		}
		sc := c.Spec.(*networking.Sidecar)
		w := ws[i]
		if c.Name != "trellis-up-"+w.Name || c.Namespace != w.Namespace || sc.GetWorkloadSelector().GetLabels()[LabelWorkload] != w.Name || len(sc.GetWorkloadSelector().GetLabels()) != 1 {
			t.Errorf("%s: name %s/%s selector %v", w.ID(), c.Namespace, c.Name, sc.GetWorkloadSelector())
		}
		if w.proxyLabels()[LabelWorkload] != w.Name || w.Labels[LabelWorkload] != "" {
			t.Errorf("%s: label %s not on the proxy alone", w.ID(), LabelWorkload)
		}
	}
	return ws, nil
}

// TestInboundSidecars: each workload gets a Sidecar of its own (even two
// replicas with the same labels), with an ingress listener per port bound
// on its WorkloadEntry address, without capture, forwarding to its
// application's private port, with the service port's name and protocol.
func TestInboundSidecars(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(twoReplicas), 0o644)
	next := uint16(42000)
	ws, snap, err := plan(t.Context(), dir, 15080, func() (uint16, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	gen, err := inboundSidecars(snap, ws)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ bind, endpoint string }{{"127.0.0.20", "127.0.0.1:42001"}, {"127.0.0.21", "127.0.0.1:42002"}}
	for i, c := range gen {
		ing := c.Spec.(*networking.Sidecar).GetIngress()
		if len(ing) != 1 {
			t.Fatalf("%s: ingress %v", c.Name, ing)
		}
		in := ing[0]
		if in.GetPort().GetNumber() != 8080 || in.GetPort().GetProtocol() != "HTTP" || in.GetPort().GetName() != "http-web" ||
			in.GetBind() != want[i].bind || in.GetCaptureMode() != networking.CaptureMode_NONE || in.GetDefaultEndpoint() != want[i].endpoint {
			t.Errorf("%s: ingress %v, want 8080 HTTP bind %s NONE → %s", c.Name, in, want[i].bind, want[i].endpoint)
		}
		if c.Spec.(*networking.Sidecar).GetEgress() != nil {
			t.Errorf("%s: egress without a namespace Sidecar", c.Name)
		}
	}
	if _, err := planYAML(t, twoReplicas); err != nil {
		t.Fatal(err)
	}
}

// TestInboundSidecarsBase: the namespace's Sidecar lends its egress
// settings; one that selects a workload, or declares ingress, is an error
// that names it.
func TestInboundSidecarsBase(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(twoReplicas+nsSidecar), 0o644)
	ws, snap, err := plan(t.Context(), dir, 15080, freePort)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := inboundSidecars(snap, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range gen {
		sc := c.Spec.(*networking.Sidecar)
		if len(sc.GetEgress()) != 1 || sc.GetEgress()[0].GetHosts()[0] != "./*" || sc.GetOutboundTrafficPolicy().GetMode() != networking.OutboundTrafficPolicy_REGISTRY_ONLY {
			t.Errorf("%s: egress %v policy %v, want the namespace Sidecar's", c.Name, sc.GetEgress(), sc.GetOutboundTrafficPolicy())
		}
	}
	for name, extra := range map[string]string{
		"selector": `
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  egress: [{hosts: ["./*"]}]
`,
		"ingress": `
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  ingress: [{port: {number: 8080, protocol: HTTP, name: http}, defaultEndpoint: "127.0.0.1:8080"}]
`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := planYAML(t, twoReplicas+extra)
			if err == nil || !strings.Contains(err.Error(), "Sidecar shop/") || !strings.Contains(err.Error(), "web-a.shop") {
				t.Errorf("error %v, want one naming the Sidecar and the WorkloadEntry", err)
			}
		})
	}
}
