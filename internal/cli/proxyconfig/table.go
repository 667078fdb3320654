package proxyconfig

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Table is a header and rows of cells, printed aligned as istioctl does.
type Table struct {
	Header []string
	Rows   [][]string
}

// Write prints the table aligned; empty cells stay empty and lines carry
// no trailing blanks.
func (t Table) Write(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.Header, "\t"))
	for _, r := range t.Rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for line := range strings.Lines(buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// Filter narrows the rows of a table; zero fields match everything.
type Filter struct {
	// Port matches a listener's, cluster's or endpoint's port.
	Port uint32
	// Address matches a listener's or endpoint's IP.
	Address string
	// FQDN matches a cluster's service host name.
	FQDN string
	// Subset and Direction (inbound, outbound) match clusters.
	Subset    string
	Direction string
	// Name matches a route configuration's name.
	Name string
	// Cluster matches an endpoint's cluster name.
	Cluster string
	// Status matches an endpoint's health status (HEALTHY, UNHEALTHY, ...).
	Status string
}
