#!/usr/bin/env bash
# perfstat.sh [proxybench flags...] — CPU work per request of each proxy
# at saturation, counted by the CPU rather than timed: runs proxybench
# (default -pairs nginx-netns,trellis-tproxy -rounds 1 -duration 2s
# -saturation 10s; flags given here are added, a later one wins) and,
# once a proxy process is busy (its saturation run), attaches `perf stat`
# to it for 4 s. Requests are counted by the proxy's write system calls
# (each proxy of a pair writes once per request in each direction: write,
# or writev for nginx's responses), so the figures are per request:
# instructions and cycles in user space and in the kernel, system calls,
# context switches.
#
# PERFSTAT_RATE=1 counts the measured run at 1,000 requests/s instead
# (default -duration 15s -saturation 0; a proxy counts as busy from 0.02 s
# of CPU in half a second): what a request costs when the proxy idles
# between requests — wake-ups, context switches, the runtime's timers —
# which saturation hides.
#
# Instruction counts vary little with the load of a shared host (±1 %
# between runs), where cycles and µs/request vary by tens of per cent:
# they are what A/B comparisons of the request path's code use. A VM
# without a PMU (dmesg: "no PMU driver, software events only") counts no
# instructions or cycles: they print as n/a, and only system calls and
# context switches are measured. Root (network namespaces, perf with
# tracepoints).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perfstat: needs perf (apt-get install linux-perf)" >&2; exit 1; }
out=$(mktemp -d)
trap 'kill $watch 2>/dev/null || true; rm -rf "$out"' EXIT
ev=instructions:u,instructions:k,cycles:u,cycles:k,syscalls:sys_enter_write,syscalls:sys_enter_writev,raw_syscalls:sys_enter,context-switches

busy=20 # CPU ticks (1/100 s) in half a second
flags=(-duration 2s -saturation 10s)
what="at saturation (perf stat, 4 s of each proxy's saturation run)"
if [ "${PERFSTAT_RATE:-}" = 1 ]; then
	busy=2
	flags=(-duration 15s -saturation 0)
	what="at 1,000 req/s (perf stat, 4 s of each proxy's measured run)"
fi

# watch: perf-stat each proxy process (nginx worker, trellis sidecar)
# once, when it used more than busy ticks of CPU in half a second.
(
	declare -A seen prev
	while true; do
		for pid in $(pgrep -f 'nginx: worker|proxy[-a-z0-9]* sidecar' || true); do
			[ -n "${seen[$pid]:-}" ] && continue
			t=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null) || continue
			p=${prev[$pid]:-$t}
			prev[$pid]=$t
			if [ $((t - p)) -gt "$busy" ]; then
				seen[$pid]=1
				(
					sleep 1
					name=$(tr '\0' ' ' <"/proc/$pid/cmdline" | awk '{print $1}' | xargs basename)
					perf stat -x, -e "$ev" -p "$pid" -- sleep 4 2>"$out/$pid.raw" >/dev/null || true
					# A counter the host lacks (a VM without a PMU) reads
					# "<not supported>": shown as n/a, never as zero.
					awk -F, -v n="$name" '{v[$3]=$1}
						function k(e) { return v[e] ~ /^[0-9.]+$/ ? sprintf("%6.1fk", v[e]/r/1000) : "   n/a " }
						END {r=(v["syscalls:sys_enter_write"]+v["syscalls:sys_enter_writev"])/2; if (r < 1) exit;
						printf "%-16s %7d req  instructions user %s kernel %s  cycles user %s kernel %s  syscalls %.2f  context switches %.2f\n",
						n, r, k("instructions:u"), k("instructions:k"), k("cycles:u"), k("cycles:k"),
						v["raw_syscalls:sys_enter"]/r, v["context-switches"]/r}' "$out/$pid.raw" >"$out/$pid.txt"
				) &
			fi
		done
		sleep 0.5
	done
) &
watch=$!
go run -tags grpcnotrace ./bench/proxybench -pairs nginx-netns,trellis-tproxy -rounds 1 -warmup 1s "${flags[@]}" "$@" >"$out/bench.txt" 2>&1 || { cat "$out/bench.txt" >&2; exit 1; }
grep -E "^round" "$out/bench.txt" | grep -v direct || true
sleep 6
echo "per request, $what:"
cat "$out"/[0-9]*.txt 2>/dev/null || echo "perfstat: no proxy was seen busy (perf stat attached to nothing)" >&2
