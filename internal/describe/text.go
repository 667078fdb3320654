package describe

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/trellismesh/trellis/internal/analysis"
)

// printer accumulates text; the first write error is kept.
type printer struct {
	b bytes.Buffer
}

func (p *printer) f(format string, args ...any) { fmt.Fprintf(&p.b, format, args...) }

// table prints rows aligned, indented by two spaces.
func (p *printer) table(header []string, rows [][]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		p.b.WriteString(strings.TrimRight(line, " \n"))
		p.b.WriteByte('\n')
	}
}

func (p *printer) done(w io.Writer) error {
	_, err := w.Write(p.b.Bytes())
	return err
}

func source(o Object) string {
	if o.Source == "" {
		return o.Ref()
	}
	return o.Ref() + " (" + o.Source + ")"
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteService prints a service report as text.
func WriteService(w io.Writer, r *ServiceReport) error {
	p := &printer{}
	p.f("Service:     %s\n", r.Host)
	p.f("Namespace:   %s\n", r.Namespace)
	p.f("Declared by: %s %s\n", r.Source.Kind, source(r.Source))
	loc := "mesh internal"
	if r.MeshExternal {
		loc = "mesh external"
	}
	p.f("Resolution:  %s (%s)\n", r.Resolution, loc)
	if len(r.Addresses) > 0 {
		p.f("Addresses:   %s\n", strings.Join(r.Addresses, ", "))
	}
	p.f("Export to:   %s\n", strings.Join(r.ExportTo, ", "))
	var ports []string
	for _, pt := range r.Ports {
		s := fmt.Sprintf("%s %d/%s", pt.Name, pt.Number, pt.Protocol)
		if pt.TargetPort != 0 && pt.TargetPort != pt.Number {
			s += fmt.Sprintf(" (target %d)", pt.TargetPort)
		}
		ports = append(ports, s)
	}
	p.f("Ports:       %s\n", strings.Join(ports, ", "))
	if r.Port != 0 {
		p.f("Described:   port %d only\n", r.Port)
	}
	if len(r.Workloads) == 0 {
		p.f("Workloads:   none (no endpoint)\n")
	} else {
		p.f("Workloads:\n")
		var rows [][]string
		for _, wl := range r.Workloads {
			rows = append(rows, []string{wl.Namespace + "/" + wl.Name, wl.Address, dashIfEmpty(wl.ServiceAccount), dashIfEmpty(wl.TLSMode), dashIfEmpty(labelString(wl.Labels))})
		}
		p.table([]string{"WORKLOAD", "ADDRESS", "SERVICE ACCOUNT", "TLS MODE", "LABELS"}, rows)
	}

	p.f("\nSeen from:   %s\n", viewpoint(r.From))
	if r.Visible {
		p.f("Visible:     yes: %s\n", r.VisibleReason)
	} else {
		p.f("Visible:     NO: %s\n", r.VisibleReason)
	}

	p.f("\nVirtualServices:\n")
	if len(r.VirtualServices) == 0 {
		p.f("  none: requests go to every workload of the service (default route)\n")
	}
	for _, vs := range r.VirtualServices {
		state := "not applied"
		if vs.Applies {
			state = "APPLIES"
		}
		p.f("  %s: %s\n", source(vs.Object), state)
		p.f("    why: %s\n", vs.Reason)
		if len(vs.Gateways) > 0 {
			p.f("    gateways: %s\n", strings.Join(vs.Gateways, ", "))
		}
		if !vs.Applies {
			continue
		}
		for _, rt := range vs.Routes {
			name := ""
			if rt.Name != "" {
				name = " " + strconv.Quote(rt.Name)
			}
			if len(rt.Match) == 0 {
				p.f("    %s[%d]%s: any request\n", rt.Kind, rt.Index, name)
			} else {
				p.f("    %s[%d]%s: %s\n", rt.Kind, rt.Index, name, strings.Join(rt.Match, "  OR  "))
			}
			for _, d := range rt.Destinations {
				s := d.Host
				if d.Subset != "" {
					s += " subset " + d.Subset
				}
				if d.Port != 0 {
					s += fmt.Sprintf(" port %d", d.Port)
				}
				p.f("      → %s  %d%%\n", s, d.Weight)
				if d.Problem != "" {
					p.f("        PROBLEM: %s\n", d.Problem)
				}
			}
			for _, a := range rt.Actions {
				p.f("      %s\n", a)
			}
		}
	}

	p.f("\nDestinationRule:\n")
	if dr := r.DestinationRule; dr == nil {
		p.f("  none: no DestinationRule for this host applies to the client (no subsets; default traffic policy)\n")
	} else {
		p.f("  %s, host %s\n", source(dr.Object), dr.Host)
		p.f("    why: %s\n", dr.Reason)
		for _, l := range dr.Policy {
			p.f("    %s\n", l)
		}
		for _, s := range dr.Subsets {
			wl := strings.Join(s.Workloads, ", ")
			if wl == "" {
				wl = "NO WORKLOAD"
			}
			p.f("    subset %s (%s): %s\n", s.Name, dashIfEmpty(labelString(s.Labels)), wl)
			for _, l := range s.Policy {
				p.f("      %s\n", l)
			}
		}
	}
	if len(r.OtherDestinationRules) > 0 {
		p.f("  not in effect:\n")
		for _, c := range r.OtherDestinationRules {
			p.f("    %s, host %s: %s\n", source(c.Object), c.Host, c.Reason)
		}
	}

	p.f("\nClusters (outbound traffic policy per port and subset):\n")
	for _, c := range r.Clusters {
		p.f("  %s\n", c.Name)
		p.f("    tls: %s: %s\n", c.TLS, c.TLSReason)
		for _, l := range c.Policy {
			p.f("    %s\n", l)
		}
	}

	p.f("\nInbound mTLS (PeerAuthentication):\n")
	writeMTLS(p, r.MTLS)
	for _, c := range r.Conflicts {
		p.f("  CONFLICT: %s\n", c)
	}
	p.f("\nAuthorizationPolicies:\n")
	writeAuthz(p, r.Authorization, true)
	p.f("\nAnalysis:\n")
	writeMessages(p, r.Messages)
	return p.done(w)
}

func viewpoint(v Viewpoint) string {
	s := "sidecars in namespace " + v.Namespace
	if v.Workload != "" {
		s = "workload " + v.Namespace + "/" + v.Workload
	}
	if len(v.Labels) > 0 {
		s += " (labels " + labelString(v.Labels) + ")"
	} else if v.Workload == "" {
		s += " (no labels)"
	}
	if v.Sidecar != nil {
		s += "; Sidecar " + source(*v.Sidecar)
	} else {
		s += "; no Sidecar resource"
	}
	return s
}

func mtlsDecider(m PortMTLS) string {
	switch m.Level {
	case "port":
		return "portLevelMtls of workload policy " + m.Policy
	case "workload", "namespace", "mesh":
		return m.Level + " policy " + m.Policy
	case "default":
		return "default (no PeerAuthentication sets a mode)"
	}
	return m.Level
}

func writeMTLS(p *printer, ms []PortMTLS) {
	if len(ms) == 0 {
		p.f("  no workload\n")
		return
	}
	var rows [][]string
	for _, m := range ms {
		port := strconv.FormatUint(uint64(m.Port), 10)
		if m.Port == 0 {
			port = "-"
		}
		rows = append(rows, []string{m.Workload, port, m.Mode, mtlsDecider(m)})
	}
	p.table([]string{"WORKLOAD", "PORT", "MODE", "DECIDED BY"}, rows)
}

func writeAuthz(p *printer, as []Authorization, showWorkloads bool) {
	if len(as) == 0 {
		p.f("  none: every request is allowed\n")
		return
	}
	for _, a := range as {
		p.f("  %s %s\n", a.Action, source(a.Object))
		p.f("    selects: %s", a.Scope)
		if showWorkloads {
			p.f(": %s", strings.Join(a.Workloads, ", "))
		}
		p.f("\n")
		for _, r := range a.Rules {
			p.f("    rule: %s\n", r)
		}
	}
}

func writeMessages(p *printer, ms []analysis.Message) {
	if len(ms) == 0 {
		p.f("  no messages\n")
		return
	}
	for _, m := range ms {
		p.f("  %s\n", m.String())
	}
}

// WriteWorkload prints a workload report as text.
func WriteWorkload(w io.Writer, r *WorkloadReport) error {
	p := &printer{}
	p.f("Workload:        %s\n", r.Name)
	p.f("Namespace:       %s\n", r.Namespace)
	p.f("Declared by:     %s %s\n", r.Kind, source(r.Object))
	p.f("Address:         %s\n", r.Address)
	p.f("Labels:          %s\n", dashIfEmpty(labelString(r.Labels)))
	p.f("Service account: %s\n", dashIfEmpty(r.ServiceAccount))
	if r.Identity != "" {
		p.f("Identity:        %s\n", r.Identity)
	}
	if len(r.Ports) > 0 {
		p.f("Ports:           %s\n", labelString(uint32Map(r.Ports)))
	}
	if r.Network != "" || r.Locality != "" {
		p.f("Network:         %s, locality %s\n", dashIfEmpty(r.Network), dashIfEmpty(r.Locality))
	}
	p.f("\nServices:\n")
	if len(r.Services) == 0 {
		p.f("  none: no ServiceEntry selects it\n")
	}
	for _, s := range r.Services {
		p.f("  %s (namespace %s): %s\n", s.Host, s.Namespace, strings.Join(s.Ports, ", "))
	}
	p.f("\nSidecar resource:\n")
	if s := r.Sidecar; s == nil {
		p.f("  none: %s\n", r.SidecarReason)
	} else {
		p.f("  %s\n", source(s.Object))
		p.f("    why: %s\n", s.Reason)
		for _, e := range s.Egress {
			p.f("    egress: %s\n", e)
		}
		for _, i := range s.Ingress {
			p.f("    ingress: %s\n", i)
		}
		if s.Outbound != "" {
			p.f("    outbound traffic policy: %s\n", s.Outbound)
		}
	}
	p.f("\nOutbound:\n")
	policy := "REGISTRY_ONLY (unknown destinations are blocked)"
	if r.Outbound.AllowAny {
		policy = "ALLOW_ANY (unknown destinations pass through)"
	}
	p.f("  %d services visible; %s\n", r.Outbound.VisibleServices, policy)
	if len(r.Outbound.VirtualServices) == 0 {
		p.f("  no VirtualService in scope\n")
	}
	for _, v := range r.Outbound.VirtualServices {
		p.f("  VirtualService %s\n", v)
	}
	p.f("\nInbound mTLS (PeerAuthentication):\n")
	p.f("  workload mode: %s, decided by %s\n", r.MTLSDefault.Mode, mtlsDecider(r.MTLSDefault))
	if len(r.MTLS) > 0 {
		var rows [][]string
		for _, m := range r.MTLS {
			rows = append(rows, []string{strconv.FormatUint(uint64(m.Port), 10), m.Mode, mtlsDecider(m)})
		}
		p.table([]string{"PORT", "MODE", "DECIDED BY"}, rows)
	}
	p.f("\nAuthorizationPolicies:\n")
	writeAuthz(p, r.Authorization, false)
	p.f("\nAnalysis:\n")
	writeMessages(p, r.Messages)
	return p.done(w)
}

func uint32Map(m map[string]uint32) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = strconv.FormatUint(uint64(v), 10)
	}
	return out
}
