#!/usr/bin/env bash
# The whole Trellis test suite, as CI runs it. Installs what the tests need
# (nothing beyond Go yet), checks formatting and vet, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

echo "== go version: $(go version)"
unformatted=$(gofmt -l cmd internal test bench 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -race -count=1 -timeout 30m "$@" ./...
