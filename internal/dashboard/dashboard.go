package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/localonly"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/server"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/dashboard/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config says where the dashboard reads the control plane's state. The
// functions are called on request goroutines and must be safe for that
// (discovery.Server's methods are).
type Config struct {
	// Clients lists the connected proxies (xds server.Server.Clients).
	// Required.
	Clients func() []server.ClientStatus
	// Snapshot returns the latest configuration snapshot (nil before the
	// first). Required.
	Snapshot func() *model.Snapshot
	// Problems returns the configuration sources' problems. Required.
	Problems func() []store.Problem
	// Debug is the xDS server's DebugHandler: the workload page reads
	// /debug/config_dump?proxyID= from it, in process. Required.
	Debug http.Handler
	// ScrapeInterval is the least time between two scrapes of the proxies
	// (default 5s); ScrapeTimeout bounds each scrape (default 2s);
	// MaxScrapeBytes bounds each response (default 8 MiB).
	ScrapeInterval time.Duration
	ScrapeTimeout  time.Duration
	MaxScrapeBytes int64
	// HTTPClient scrapes the proxies (default: a client that ignores
	// proxy environment variables).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Dashboard serves the pages. It starts no goroutine of its own: scrapes
// run on the graph endpoint's request goroutine (see scraper).
type Dashboard struct {
	cfg    Config
	log    *slog.Logger
	pages  map[string]*template.Template
	static http.Handler
	scrape *scraper
}

// New checks the configuration and parses the embedded templates; it does
// no I/O.
func New(cfg Config) (*Dashboard, error) {
	switch {
	case cfg.Clients == nil:
		return nil, errors.New("dashboard: Clients is required")
	case cfg.Snapshot == nil:
		return nil, errors.New("dashboard: Snapshot is required")
	case cfg.Problems == nil:
		return nil, errors.New("dashboard: Problems is required")
	case cfg.Debug == nil:
		return nil, errors.New("dashboard: Debug is required")
	}
	if cfg.ScrapeInterval <= 0 {
		cfg.ScrapeInterval = 5 * time.Second
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = 2 * time.Second
	}
	if cfg.MaxScrapeBytes <= 0 {
		cfg.MaxScrapeBytes = 8 << 20
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: cfg.ScrapeTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     3 * cfg.ScrapeInterval,
		}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages := map[string]*template.Template{}
	for _, p := range []string{"graph.html", "proxies.html", "config.html", "workload.html"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", p, err)
		}
		pages[p] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: static files: %w", err)
	}
	return &Dashboard{
		cfg:    cfg,
		log:    cfg.Logger,
		pages:  pages,
		static: http.StripPrefix(Prefix+"static/", http.FileServerFS(static)),
		scrape: &scraper{
			client:   cfg.HTTPClient,
			timeout:  cfg.ScrapeTimeout,
			maxBytes: cfg.MaxScrapeBytes,
			interval: cfg.ScrapeInterval,
			warmup:   min(time.Second, cfg.ScrapeInterval),
			parallel: 8,
			now:      time.Now,
		},
	}, nil
}

// Handler serves the dashboard under Prefix, to local callers only (the
// pages show configuration and config dumps, SECURITY.md E9) and only for
// requests addressed to an IP or localhost (no DNS rebinding):
//
//	/dashboard/                 service graph (SVG, redrawn from api/graph)
//	/dashboard/api/graph        the graph as JSON; scrapes when due
//	/dashboard/proxies          connected proxies, xDS sync state, scrapes
//	/dashboard/config           configuration objects and analysis messages
//	/dashboard/workload?proxy=  a proxy's effective routes and policies
//	/dashboard/static/          the embedded script and style sheet
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", d.graphPage)
	mux.HandleFunc("GET "+Prefix+"api/graph", d.graphJSON)
	mux.HandleFunc("GET "+Prefix+"proxies", d.proxiesPage)
	mux.HandleFunc("GET "+Prefix+"config", d.configPage)
	mux.HandleFunc("GET "+Prefix+"workload", d.workloadPage)
	mux.Handle("GET "+Prefix+"static/", d.static)
	return localonly.Wrap(guard(mux), "the dashboard")
}

// guard refuses requests whose Host is a name other than localhost (a DNS
// rebinding page would send its own name) and sets headers that keep the
// pages out of frames and stop inline or third-party scripts.
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			http.Error(w, fmt.Sprintf("the dashboard answers requests for an IP address or localhost, not %q", r.Host), http.StatusMisdirectedRequest)
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(host)
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// page is what every template gets.
type page struct {
	Title  string
	Active string
	Data   any
}

func (d *Dashboard) render(w http.ResponseWriter, name string, p page) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		d.log.Error("rendering dashboard page", "page", name, "err", err)
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func (d *Dashboard) graphPage(w http.ResponseWriter, _ *http.Request) {
	d.render(w, "graph.html", page{Title: "Service graph", Active: "graph"})
}

func (d *Dashboard) graphJSON(w http.ResponseWriter, r *http.Request) {
	g := d.scrape.graph(r.Context(), d.cfg.Clients)
	b, err := json.Marshal(g)
	if err != nil {
		http.Error(w, "encoding graph: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (d *Dashboard) proxiesPage(w http.ResponseWriter, _ *http.Request) {
	d.render(w, "proxies.html", page{Title: "Proxies", Active: "proxies", Data: proxiesView(d.cfg.Clients(), d.scrape.latest())})
}

func (d *Dashboard) configPage(w http.ResponseWriter, _ *http.Request) {
	d.render(w, "config.html", page{Title: "Configuration", Active: "config", Data: configView(d.cfg.Snapshot(), d.cfg.Problems())})
}

func (d *Dashboard) workloadPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("proxy")
	v := d.workloadView(r, id)
	d.render(w, "workload.html", page{Title: "Workload " + v.Name, Active: "proxies", Data: v})
}

// workloadLink is the workload page of a proxy.
func workloadLink(proxyID string) string {
	return Prefix + "workload?proxy=" + url.QueryEscape(proxyID)
}
