//go:build linux

package execpages

import (
	"bufio"
	"encoding/binary"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf16"
)

func TestReadOnlySpans(t *testing.T) {
	maps := []byte(`00400000-00e19000 r-xp 00000000 08:01 1234 /usr/local/bin/trellis
00e19000-019ee000 r--p 00a19000 08:01 1234 /usr/local/bin/trellis
019ee000-01a86000 rw-p 015ee000 08:01 1234 /usr/local/bin/trellis
01a86000-01b00000 rw-p 00000000 00:00 0
7f4b17985000-7f4b17adb000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f4b18000000-7f4b18001000 r--s 00000000 08:01 1234 /usr/local/bin/trellis
`)
	got, err := readOnlySpans(maps, 1234)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x400000, 0xe19000}, {0xe19000, 0x19ee000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("spans %x, want %x (text and rodata only: not data, anonymous, libc or shared)", got, want)
	}
	if _, err := readOnlySpans([]byte("zz r-xp 0 08:01 1234 /x\n"), 1234); err == nil {
		t.Error("a line without an address range was accepted")
	}
}

// TestReleaseDropsResidentExecutablePages: after Release the pages of a
// function the process ran are no longer mapped, the executable's
// resident set is smaller, and running the function maps them back.
func TestReleaseDropsResidentExecutablePages(t *testing.T) {
	pc := reflect.ValueOf(utf16.Encode).Pointer()
	if got := utf16.Encode([]rune("ok")); len(got) != 2 {
		t.Fatal(got)
	}
	if !mapped(t, pc) {
		t.Fatal("the page of a function just run is not mapped")
	}
	before := exeRss(t)
	n, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	stillMapped := mapped(t, pc)
	after := exeRss(t)
	t.Logf("released %d KiB of mappings; resident executable pages %d KiB -> %d KiB", n>>10, before>>10, after>>10)
	if n == 0 || stillMapped || after >= before {
		t.Fatalf("released %d KiB: function page still mapped %v, resident executable pages %d KiB -> %d KiB", n>>10, stillMapped, before>>10, after>>10)
	}
	if got := utf16.Encode([]rune("ok")); len(got) != 2 || !mapped(t, pc) {
		t.Fatalf("the function's page did not come back on use: %v", got)
	}
}

// mapped reports whether the page holding addr is present in this
// process's page tables (/proc/self/pagemap bit 63).
func mapped(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(addr/uintptr(os.Getpagesize()))*8); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])>>63 == 1
}

// exeRss sums the Rss of this process's non-writable private mappings of
// its executable (/proc/self/smaps).
func exeRss(t *testing.T) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total uint64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			ino, _ := strconv.ParseUint(fields[4], 10, 64)
			in = ino == st.Ino && fields[1][1] != 'w' && fields[1][3] == 'p'
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
