package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// startProfiles fetches, for each proxy with a pprof endpoint, a CPU profile
// and a delta allocation profile (allocs?seconds=N) covering most of the
// saturation run, from inside the proxy's network namespace with curl. The
// files are DIR/<pair>-r<round>-<proxy>-{cpu,allocs}.pb.gz (and, from
// saveHeaps at the end of the measured run, -heap.pb.gz). The returned
// function waits for the downloads. Profiling costs the proxies some CPU, so
// runs with -profile are not for figures.
func startProfiles(ctx context.Context, dir, pair string, round int, proxies []Proxy, d time.Duration) func() {
	secs := int((d - time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "proxybench: -profile: %v\n", err)
		return nil
	}
	var wg sync.WaitGroup
	for _, px := range proxies {
		if px.Admin == "" {
			continue
		}
		for _, kind := range []string{"profile", "allocs"} {
			name := "cpu"
			if kind == "allocs" {
				name = "allocs"
			}
			out := filepath.Join(dir, fmt.Sprintf("%s-r%d-%s-%s.pb.gz", pair, round, px.Name, name))
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", px.Admin, kind, secs)
			args := []string{"-sf", "-m", fmt.Sprint(secs + 30), "-o", out, url}
			cmd := exec.CommandContext(ctx, "curl", args...)
			if px.Netns != "" {
				cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", px.Netns, "curl"}, args...)...)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if b, err := cmd.CombinedOutput(); err != nil {
					fmt.Fprintf(os.Stderr, "proxybench: profiling %s %s: %v %s\n", px.Name, kind, err, b)
				}
			}()
		}
	}
	return wg.Wait
}

// saveHeaps fetches the heap profile (in-use and allocated since start)
// of each proxy with a pprof endpoint, at the end of the measured run when
// its RSS is read: DIR/<pair>-r<round>-<proxy>-heap.pb.gz.
func saveHeaps(ctx context.Context, dir, pair string, round int, proxies []Proxy) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "proxybench: -profile: %v\n", err)
		return
	}
	for _, px := range proxies {
		if px.Admin == "" {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("%s-r%d-%s-heap.pb.gz", pair, round, px.Name))
		args := []string{"-sf", "-m", "30", "-o", out, fmt.Sprintf("http://%s/debug/pprof/heap", px.Admin)}
		cmd := exec.CommandContext(ctx, "curl", args...)
		if px.Netns != "" {
			cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", px.Netns, "curl"}, args...)...)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "proxybench: heap profile of %s: %v %s\n", px.Name, err, b)
		}
	}
}
