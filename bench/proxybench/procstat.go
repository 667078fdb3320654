package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat: USER_HZ, fixed at
// 100 by the Linux ABI on the architectures we run on.
const userHZ = 100

// procTree returns root and all its descendants, from /proc/*/stat.
func procTree(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

type stat struct {
	ppid         int
	utime, stime uint64 // clock ticks, all threads of the process
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// parseStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("bad stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return stat{}, fmt.Errorf("short stat line")
	}
	var s stat
	var err error
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return stat{}, err
	}
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return stat{}, err
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return stat{}, err
	}
	return s, nil
}

// cpuTime is the user+system CPU time used so far by pid and its
// descendants (those alive now).
func cpuTime(root int) time.Duration {
	var ticks uint64
	for _, pid := range procTree(root) {
		if st, err := readStat(pid); err == nil {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// mem is memory from /proc/<pid>/status, kB.
type mem struct {
	RSS  uint64 // VmRSS: resident, file-backed pages (the executable, libraries) included
	HWM  uint64 // VmHWM: peak VmRSS
	Anon uint64 // RssAnon: resident private memory (heap, stacks)
}

// memKB sums memory over pid and its descendants.
func memKB(root int) mem {
	var m mem
	for _, pid := range procTree(root) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		p := parseStatus(b)
		m.RSS += p.RSS
		m.HWM += p.HWM
		m.Anon += p.Anon
	}
	return m
}

func parseStatus(b []byte) mem {
	var m mem
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		default:
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			*dst = n
		}
	}
	return m
}

// systemCPU is the CPU time all CPUs have spent since boot, from the first
// line of /proc/stat (user nice system idle iowait irq softirq steal …; guest
// time is already in user): busy is user, nice, system and steal; irq is irq
// and softirq, which this kernel accounts apart from any process (so the
// loopback receive path, run in softirq, is charged to no proxy).
func systemCPU() (busy, irq time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(f[1+i], 10, 64)
	}
	tick := func(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }
	return tick(v[0] + v[1] + v[2] + v[7]), tick(v[5] + v[6])
}
