package proxyconfig

import (
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Secret types, as istioctl names them.
const (
	certChain = "Cert Chain"
	rootCA    = "CA"
)

// NoSecrets is printed when a dump neither holds nor references a secret.
const NoSecrets = "No secrets: the configuration references no SDS secret and the proxy holds none (no TLS in use)."

// SecretRef is an SDS secret and what refers to it.
type SecretRef struct {
	Name string
	Type string
	// Status is the secret's state in the proxy (ACTIVE, WARMING), or NOT
	// SERVED when the dump holds no such secret: the control plane's dump
	// never does (SDS is served to the proxy by its own agent), and a proxy
	// without an SDS source waits for it.
	Status   string
	Clusters int
	Listener int
}

// SecretRefs returns the secrets the dump holds or its clusters' and
// listeners' TLS transport sockets reference over SDS, sorted by name.
func SecretRefs(d *Dump) []SecretRef {
	byName := map[string]*SecretRef{}
	ref := func(name, typ string) *SecretRef {
		r := byName[name]
		if r == nil {
			r = &SecretRef{Name: name, Type: typ, Status: "NOT SERVED"}
			byName[name] = r
		}
		return r
	}
	for _, c := range d.Clusters {
		sockets := []*corev3.TransportSocket{c.GetTransportSocket()}
		for _, m := range c.GetTransportSocketMatches() {
			sockets = append(sockets, m.GetTransportSocket())
		}
		for _, name := range socketSecrets(sockets) {
			ref(name[0], name[1]).Clusters++
		}
	}
	for _, l := range d.Listeners {
		var sockets []*corev3.TransportSocket
		for _, fc := range l.GetFilterChains() {
			sockets = append(sockets, fc.GetTransportSocket())
		}
		if dc := l.GetDefaultFilterChain(); dc != nil {
			sockets = append(sockets, dc.GetTransportSocket())
		}
		for _, name := range socketSecrets(sockets) {
			ref(name[0], name[1]).Listener++
		}
	}
	for _, s := range d.Secrets {
		r := byName[s.Name]
		if r == nil {
			r = &SecretRef{Name: s.Name, Type: "-"}
			byName[s.Name] = r
		}
		r.Status = s.Status
	}
	out := make([]SecretRef, 0, len(byName))
	for _, r := range byName {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b SecretRef) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// socketSecrets returns the distinct (name, type) SDS references of TLS
// transport sockets.
func socketSecrets(sockets []*corev3.TransportSocket) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, ts := range sockets {
		var common *tlsv3.CommonTlsContext
		var up tlsv3.UpstreamTlsContext
		var down tlsv3.DownstreamTlsContext
		switch a := ts.GetTypedConfig(); {
		case a == nil:
			continue
		case a.MessageIs(&up):
			if a.UnmarshalTo(&up) != nil {
				continue
			}
			common = up.GetCommonTlsContext()
		case a.MessageIs(&down):
			if a.UnmarshalTo(&down) != nil {
				continue
			}
			common = down.GetCommonTlsContext()
		default:
			continue
		}
		var refs [][2]string
		for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
			refs = append(refs, [2]string{s.GetName(), certChain})
		}
		if s := common.GetValidationContextSdsSecretConfig(); s != nil {
			refs = append(refs, [2]string{s.GetName(), rootCA})
		}
		if s := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); s != nil {
			refs = append(refs, [2]string{s.GetName(), rootCA})
		}
		for _, r := range refs {
			if r[0] != "" && !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// SecretTable lists SecretRefs: RESOURCE NAME, TYPE, STATUS, REFERENCED BY.
// It has no rows when there is no secret at all.
func SecretTable(d *Dump) Table {
	t := Table{Header: []string{"RESOURCE NAME", "TYPE", "STATUS", "REFERENCED BY"}}
	for _, r := range SecretRefs(d) {
		var by []string
		if r.Clusters > 0 {
			by = append(by, plural(r.Clusters, "cluster"))
		}
		if r.Listener > 0 {
			by = append(by, plural(r.Listener, "listener"))
		}
		t.Rows = append(t.Rows, []string{r.Name, r.Type, r.Status, dash(strings.Join(by, ", "))})
	}
	return t
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
