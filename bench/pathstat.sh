#!/usr/bin/env bash
# pathstat.sh [proxybench flags...] — user-space instructions each proxy
# runs on the client's path, per request, at 1,000 requests/s.
#
# A proxy adds latency with the work it does between receiving a request
# and sending it on (the request direction), and between receiving the
# response and sending it back (the response direction); what it does
# after sending (telemetry, bookkeeping, parking) only costs CPU. This
# script runs proxybench's measured run (default -pairs
# nginx-netns,trellis-tproxy -rounds 1 -duration 18s -warmup 1s
# -saturation 0; flags given here are added, a later one wins) and
# records, for 8 s of each proxy process (nginx worker, trellis sidecar,
# gorelay), its system calls and a sample of its user-space instructions
# every 2,000. A window opens when a read returns data and closes at the
# next write of the same thread; the instructions sampled inside are the
# on-path work. Reads of fewer than 600 bytes are requests, larger ones
# responses (they carry proxybench's 1 KiB body). Printed per proxy:
# instructions per request in all, on the request path, on the response
# path (thousands; runs of one build agree within ~1k).
#
# Like perfstat.sh, it counts instructions, not time, so it compares
# builds on a noisy host.
#
# PATHSTAT_TIME=1 measures time instead (system calls only, no sampling):
# per proxy, percentiles in µs of the request and response windows (read
# returning data → next write) and of the wake-up before them (a blocking
# epoll wait returning → the read), to tell a tail spent inside the proxy
# from one spent before it reads. The tracepoints add a few µs to every
# figure, alike for every proxy. Root (network namespaces, perf tracepoints);
# it raises kernel.perf_event_max_sample_rate for the run and restores it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "pathstat: needs perf (apt-get install linux-perf)" >&2; exit 1; }
period=2000
out=$(mktemp -d)
rate=$(sysctl -n kernel.perf_event_max_sample_rate)
pct=$(sysctl -n kernel.perf_cpu_time_max_percent)
restore() {
	kill "$watch" 2>/dev/null || true
	sysctl -qw kernel.perf_cpu_time_max_percent=50 kernel.perf_event_max_sample_rate="$rate" kernel.perf_cpu_time_max_percent="$pct" || true
	rm -rf "$out"
}
watch=
trap restore EXIT
# The kernel caps sampling (here at 1,750/s); a proxy at 1,000 requests/s
# needs ~30,000 samples/s. The cap can only be set while the CPU-time
# limit is neither 0 nor 100; 0 then stops the kernel lowering it again.
sysctl -qw kernel.perf_cpu_time_max_percent=50 kernel.perf_event_max_sample_rate=100000 kernel.perf_cpu_time_max_percent=0

# windows MODE NAME: perf script -F tid,time,event,trace of a proxy's
# system calls (and, for MODE instructions, its instruction samples). A
# window opens when a read returns data (not a MSG_PEEK) and closes at the
# thread's next write, writev or sendto; reads under 600 bytes are
# requests, larger ones responses. MODE instructions prints the on-path
# instructions per request; MODE time prints one line per window, "req|resp
# µs", and per wake-up before it (a blocking epoll wait returning → the
# read), "req-wake|resp-wake µs".
windows() {
	awk -v mode="$1" -v n="$2" -v period="$period" '
	{ tid = $1; t = $2; sub(":", "", t) }
	# sys_enter: "TID TIME: raw_syscalls:sys_enter: NR nr (a0, a1, a2, a3, ...)" (hex args)
	$3 == "raw_syscalls:sys_enter:" {
		nr = $5; flags[tid] = $9; sub(",", "", flags[tid])
		if ((nr == 1 || nr == 20 || nr == 44) && (tid in dir)) {
			d = dir[tid]
			if (mode == "time") {
				printf "%s %.1f\n", d, (t - start[tid]) * 1e6
				if (tid in woke) printf "%s-wake %.1f\n", d, (start[tid] - woke[tid]) * 1e6
			}
			sum[d] += cnt[tid]; num[d]++
			delete dir[tid]; delete woke[tid]
		}
		if (nr == 1 || nr == 20) writes++
		if (nr == 232 || nr == 281 || nr == 441) waiting[tid] = t # epoll_wait, epoll_pwait, epoll_pwait2
		next
	}
	# sys_exit: "TID TIME: raw_syscalls:sys_exit: NR nr = ret"
	$3 == "raw_syscalls:sys_exit:" {
		nr = $5; ret = $7
		if (tid in waiting) {
			# a wait that blocked (over 20 µs) and returned events
			if (ret > 0 && t - waiting[tid] > 0.00002) lastwake[tid] = t; else delete lastwake[tid]
			delete waiting[tid]
		}
		f = flags[tid] # recvfrom with MSG_PEEK (0x2) looks, does not read
		peek = nr == 45 && substr(f, length(f), 1) ~ /[2367abef]/
		if ((nr == 0 || nr == 45) && ret > 0 && !peek) {
			dir[tid] = ret < 600 ? "req" : "resp"; start[tid] = t; cnt[tid] = 0
			if (tid in lastwake) { woke[tid] = lastwake[tid]; delete lastwake[tid] }
		}
		next
	}
	$3 ~ /^instructions/ { all++; if (tid in dir) cnt[tid]++ }
	END {
		r = writes / 2
		if (mode != "instructions" || r < 1 || num["req"] < 1 || num["resp"] < 1) exit
		printf "%-16s %5d req  user instructions per request %5.1fk  on the request path %5.1fk  on the response path %5.1fk\n",
			n, r, all * period / r / 1000, sum["req"] * period / num["req"] / 1000, sum["resp"] * period / num["resp"] / 1000
	}'
}

# percentiles NAME: "kind value" lines → one line per kind.
percentiles() {
	sort -k1,1 -k2,2n | awk -v n="$1" '
	function flush() {
		if (c > 0) printf "%-16s %-9s %5d  p50 %6.1f  p90 %6.1f  p99 %6.1f  p99.9 %6.1f µs\n", n, k, c, v[int(c*0.5)+1], v[int(c*0.9)+1], v[int(c*0.99)+1], v[int(c*0.999)+1]
	}
	$1 != k { flush(); k = $1; c = 0 }
	{ v[++c] = $2 }
	END { flush() }'
}

(
	declare -A seen
	while true; do
		for pid in $(pgrep -f 'nginx: worker|proxy[-a-z0-9]* sidecar|proxybench _relay' || true); do
			[ -n "${seen[$pid]:-}" ] && continue
			seen[$pid]=1
			(
				sleep 5 # past the warm-up
				name=$(tr '\0' ' ' <"/proc/$pid/cmdline" | awk '{n=$1; sub(".*/", "", n); print n}')
				if [ -n "${PATHSTAT_TIME:-}" ]; then
					perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$pid" -o "$out/$pid.data" -- sleep 8 >/dev/null 2>&1 || exit 0
					perf script -i "$out/$pid.data" -F tid,time,event,trace 2>/dev/null | windows time "$name" | percentiles "$name" >"$out/$pid.txt"
				else
					perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -e "instructions/period=$period/u" \
						-p "$pid" -o "$out/$pid.data" -- sleep 8 >/dev/null 2>&1 || exit 0
					perf script -i "$out/$pid.data" -F tid,time,event,trace 2>/dev/null | windows instructions "$name" >"$out/$pid.txt"
				fi
			) &
		done
		sleep 0.5
	done
) &
watch=$!
go run -tags grpcnotrace ./bench/proxybench -pairs nginx-netns,trellis-tproxy -rounds 1 -duration 18s -warmup 1s -saturation 0 "$@" >"$out/bench.txt" 2>&1 || { cat "$out/bench.txt" >&2; exit 1; }
sleep 2
echo "per request, at 1,000 requests/s (perf record, 8 s of each proxy's measured run):"
cat "$out"/[0-9]*.txt 2>/dev/null || echo "pathstat: no proxy was recorded" >&2
