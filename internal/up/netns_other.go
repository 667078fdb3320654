//go:build !linux

package up

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

var errNetnsLinux = errors.New("--netns needs Linux network namespaces")

type network struct {
	bridge string
	addr   netip.Addr
}

func netnsPreflight(string, netip.Addr) error { return errNetnsLinux }

func newNetwork(context.Context, string, netip.Prefix) (*network, error) {
	return nil, errNetnsLinux
}

func (n *network) nsName(w Workload) string                               { return "" }
func (n *network) addNamespace(context.Context, string, netip.Addr) error { return errNetnsLinux }
func (n *network) removeNamespace(string) error                           { return nil }
func (n *network) remove() error                                          { return nil }
func dialIn(string, string, time.Duration) error                          { return errNetnsLinux }
