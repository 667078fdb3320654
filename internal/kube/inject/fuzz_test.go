package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// FuzzAnnotations feeds arbitrary annotation values (untrusted: any pod
// author writes them) through injection: it must return an error or an
// injected pod, never panic, and an injected pod must be stable.
func FuzzAnnotations(f *testing.F) {
	f.Add("10.0.0.0/8", "80,443", "5432", "holdApplicationUntilProxyStarts: true", "100m", "true", "REDIRECT")
	f.Add("*", "*", "", "{", "lots", "maybe", "TPROXY")
	f.Add("", "", "0", "terminationDrainDuration: -1s", "1Gi", "", "NONE")
	f.Add("*", "80", "", "", "", "false", "tproxy")
	in, err := New(testConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cidrs, inPorts, outPorts, proxyConfig, cpu, native, mode string) {
		pod := &corev1.Pod{}
		pod.Annotations = map[string]string{
			annIncludeOutboundIPRanges: cidrs, annIncludeInboundPorts: inPorts, annExcludeOutboundPorts: outPorts,
			annProxyConfig: proxyConfig, annProxyCPU: cpu, annNativeSidecar: native,
			annInterceptionMode: mode,
		}
		pod.Spec.Containers = []corev1.Container{{Name: "app"}}
		out, err := in.Pod(pod, "")
		if err != nil {
			return
		}
		again, err := in.Pod(out, "")
		if err != nil || len(again.Spec.Containers) != len(out.Spec.Containers) || len(again.Spec.InitContainers) != len(out.Spec.InitContainers) {
			t.Fatalf("re-injection changed the pod or failed: %v", err)
		}
	})
}
