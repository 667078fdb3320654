// Package execpages releases a process's mappings of its own executable's
// read-only pages once start-up is over.
//
// A Go binary's package initialisers, flag and command set-up, and the
// decoding and compiling of the first configuration are spread over the
// whole text, and every page fault of a file mapping maps up to 64 KiB of
// neighbouring pages that are already in the page cache (the kernel's
// fault-around). After start-up a sidecar therefore maps nearly all of
// its executable (17 MB of 18: machine code, read-only data, the
// runtime's function tables) while it uses well under half of it.
// Release drops those mappings with madvise(MADV_DONTNEED): the pages
// stay in the page cache, which every sidecar of the same image on a
// node shares, and the ones the proxy runs again are mapped back by
// ordinary minor faults. The process's resident set then follows its
// working set, and the unmapped pages become the first the kernel can
// reclaim under memory pressure.
//
// Only private, non-writable mappings of the executable's own file are
// released (matched by inode through /proc/self/maps): their pages are
// never modified, so dropping a mapping loses nothing. Writable data,
// the heap and shared libraries are left alone. On systems other than
// Linux Release does nothing.
package execpages
