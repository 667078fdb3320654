package router_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// heldObserver holds the record of the request to /held in Observe until
// let is closed, then keeps the X-Seq its response header shows at that
// point; other records pass.
type heldObserver struct {
	in, let chan struct{}
	got     chan []string
}

func (o *heldObserver) Observe(r *filter.Record) {
	if r.Path != "/held" {
		return
	}
	close(o.in)
	<-o.let
	o.got <- append([]string(nil), r.ResponseHeader["X-Seq"]...)
}

// TestReleasedResponseIsolation: the router hands each HTTP/1.1 upstream
// response back to the pool once it is done with it, and a later response
// of the pool reuses its storage — while the earlier request's record is
// still being observed. What the observer reads of the earlier response's
// headers must still be the earlier response's: the downstream header
// values are the router's copies, not the upstream response's slices.
func TestReleasedResponseIsolation(t *testing.T) {
	var seq sync.Mutex
	n := 0
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seq.Lock()
		n++
		v := strconv.Itoa(n)
		seq.Unlock()
		w.Header().Set("X-Seq", v)
		w.Header().Set("X-Path", r.URL.Path)
		io.WriteString(w, "ok")
	}))
	defer backend.Close()

	// sync.Pool may drop what it is given (always a share of it under the
	// race detector): several rounds, so that some round reuses.
	for round := range 4 {
		obs := &heldObserver{in: make(chan struct{}), let: make(chan struct{}), got: make(chan []string, 1)}
		st := startObservedStack(t, staticCluster(t, backend.Listener.Addr().String(), false, nil), nil, obs)
		get := func(c *http.Client, path string) string {
			t.Helper()
			resp, err := c.Get("http://" + st.addr + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" || resp.StatusCode != 200 {
				t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
			}
			return resp.Header.Get("X-Seq")
		}
		// Two clients, two downstream connections: the held record's
		// connection waits in Observe while the other one goes on.
		held, other := &http.Client{Transport: &http.Transport{}}, &http.Client{Transport: &http.Transport{}}
		want := get(held, "/held")
		select {
		case <-obs.in:
		case <-time.After(10 * time.Second):
			t.Fatal("the held record was not observed")
		}
		for i := range 8 {
			if got := get(other, "/other/"+strconv.Itoa(i)); got == want {
				t.Fatalf("round %d: a later response has the held one's X-Seq %s", round, got)
			}
		}
		close(obs.let)
		if got := <-obs.got; strings.Join(got, ",") != want {
			t.Fatalf("round %d: the held record's response shows X-Seq %q, want %q (a later response's values)", round, got, want)
		}
		held.CloseIdleConnections()
		other.CloseIdleConnections()
	}
}
