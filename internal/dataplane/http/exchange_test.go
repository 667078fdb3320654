package http_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestExchangeReuse: a request that ends cleanly hands its exchange (the
// stream, its record, its timers) to a later one, and nothing of it shows
// there: each request's record and upstream request are its own. A
// request with a body never hands its exchange on (a transport may still
// read the body), over HTTP/1.1 and HTTP/2.
func TestExchangeReuse(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run("h2="+strconv.FormatBool(h2), func(t *testing.T) {
			ms := startMesh(t, nil)
			p, c := ms.proxy, client(t, h2)
			const n = 40
			check := func(t *testing.T, from int, paths []string) []string {
				t.Helper()
				recs, _ := p.rec.sinceWait(t, from, len(paths))
				if len(recs) != len(paths) {
					t.Fatalf("%d records, want %d", len(recs), len(paths))
				}
				ids := make([]string, len(recs))
				for i, rec := range recs {
					if rec.Path != paths[i] || rec.ResponseCode != http.StatusOK || rec.Flags != 0 {
						t.Errorf("record %d: path %q code %d flags %v, want %q 200 -", i, rec.Path, rec.ResponseCode, rec.Flags, paths[i])
					}
					ids[i] = rec.RequestID
				}
				return ids
			}

			// Clean requests, each with a header of its own.
			from, paths := p.rec.count(), make([]string, n)
			for i := range n {
				paths[i] = "/details/" + strconv.Itoa(i)
				h := http.Header{"X-Only-" + strconv.Itoa(i): {strconv.Itoa(i)}}
				s := decodeSeen(t, p.do(t, c, "GET", "details", paths[i], h, nil))
				for k := range s.Header {
					if strings.HasPrefix(k, "X-Only-") && k != "X-Only-"+strconv.Itoa(i) {
						t.Errorf("request %d reached the backend with %s", i, k)
					}
				}
				if s.URI != paths[i] {
					t.Errorf("request %d reached the backend as %q", i, s.URI)
				}
			}
			ids := check(t, from, paths)
			if distinct(ids) != n {
				t.Errorf("request IDs repeat: %v", ids)
			}
			if _, ptrs := p.rec.sinceWait(t, from, n); distinct(ptrs) == n {
				t.Error("no request reused an exchange")
			}

			// A request with a body keeps its exchange to itself.
			from = p.rec.count()
			_ = readAll(t, p.do(t, c, "POST", "details", "/details/post", nil, strings.NewReader("body")))
			_, posted := p.rec.sinceWait(t, from, 1)
			from = p.rec.count()
			for i := range n {
				paths[i] = "/details/after/" + strconv.Itoa(i)
				_ = readAll(t, p.do(t, c, "GET", "details", paths[i], nil, nil))
			}
			check(t, from, paths)
			_, ptrs := p.rec.sinceWait(t, from, n)
			for i, ptr := range ptrs {
				if ptr == posted[0] {
					t.Fatalf("request %d after the POST got the POST's exchange", i)
				}
			}
		})
	}
}

func distinct[T comparable](xs []T) int {
	m := map[T]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return len(m)
}
