package kubetest

import (
	"testing"
)

// TestCRDsCoverKinds checks that the CRD files read from the module cache
// define every kind Trellis watches, at v1.
func TestCRDsCoverKinds(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if v.Served {
				served[crd.Name+"/"+v.Name] = true
			}
		}
	}
	for _, want := range []string{
		"virtualservices.networking.istio.io/v1", "virtualservices.networking.istio.io/v1alpha3",
		"destinationrules.networking.istio.io/v1", "gateways.networking.istio.io/v1",
		"serviceentries.networking.istio.io/v1", "workloadentries.networking.istio.io/v1",
		"workloadgroups.networking.istio.io/v1", "sidecars.networking.istio.io/v1",
		"peerauthentications.security.istio.io/v1", "authorizationpolicies.security.istio.io/v1",
		"requestauthentications.security.istio.io/v1",
		"gateways.gateway.networking.k8s.io/v1", "httproutes.gateway.networking.k8s.io/v1",
		"grpcroutes.gateway.networking.k8s.io/v1", "tcproutes.gateway.networking.k8s.io/v1",
		"tlsroutes.gateway.networking.k8s.io/v1", "referencegrants.gateway.networking.k8s.io/v1",
	} {
		if !served[want] {
			t.Errorf("no served CRD version %s", want)
		}
	}
}
