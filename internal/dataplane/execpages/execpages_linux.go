package execpages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Release drops this process's mappings of its executable's read-only
// pages and returns the bytes of the mappings it released.
func Release() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("releasing executable pages: stat /proc/self/exe: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("releasing executable pages: %w", err)
	}
	spans, err := readOnlySpans(maps, st.Ino)
	if err != nil {
		return 0, fmt.Errorf("releasing executable pages: /proc/self/maps: %w", err)
	}
	var total uint64
	for _, s := range spans {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, s.start, s.end-s.start, syscall.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("releasing executable pages: madvise %#x-%#x: %w", s.start, s.end, errno)
		}
		total += uint64(s.end - s.start)
	}
	return total, nil
}

// span is one mapping, [start, end).
type span struct{ start, end uintptr }

// readOnlySpans returns the private, non-writable mappings of the file
// with inode ino in a /proc/PID/maps listing
// ("start-end perms offset dev inode path").
func readOnlySpans(maps []byte, ino uint64) ([]span, error) {
	var out []span
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue // anonymous mapping
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("line %q: no address range", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("line %q: bad address range", sc.Text())
		}
		out = append(out, span{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
