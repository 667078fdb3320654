package app

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzPage feeds arbitrary backend answers to productpage's page: it must
// render (never fail or panic) and never let a backend inject markup.
func FuzzPage(f *testing.F) {
	f.Add([]byte(`{"id":0,"author":"A","year":1595,"pages":200}`),
		[]byte(`{"id":"0","podname":"reviews-v2-x","version":"v2","reviews":[{"reviewer":"R","text":"t","rating":{"stars":9,"color":"black"}}]}`))
	f.Add([]byte(`{"year":"1990-01-01","extra":{"a":[1,2]},"type":null}`),
		[]byte(`{"reviews":[{"reviewer":"<script>x</script>","rating":{"error":"e"}},{"rating":{"stars":-3,"color":"red;background:url(x)"}}]}`))
	f.Add([]byte(`[]`), []byte(`null`))
	p, err := newProductPage(Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, details, reviews []byte) {
		d := buildPage(products()[0], "<b>user</b>",
			result{status: http.StatusOK, body: details}, result{status: http.StatusOK, body: reviews})
		var b strings.Builder
		if err := p.page.Execute(&b, d); err != nil {
			t.Fatalf("rendering: %v", err)
		}
		if strings.Contains(b.String(), "<script") || strings.Contains(b.String(), "<b>user</b>") {
			t.Fatalf("backend or user markup reached the page unescaped:\n%s", b.String())
		}
		for _, r := range d.Reviews {
			if r.HasStars && (r.Stars < 0 || r.Stars > 5) {
				t.Fatalf("%d stars rendered", r.Stars)
			}
		}
	})
}

// FuzzDecodeRatings checks that a POSTed body is either rejected or yields
// ratings of 1 to 5 stars.
func FuzzDecodeRatings(f *testing.F) {
	f.Add(`{"Reviewer1":5,"Reviewer2":4}`)
	f.Add(`{"a":0}`)
	f.Add(`null`)
	f.Add(`{"a":1.5}`)
	f.Fuzz(func(t *testing.T, body string) {
		m, err := decodeRatings(strings.NewReader(body))
		if err != nil {
			return
		}
		if m == nil {
			t.Fatal("nil ratings without an error")
		}
		for name, n := range m {
			if n < 1 || n > 5 {
				t.Fatalf("%q: %d stars accepted", name, n)
			}
		}
	})
}
