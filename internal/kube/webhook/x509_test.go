package webhook

import (
	"crypto/x509"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

func x509Opts(a *ca.Authority, name string, now time.Time) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: a.Roots().Pool(), DNSName: name, CurrentTime: now}
}
