package dashboard

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// Scrape is one fetch of one proxy's metrics.
type Scrape struct {
	// Proxy is the node ID, Name its pod.namespace.
	Proxy string `json:"proxy"`
	Name  string `json:"name"`
	// URL is what was fetched ("" when the proxy sent no metrics address).
	URL string    `json:"url,omitempty"`
	At  time.Time `json:"at"`
	// Error says why there is no sample; "" on success.
	Error  string `json:"error,omitempty"`
	Sample Sample `json:"-"`
}

// Round is one scrape of every connected proxy, by proxy ID.
type Round struct {
	At      time.Time
	Proxies map[string]Scrape
}

// Graph is the service graph the page draws: nodes placed by Layout, one
// edge per source, destination and service.
type Graph struct {
	Generated time.Time `json:"generated"`
	// Measured is false until two rounds of scrapes exist: edges are known
	// from the counters, rates are not yet.
	Measured bool    `json:"measured"`
	Nodes    []Node  `json:"nodes"`
	Edges    []Edge  `json:"edges"`
	Width    float64 `json:"width"`
	Height   float64 `json:"height"`
	// Scrapes is the latest scrape of each proxy, failures included.
	Scrapes []Scrape `json:"scrapes"`
	// NextPollMillis tells the page when new numbers will be there.
	NextPollMillis int64 `json:"next_poll_ms"`
}

// Node kinds.
const (
	KindWorkload = "workload"
	KindService  = "service" // a destination whose workload is unknown
	KindUnknown  = "unknown" // a source without a sidecar
)

// Node is a workload (or a service, when the destination workload is not
// known, or the unknown source).
type Node struct {
	ID        string  `json:"id"`
	Kind      string  `json:"kind"`
	Name      string  `json:"name"`
	Namespace string  `json:"namespace,omitempty"`
	X         float64 `json:"x"`
	Y         float64 `json:"y"`
}

// mTLS states of an edge.
const (
	MTLSMutual  = "mutual_tls"
	MTLSNone    = "none"
	MTLSMixed   = "mixed"
	MTLSUnknown = "unknown" // no destination-reported traffic
)

// Edge is the traffic from one node to another for one destination
// service, as the proxies counted it.
type Edge struct {
	Source  string `json:"source"`
	Target  string `json:"target"`
	Service string `json:"service"`
	// Reporter is whose counts are used: "source" when the calling proxy
	// reported the traffic, else "destination" (its callee's sidecar);
	// never both, which would count requests twice.
	Reporter string `json:"reporter"`
	// Total is the requests counted since the proxies started.
	Total float64 `json:"total"`
	// RPS is requests per second between the last two scrapes; ErrorRate
	// the share (0..1) of them answered 5xx; P99 the 99th percentile of
	// their duration in ms, estimated from the histogram (nil: no request
	// in the window).
	RPS       float64  `json:"rps"`
	ErrorRate float64  `json:"error_rate"`
	P99       *float64 `json:"p99_ms"`
	// MTLS is the connection_security_policy of the destination-reported
	// requests: mutual_tls, none, mixed, or unknown when only the source
	// reported (a source proxy cannot tell, as in Istio).
	MTLS string `json:"mtls"`
}

type edgeKey struct{ source, target, service string }

// edgeAcc adds up one reporter's series of one edge.
type edgeAcc struct {
	total, rps, errRPS float64
	hist               histogram
	measured           bool
	// window and since count requests by connection_security_policy in
	// the window and since the proxies started.
	window, since map[string]float64
}

// Compute builds the graph from the latest round and the one before it
// (nil for the first): counters become rates over each proxy's own
// interval between its two scrapes. A series missing from the previous
// scrape of the same proxy started since, from zero. Pure.
func Compute(prev *Round, cur Round) Graph {
	g := Graph{Generated: cur.At}
	nodes := map[string]Node{}
	accs := map[edgeKey]map[string]*edgeAcc{}
	for _, id := range slices.Sorted(maps.Keys(cur.Proxies)) {
		sc := cur.Proxies[id]
		g.Scrapes = append(g.Scrapes, sc)
		if sc.Error != "" {
			continue
		}
		var before *Scrape
		var secs float64
		if prev != nil {
			if p, ok := prev.Proxies[id]; ok && p.Error == "" {
				if secs = sc.At.Sub(p.At).Seconds(); secs > 0 {
					before = &p
				}
			}
		}
		for k, v := range sc.Sample.Requests {
			src, dst := sourceNode(k), destNode(k)
			nodes[src.ID], nodes[dst.ID] = src, dst
			ek := edgeKey{src.ID, dst.ID, k.DestService}
			if accs[ek] == nil {
				accs[ek] = map[string]*edgeAcc{}
			}
			a := accs[ek][k.Reporter]
			if a == nil {
				a = &edgeAcc{window: map[string]float64{}, since: map[string]float64{}}
				accs[ek][k.Reporter] = a
			}
			a.total += v
			a.since[k.SecurityPolicy] += v
			if before == nil {
				continue
			}
			g.Measured, a.measured = true, true
			d := v
			if old, ok := before.Sample.Requests[k]; ok && old <= v {
				d = v - old
			}
			rate := d / secs
			a.rps += rate
			if is5xx(k.ResponseCode) {
				a.errRPS += rate
			}
			a.window[k.SecurityPolicy] += d
			if h, ok := sc.Sample.Durations[k]; ok {
				a.hist = addHistograms(a.hist, h.delta(before.Sample.Durations[k]))
			}
		}
	}
	for _, ek := range slices.SortedFunc(maps.Keys(accs), func(a, b edgeKey) int {
		return cmp.Or(strings.Compare(a.source, b.source), strings.Compare(a.target, b.target), strings.Compare(a.service, b.service))
	}) {
		g.Edges = append(g.Edges, edgeOf(ek, accs[ek]))
	}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		g.Nodes = append(g.Nodes, nodes[id])
	}
	g.Width, g.Height = Layout(g.Nodes, g.Edges)
	return g
}

func edgeOf(k edgeKey, byReporter map[string]*edgeAcc) Edge {
	e := Edge{Source: k.source, Target: k.target, Service: k.service, Reporter: "source", MTLS: MTLSUnknown}
	a := byReporter["source"]
	if a == nil {
		e.Reporter = "destination"
		a = byReporter["destination"]
	}
	if a == nil { // a reporter label of neither kind
		for _, r := range slices.Sorted(maps.Keys(byReporter)) {
			e.Reporter, a = r, byReporter[r]
			break
		}
	}
	e.Total, e.RPS = a.total, a.rps
	if a.rps > 0 {
		e.ErrorRate = a.errRPS / a.rps
	}
	if q, ok := a.hist.quantile(0.99); ok {
		e.P99 = &q
	}
	if d := byReporter["destination"]; d != nil {
		// The window's state; an idle edge keeps the state it had.
		if e.MTLS = mtlsState(d.window); e.MTLS == MTLSUnknown {
			e.MTLS = mtlsState(d.since)
		}
	}
	return e
}

// mtlsState sums up the connection_security_policy counts of an edge.
func mtlsState(p map[string]float64) string {
	mutual, none := p["mutual_tls"] > 0, p["none"] > 0
	switch {
	case mutual && none:
		return MTLSMixed
	case mutual:
		return MTLSMutual
	case none:
		return MTLSNone
	}
	return MTLSUnknown
}

func known(v string) bool { return v != "" && v != "unknown" }

func sourceNode(k series) Node {
	if !known(k.SourceWorkload) {
		return Node{ID: "unknown", Kind: KindUnknown, Name: "unknown"}
	}
	return Node{ID: k.SourceNamespace + "/" + k.SourceWorkload, Kind: KindWorkload, Name: k.SourceWorkload, Namespace: k.SourceNamespace}
}

func destNode(k series) Node {
	if !known(k.DestWorkload) {
		name := k.DestService
		if !known(name) {
			name = "unknown"
		}
		return Node{ID: "service:" + name, Kind: KindService, Name: name}
	}
	return Node{ID: k.DestNamespace + "/" + k.DestWorkload, Kind: KindWorkload, Name: k.DestWorkload, Namespace: k.DestNamespace}
}

// Layout geometry, in SVG user units.
const (
	layoutMargin  = 90.0
	layoutColumn  = 360.0
	layoutRow     = 110.0
	layoutMinSize = 200.0
)

// Layout places nodes in columns by their longest distance from a node
// nobody calls (cycles are cut where a depth-first walk meets them), in
// name order within a column, and returns the drawing's size.
func Layout(nodes []Node, edges []Edge) (width, height float64) {
	out := map[string][]string{}
	in := map[string]int{}
	for _, e := range edges {
		if e.Source == e.Target {
			continue
		}
		out[e.Source] = append(out[e.Source], e.Target)
		in[e.Target]++
	}
	depth := map[string]int{}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(id string, d int)
	visit = func(id string, d int) {
		if state[id] == 1 || (state[id] == 2 && depth[id] >= d) {
			return
		}
		state[id] = 1
		depth[id] = max(depth[id], d)
		for _, t := range out[id] {
			visit(t, depth[id]+1)
		}
		state[id] = 2
	}
	idx := make([]int, len(nodes))
	for i := range nodes {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(nodes[a].Name+nodes[a].ID, nodes[b].Name+nodes[b].ID) })
	for _, i := range idx {
		if in[nodes[i].ID] == 0 {
			visit(nodes[i].ID, 0)
		}
	}
	for _, i := range idx { // nodes only on cycles
		if state[nodes[i].ID] == 0 {
			visit(nodes[i].ID, 0)
		}
	}
	rows := map[int]int{}
	maxDepth, maxRows := 0, 0
	for _, i := range idx {
		d := depth[nodes[i].ID]
		nodes[i].X = layoutMargin + float64(d)*layoutColumn
		nodes[i].Y = layoutMargin*0.6 + float64(rows[d])*layoutRow
		rows[d]++
		maxDepth, maxRows = max(maxDepth, d), max(maxRows, rows[d])
	}
	if len(nodes) == 0 {
		return layoutMinSize, layoutMinSize / 2
	}
	width = max(layoutMinSize, 2*layoutMargin+float64(maxDepth)*layoutColumn)
	height = max(layoutMinSize/2, 1.2*layoutMargin+float64(maxRows-1)*layoutRow)
	return width, height
}
