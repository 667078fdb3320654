package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/server"
)

var funcs = template.FuncMap{
	"workloadLink": workloadLink,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Truncate(time.Second).String() + " ago"
	},
	"lower": strings.ToLower,
	"stateClass": func(state string) string {
		return strings.ToLower(strings.ReplaceAll(state, " ", "-"))
	},
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

// ProxyRow is one connected proxy on the proxies page.
type ProxyRow struct {
	server.ClientStatus
	Link    string
	Types   []TypeRow
	Metrics Scrape
	// Scraped is false until the graph page has scraped the proxy.
	Scraped bool
}

// TypeRow is one xDS type of one proxy.
type TypeRow struct {
	Type, State, Version, LastNACK string
}

func proxiesView(clients []server.ClientStatus, scrapes map[string]Scrape) []ProxyRow {
	rows := make([]ProxyRow, 0, len(clients))
	for _, c := range clients {
		r := ProxyRow{ClientStatus: c, Link: workloadLink(c.ProxyID)}
		for _, t := range c.Types {
			r.Types = append(r.Types, TypeRow{Type: xds.ShortName(t.TypeURL), State: t.State(), Version: t.SentVersion, LastNACK: t.LastNACK})
		}
		r.Metrics, r.Scraped = scrapes[c.ProxyID]
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b ProxyRow) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ConnectionID, b.ConnectionID))
	})
	return rows
}

// ConfigView is the configuration page: every admitted object with its
// messages, then the messages about objects that were not admitted.
type ConfigView struct {
	Objects []ObjectRow
	// Other holds messages about no admitted object: rejected objects,
	// unreadable files.
	Other                   []analysis.Message
	Errors, Warnings, Infos int
}

// ObjectRow is one configuration object.
type ObjectRow struct {
	Kind, Namespace, Name, Source string
	Messages                      []analysis.Message
}

func configView(snap *model.Snapshot, problems []store.Problem) ConfigView {
	var v ConfigView
	msgs := analysis.Analyze(analysis.Input{Snapshot: snap, Problems: problems})
	counts := analysis.Count(msgs)
	v.Errors, v.Warnings, v.Infos = counts[analysis.Error], counts[analysis.Warning], counts[analysis.Info]
	type objKey struct{ kind, ns, name string }
	byObj := map[objKey]int{}
	if snap != nil {
		for _, sc := range schema.Istio().All() {
			for _, c := range snap.Configs(sc.GroupKind) {
				byObj[objKey{c.Kind.Kind, c.Namespace, c.Name}] = len(v.Objects)
				v.Objects = append(v.Objects, ObjectRow{Kind: c.Kind.Kind, Namespace: c.Namespace, Name: c.Name, Source: sourceString(c.Source)})
			}
		}
	}
	for _, m := range msgs {
		if i, ok := byObj[objKey{m.Origin.Kind, m.Origin.Namespace, m.Origin.Name}]; ok && m.Origin.Name != "" {
			v.Objects[i].Messages = append(v.Objects[i].Messages, m)
			continue
		}
		v.Other = append(v.Other, m)
	}
	slices.SortStableFunc(v.Objects, func(a, b ObjectRow) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return v
}

func sourceString(s config.Source) string {
	if s.Document > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Document)
	}
	return s.File
}

// WorkloadView is one proxy's effective configuration.
type WorkloadView struct {
	ProxyID, Name, Namespace string
	Labels                   []string
	// Error says why there is nothing to show (unknown proxy, no dump).
	Error string
	// PeerAuthentication is the effective inbound mTLS policy; PerPort its
	// port-level modes ("9080=STRICT").
	PeerAuthentication model.PeerAuthnPolicy
	PerPort            []string
	// Sidecar names the Sidecar resource that applies ("" if none).
	Sidecar string
	// Tables come from the control plane's config dump of the proxy,
	// through package proxyconfig (what `trellis proxy-config` prints).
	Routes, Clusters, Listeners, Secrets proxyconfig.Table
	DumpProblems                         []string
}

func (d *Dashboard) workloadView(r *http.Request, id string) WorkloadView {
	v := WorkloadView{ProxyID: id, Name: id}
	if id == "" {
		v.Error = "no proxy given: pick one on the proxies page"
		return v
	}
	var client *server.ClientStatus
	for _, c := range d.cfg.Clients() {
		if c.ProxyID == id || c.Name == id {
			if client == nil || c.ConnectedAt.After(client.ConnectedAt) {
				client = &c
			}
		}
	}
	if client == nil {
		v.Error = fmt.Sprintf("proxy %q is not connected to this control plane", id)
		return v
	}
	v.ProxyID, v.Name, v.Namespace = client.ProxyID, client.Name, client.Namespace
	for _, k := range slices.Sorted(maps.Keys(client.Labels)) {
		v.Labels = append(v.Labels, k+"="+client.Labels[k])
	}
	if snap := d.cfg.Snapshot(); snap != nil {
		v.PeerAuthentication = snap.PeerAuthentication(client.Namespace, client.Labels)
		for _, p := range slices.Sorted(maps.Keys(v.PeerAuthentication.PerPort)) {
			v.PerPort = append(v.PerPort, fmt.Sprintf("%d=%s", p, v.PeerAuthentication.PerPort[p]))
		}
		p := &model.Proxy{Type: model.ProxyType(client.Type), Namespace: client.Namespace, Labels: client.Labels}
		if sc, ok := snap.SidecarFor(p); ok {
			v.Sidecar = sc.Namespace + "/" + sc.Name
		}
	}
	dump, err := d.configDump(r.Context(), client.ProxyID)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Routes = proxyconfig.RouteTable(dump, proxyconfig.Filter{})
	v.Clusters = proxyconfig.ClusterTable(dump, proxyconfig.Filter{})
	v.Listeners = proxyconfig.ListenerTable(dump, proxyconfig.Filter{})
	v.Secrets = proxyconfig.SecretTable(dump)
	v.DumpProblems = dump.Problems
	return v
}

// maxDump bounds a config dump read from the debug handler.
const maxDump = 64 << 20

// configDump asks the xDS server's debug handler, in process, for what it
// sends the proxy, and parses it as `trellis proxy-config` does.
func (d *Dashboard) configDump(ctx context.Context, proxyID string) (*proxyconfig.Dump, error) {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/debug/config_dump?proxyID="+url.QueryEscape(proxyID), nil)
	req.RemoteAddr = "127.0.0.1:0" // in process: the debug handler's local-only guard, if any, passes
	rec := httptest.NewRecorder()
	d.cfg.Debug.ServeHTTP(rec, req)
	body, _ := io.ReadAll(io.LimitReader(rec.Result().Body, maxDump+1))
	if len(body) > maxDump {
		return nil, fmt.Errorf("config dump of %q: larger than %d bytes", proxyID, maxDump)
	}
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("config dump of %q: %s", proxyID, strings.TrimSpace(string(body)))
	}
	dump, err := proxyconfig.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("config dump of %q: %w", proxyID, err)
	}
	return dump, nil
}
