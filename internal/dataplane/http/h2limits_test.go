package http_test

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/anypb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// TestHTTP2Limits checks what the connection manager configures in
// net/http's HTTP/2 server (max concurrent streams 100, the header list
// limit) and SECURITY C1: a rapid-reset flood runs at most that many
// handlers at once while another client is served.
func TestHTTP2Limits(t *testing.T) {
	up := newTestUpstream(t)
	b := newBackend(t, "slow")
	up.add("slow", b.addr(), false)
	var inflight, peak atomic.Int64
	counter := filter.FactoryFunc(func(string, *anypb.Any) (filter.Filter, error) {
		return wrapFunc(func(next filter.Handler) filter.Handler {
			return filter.HandlerFunc(func(s *filter.Stream) {
				n := inflight.Add(1)
				defer inflight.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				next.ServeStream(s)
			})
		}), nil
	})
	h := hcmJSON(t, `{
	  "stat_prefix": "h2",
	  "route_config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "slow", "timeout": "0s"}}]}]},
	  "http_filters": [
	    {"name": "count", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}},
	    {"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}]}`)
	p := serveManager(t, h, hcm.Deps{Upstream: up, Filters: filter.Registry{"type.googleapis.com/google.protobuf.Struct": counter}})

	t.Run("settings", func(t *testing.T) {
		h2 := dialH2(t, p.addr)
		f, err := h2.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame %T", f)
		}
		if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != hcm.DefaultMaxConcurrentStreams {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want %d", v, ok, hcm.DefaultMaxConcurrentStreams)
		}
		if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v < hcm.DefaultMaxRequestHeadersKB<<10 || v > 2*hcm.DefaultMaxRequestHeadersKB<<10 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d (%v), want about %d KiB", v, ok, hcm.DefaultMaxRequestHeadersKB)
		}
	})

	t.Run("streams beyond the limit", func(t *testing.T) {
		// 300 streams that stay open on one connection: at most 100
		// handlers run; the others are refused.
		peak.Store(0)
		h2 := dialH2(t, p.addr)
		for i := range 300 {
			h2.headers(uint32(2*i+1), [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/slow/open-" + strconv.Itoa(i)}})
		}
		deadline := time.Now().Add(waitFor)
		for inflight.Load() < hcm.DefaultMaxConcurrentStreams && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // would more start?
		if pk := peak.Load(); pk != hcm.DefaultMaxConcurrentStreams {
			t.Errorf("peak concurrent handlers %d, want %d", pk, hcm.DefaultMaxConcurrentStreams)
		}
		h2.c.Close()
		for inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("C1 rapid reset", func(t *testing.T) {
		peak.Store(0)
		var wg sync.WaitGroup
		var served, failed atomic.Int64
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			// A well-behaved client on its own connection.
			defer wg.Done()
			c := client(t, true)
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+p.addr+"/ok", nil)
				resp, err := c.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
		h2 := dialH2(t, p.addr)
		sent := 0
		for i := range 2000 {
			id := uint32(2*i + 1)
			h2.headers(id, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/slow/" + strconv.Itoa(i)}})
			if err := h2.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				break // the server closed the connection
			}
			sent++
		}
		_ = h2.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		outcome := "connection kept"
		for {
			f, err := h2.fr.ReadFrame()
			if err != nil {
				break
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				outcome = "GOAWAY " + ga.ErrCode.String()
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // let the well-behaved client run after the flood
		close(stop)
		wg.Wait()
		t.Logf("flood of %d streams: %s; peak handlers %d; other client %d served, %d failed", sent, outcome, peak.Load(), served.Load(), failed.Load())
		if pk := peak.Load(); pk > hcm.DefaultMaxConcurrentStreams+1 {
			t.Errorf("peak concurrent handlers %d, want ≤ %d", pk, hcm.DefaultMaxConcurrentStreams+1)
		}
		if served.Load() == 0 || failed.Load()*100 > served.Load()+failed.Load() {
			t.Errorf("well-behaved client: %d served, %d failed (want ≥ 99%% success)", served.Load(), failed.Load())
		}
	})
}
