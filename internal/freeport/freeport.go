package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// ephemeralRangeFile holds the kernel's range for ports bound to :0 and
// for outgoing connections' source ports.
const ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Lowest is the lowest port Pick returns: below it live well-known
// services (and the mesh's own 150xx ports).
const Lowest = 20000

// Pick returns a TCP port that is free on host now and that the kernel
// never hands out on its own: it lies outside the ephemeral range, so a
// later bind to port 0 (another listener of this or any program) or an
// outgoing connection's source port cannot take it between this check and
// the caller's bind. Without a readable range it falls back to asking the
// kernel for any free port.
func Pick(host string) (uint16, error) {
	lo, hi, err := ephemeralRange(ephemeralRangeFile)
	if err != nil {
		return kernelPort(host)
	}
	spans := outsideRange(Lowest, lo, hi)
	total := 0
	for _, s := range spans {
		total += s[1] - s[0] + 1
	}
	if total == 0 {
		return kernelPort(host)
	}
	for range 64 {
		n := rand.IntN(total)
		var port int
		for _, s := range spans {
			if size := s[1] - s[0] + 1; n < size {
				port = s[0] + n
				break
			} else {
				n -= size
			}
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return uint16(port), nil
	}
	return 0, fmt.Errorf("finding a free port on %s outside the ephemeral range %d-%d: 64 random ports were all in use", host, lo, hi)
}

// kernelPort asks the kernel for a free port on host.
func kernelPort(host string) (uint16, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port), nil
}

// ephemeralRange reads the kernel's ephemeral port range ("32768\t60999").
func ephemeralRange(path string) (lo, hi int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s: want two port numbers, got %q", path, b)
	}
	if lo, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if hi, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return lo, hi, nil
}

// outsideRange returns the inclusive spans of ports from `from` to 65535
// that are not in [lo, hi].
func outsideRange(from, lo, hi int) [][2]int {
	var spans [][2]int
	if below := min(lo-1, 65535); below >= from {
		spans = append(spans, [2]int{from, below})
	}
	if above := max(hi+1, from); above <= 65535 {
		spans = append(spans, [2]int{above, 65535})
	}
	return spans
}
