#!/usr/bin/env bash
# Builds (if missing) the real Kubernetes components Trellis's integration
# tests run against, and prints where they are, one NAME=path per line:
#
#   KUBE_APISERVER=/root/.cache/trellis/kube-apiserver-v1.31.4
#   ETCD=/usr/bin/etcd
#
# kube-apiserver is built from the k8s.io/kubernetes module pinned in
# tools/kube-apiserver/go.mod (a module of its own, so the main module never
# depends on it) into ${TRELLIS_CACHE:-$HOME/.cache/trellis}, keyed by version,
# so it is built once per machine. etcd comes from Debian's etcd-server
# package; as root this script installs it when it is missing (set
# TRELLIS_NO_APT=1 to never call apt-get).
#
# The test harness (internal/kube/kubetest) looks in the same places; the
# environment variables TRELLIS_KUBE_APISERVER and TRELLIS_ETCD override both.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

tools="$root/tools/kube-apiserver"
version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$tools/go.mod")"
if [ -z "$version" ]; then
  echo "kube-tools: no k8s.io/kubernetes requirement in $tools/go.mod" >&2
  exit 1
fi
cache="${TRELLIS_CACHE:-$HOME/.cache/trellis}"
apiserver="${TRELLIS_KUBE_APISERVER:-$cache/kube-apiserver-$version}"

if [ ! -x "$apiserver" ]; then
  mkdir -p "$(dirname "$apiserver")"
  minor="${version#v1.}"; minor="${minor%%.*}"
  echo "kube-tools: building kube-apiserver $version into $apiserver (several minutes)" >&2
  tmp="$apiserver.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  (cd "$tools" && go build -trimpath -o "$tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" .)
  mv -f "$tmp" "$apiserver"
  trap - EXIT
fi

etcd="${TRELLIS_ETCD:-}"
if [ -z "$etcd" ]; then
  etcd="$(command -v etcd || true)"
fi
if [ -z "$etcd" ] && [ "$(id -u)" = 0 ] && [ -z "${TRELLIS_NO_APT:-}" ]; then
  echo "kube-tools: installing etcd-server" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2
  etcd="$(command -v etcd || true)"
fi
if [ -z "$etcd" ]; then
  echo "kube-tools: etcd not found: apt-get install etcd-server (or set TRELLIS_ETCD)" >&2
  exit 1
fi

echo "KUBE_APISERVER=$apiserver"
echo "ETCD=$etcd"
