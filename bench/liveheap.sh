#!/usr/bin/env bash
# liveheap.sh [TRELLIS_PROXY_BINARY] — live heap of a sidecar with 1,000
# services: runs proxybench's trellis pair (-services 1000, no saturation)
# and, once sidecar A is ready and settled, prints HeapAlloc/HeapInuse
# after forced GCs from its admin endpoint
# (/debug/pprof/heap?debug=1&gc=1). Root, network namespaces. Used for
# docs/benchmarks.md's live-heap figures (fifth and sixth rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-pairs trellis -rounds 1 -duration 25s -saturation 0 -services 1000)
if [ $# -gt 0 ]; then args+=(-trellis-proxy "$1"); fi
log=$(mktemp)
go run -tags grpcnotrace ./bench/proxybench "${args[@]}" >"$log" 2>&1 &
bench=$!
ns=""
for _ in $(seq 1 120); do
	ns=$(ip netns list | grep -o "pb[0-9]*-client" | head -1 || true)
	if [ -n "$ns" ] && ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15021/healthz/ready 2>/dev/null; then
		break
	fi
	sleep 1
done
if [ -z "$ns" ]; then
	echo "liveheap: sidecar A never became ready; proxybench said:" >&2
	cat "$log" >&2
	exit 1
fi
sleep 15
for _ in 1 2; do
	ip netns exec "$ns" curl -s 'http://127.0.0.1:15000/debug/pprof/heap?debug=1&gc=1' |
		grep -E '^# (HeapAlloc|HeapInuse|HeapSys|HeapReleased) '
	sleep 2
done
wait "$bench" || { cat "$log" >&2; exit 1; }
