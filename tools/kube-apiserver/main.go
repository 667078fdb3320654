// Command kube-apiserver is the upstream Kubernetes API server, built from
// the k8s.io/kubernetes module so that Trellis's integration tests can run
// against a real API server. It lives in its own Go module (this directory)
// so the main Trellis module never depends on k8s.io/kubernetes; build it
// with scripts/kube-tools.sh, which caches the binary outside the repository.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
