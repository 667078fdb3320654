#!/usr/bin/env bash
# The whole Trellis test suite, as CI runs it. Installs what the tests need
# (iptables, as root), checks formatting and vet, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

echo "== go version: $(go version)"
# The network-namespace tests (capture, listener, test/e2e, test/security)
# need iptables and iproute2, and the end-to-end tests drive curl (Debian
# packages, not all preinstalled). As root, install what is missing;
# otherwise those tests fail saying what to install.
need=()
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# The dashboard's browser test drives Debian's headless Chromium.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
# The Kubernetes integration tests (internal/kube/kubetest) run a real
# kube-apiserver and etcd. As root or in CI, build kube-apiserver into
# ${TRELLIS_CACHE:-$HOME/.cache/trellis} (once per version) and, as root,
# install Debian's etcd-server; otherwise those tests fail saying what to run.
if [ "$(id -u)" = 0 ] || [ -n "${CI:-}" ]; then
  echo "== kube-apiserver and etcd"
  scripts/kube-tools.sh || echo "kube-tools.sh failed: the Kubernetes tests will fail"
fi
# The security suite (test/security) runs real nginx and Apache httpd
# behind the proxy.
if { ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; } || [ ! -x /usr/sbin/apache2 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing nginx apache2"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx apache2
  fi
fi
unformatted=$(gofmt -l cmd internal test bench examples 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -race -count=1 -timeout 30m "$@" ./...
# Every fuzz target of the module (found by scripts/fuzz.sh), briefly, in
# CI.
if [ "${CI:-}" = true ]; then
  echo "== fuzz"
  scripts/fuzz.sh
fi
