#!/usr/bin/env bash
# Runs every fuzz target the security work relies on briefly (FUZZTIME,
# default 10s each). A crasher is written by Go to the package's
# testdata/fuzz/<Target>/ and from then on runs as a regression case of
# the ordinary `go test`; commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
fuzztime="${FUZZTIME:-10s}"
targets=(
  "./internal/dataplane/http FuzzNormalize"          # path normaliser
  "./internal/dataplane/http FuzzParseRequestHead"   # HTTP/1 head and header validation
  "./internal/dataplane/http FuzzOriginForm"         # request-target fast path agrees with net/url
  "./internal/dataplane/rbac FuzzRBACMatch"          # policy matcher
  "./internal/dataplane/rbac FuzzURITemplate"        # {*}/{**} path templates
  "./internal/dataplane/route FuzzMatch"             # route matching of hostile requests
  "./internal/dataplane/pgv FuzzValidate"            # xDS validation agrees with the generated PGV code
)
# JWT parsing, when its fuzz target exists.
if grep -qs "func FuzzParse" internal/dataplane/http/filter/jwt/*_test.go; then
  for f in $(grep -ho "func Fuzz[A-Za-z0-9_]*" internal/dataplane/http/filter/jwt/*_test.go | cut -d' ' -f2); do
    targets+=("./internal/dataplane/http/filter/jwt $f")
  done
fi
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $name ($pkg, $fuzztime)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
