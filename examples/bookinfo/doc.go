// Package bookinfo holds Istio's Bookinfo sample application, written in
// Go, and everything needed to run it with Trellis:
//
//	app/      the four services (productpage, details, reviews, ratings), one package
//	config/   local mode: ServiceEntry + WorkloadEntry per service and instance, subsets
//	kube/     Kubernetes: Services, ServiceAccounts and Deployments named as Istio's
//	Dockerfile the image every Deployment runs (cmd/bookinfo, a static binary)
//
// This package has no code of its own; its tests check that the manifests
// and the local configuration agree with each other, with the program's
// flags and with Istio's bookinfo.yaml, so that Istio's routing samples
// apply unchanged. See README.md for running it.
package bookinfo
