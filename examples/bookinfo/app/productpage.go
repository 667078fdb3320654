package app

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The texts productpage shows when a backend fails (Istio's).
const (
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	ratingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
)

// userCookie holds the signed-in user's name. Like Istio's sample, the
// "login" takes any name without a password: it only sets the end-user
// identity that routing rules match on.
const userCookie = "user"

//go:embed templates/*.html
var templateFS embed.FS

// Product is one book of the catalogue.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

// products is the catalogue: one book, as in Istio's sample.
func products() []Product {
	return []Product{{
		ID:    0,
		Title: "The Comedy of Errors",
		DescriptionHTML: `<b>William Shakespeare</b>'s shortest comedy: two sets of identical twins, ` +
			`separated at birth, turn up in the same town on the same day, and nobody can tell who is who.`,
	}}
}

// productPage is the productpage role.
type productPage struct {
	cfg    Config
	up     *upstream
	page   *template.Template
	index  *template.Template
	logger *slog.Logger
}

func newProductPage(cfg Config, logger *slog.Logger) (*productPage, error) {
	page, err := template.ParseFS(templateFS, "templates/productpage.html")
	if err != nil {
		return nil, fmt.Errorf("productpage: parsing template: %w", err)
	}
	index, err := template.ParseFS(templateFS, "templates/index.html")
	if err != nil {
		return nil, fmt.Errorf("productpage: parsing template: %w", err)
	}
	return &productPage{cfg: cfg, up: newUpstream(cfg.Outbound), page: page, index: index, logger: logger}, nil
}

func (p *productPage) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.serveIndex)
	mux.HandleFunc("GET /index.html", p.serveIndex)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Product page is healthy"))
	})
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("GET /logout", p.logout)
	mux.HandleFunc("GET /productpage", p.servePage)
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, products())
	})
	mux.HandleFunc("GET /api/v1/products/{id}", p.api(p.details))
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", p.api(p.reviews))
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", p.api(p.ratings))
	return mux
}

// user is the signed-in user: the session cookie, else an end-user header
// the caller sent (a request carrying end-user: jason is jason's).
func user(r *http.Request) string {
	if c, err := r.Cookie(userCookie); err == nil {
		if name, err := url.QueryUnescape(c.Value); err == nil && name != "" && validUser(name) {
			return name
		}
	}
	return r.Header.Get("end-user")
}

// validUser reports whether name can travel as an end-user header value.
func validUser(name string) bool {
	if len(name) > 256 {
		return false
	}
	for _, c := range name {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// outboundHeaders are the headers of every call made for r.
func outboundHeaders(r *http.Request) http.Header {
	h := forward(r.Header)
	if u := user(r); u != "" {
		h.Set("end-user", u)
	}
	return h
}

// result is a backend's answer as productpage uses it: a 200 with a JSON
// body, or a status (the backend's, else 500) and an error text.
type result struct {
	status int
	body   []byte // when status is 200
	err    string // when not
}

// call asks one backend for product id, up to attempts times.
func (p *productPage) call(ctx context.Context, base, path string, id int, hdr http.Header,
	attempts int, timeout time.Duration, failure string) result {
	target := strings.TrimSuffix(base, "/") + path + strconv.Itoa(id)
	status := http.StatusInternalServerError
	for range attempts {
		res, err := p.up.get(ctx, target, hdr, timeout)
		if err != nil {
			p.logger.Warn("backend call failed", "url", target, "error", err)
			status = http.StatusInternalServerError
			continue
		}
		if res.status == http.StatusOK && json.Valid(res.body) {
			return result{status: http.StatusOK, body: res.body}
		}
		p.logger.Warn("backend answered with an error", "url", target, "status", res.status)
		status = res.status
		if status == http.StatusOK {
			status = http.StatusBadGateway // a 200 whose body is not JSON
		}
	}
	return result{status: status, err: failure}
}

func (p *productPage) details(ctx context.Context, id int, hdr http.Header) result {
	return p.call(ctx, p.cfg.DetailsURL, "/details/", id, hdr, 1, p.cfg.DetailsTimeout, DetailsUnavailable)
}

// reviews asks reviews up to ReviewsAttempts times, as Istio's productpage
// does (its fault-injection task depends on the second attempt).
func (p *productPage) reviews(ctx context.Context, id int, hdr http.Header) result {
	return p.call(ctx, p.cfg.ReviewsURL, "/reviews/", id, hdr, p.cfg.ReviewsAttempts, p.cfg.ReviewsTimeout, ReviewsUnavailable)
}

func (p *productPage) ratings(ctx context.Context, id int, hdr http.Header) result {
	return p.call(ctx, p.cfg.RatingsURL, "/ratings/", id, hdr, 1, p.cfg.RatingsTimeout, ratingsUnavailable)
}

// api serves one /api/v1/products/{id}/... route from a backend.
func (p *productPage) api(fetch func(context.Context, int, http.Header) result) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		res := fetch(r.Context(), id, outboundHeaders(r))
		if res.status == http.StatusOK {
			writeRawJSON(w, http.StatusOK, res.body)
			return
		}
		writeJSON(w, res.status, map[string]string{"error": res.err})
	}
}

func (p *productPage) serveIndex(w http.ResponseWriter, _ *http.Request) {
	p.render(w, p.index, products())
}

// servePage renders product 0 with its details and reviews, fetched
// concurrently with the caller's forwarded headers.
func (p *productPage) servePage(w http.ResponseWriter, r *http.Request) {
	product := products()[0]
	hdr := outboundHeaders(r)
	var det, rev result
	var wg sync.WaitGroup
	wg.Go(func() { det = p.details(r.Context(), product.ID, hdr) })
	wg.Go(func() { rev = p.reviews(r.Context(), product.ID, hdr) })
	wg.Wait()
	p.render(w, p.page, buildPage(product, user(r), det, rev))
}

func (p *productPage) render(w http.ResponseWriter, t *template.Template, data any) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		p.logger.Error("rendering page", "template", t.Name(), "error", err)
		http.Error(w, "rendering page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

func (p *productPage) login(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.FormValue("username"))
	if !validUser(name) {
		http.Error(w, "login: username: at most 256 printable characters", http.StatusBadRequest)
		return
	}
	c := &http.Cookie{Name: userCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if name == "" {
		c.MaxAge = -1
	} else {
		c.Value = url.QueryEscape(name)
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, back(r), http.StatusFound)
}

func (p *productPage) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: userCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, back(r), http.StatusFound)
}

// back is where login and logout return to: the referring page's path on
// this server (never another host), else the product page.
func back(r *http.Request) string {
	ref, err := url.Parse(r.Referer())
	if err != nil || ref.Path == "" || !strings.HasPrefix(ref.Path, "/") || strings.HasPrefix(ref.Path, "//") {
		return "/productpage"
	}
	out := ref.EscapedPath()
	if ref.RawQuery != "" {
		out += "?" + ref.RawQuery
	}
	return out
}

// The page's view model.
type (
	pageData struct {
		Product      Product
		Description  template.HTML
		User         string
		Details      []field
		DetailsError string
		Reviews      []reviewView
		ReviewsError string
		ServedBy     string // reviews-v1, reviews-v2, reviews-v3
		PodName      string
		ClusterName  string
	}
	field struct{ Name, Value string }

	reviewView struct {
		Reviewer, Text string
		HasStars       bool
		Stars          int
		Full, Empty    string
		Color          string
		RatingError    string
	}
)

// buildPage turns the backends' answers into the view model. An answer
// that does not decode counts as unavailable.
func buildPage(product Product, user string, det, rev result) pageData {
	d := pageData{
		Product:     product,
		Description: template.HTML(product.DescriptionHTML), // our own constant, not backend input
		User:        user,
	}
	if fields, ok := detailFields(det); ok {
		d.Details = fields
	} else {
		d.DetailsError = DetailsUnavailable
	}
	var pr ProductReviews
	if rev.status != http.StatusOK || json.Unmarshal(rev.body, &pr) != nil {
		d.ReviewsError = ReviewsUnavailable
		return d
	}
	d.ServedBy = servedBy(pr)
	d.PodName, d.ClusterName = pr.PodName, pr.ClusterName
	for _, r := range pr.Reviews {
		v := reviewView{Reviewer: r.Reviewer, Text: r.Text}
		switch {
		case r.Rating == nil:
		case r.Rating.Stars != nil:
			n := min(max(*r.Rating.Stars, 0), 5)
			v.HasStars, v.Stars, v.Color = true, n, r.Rating.Color
			v.Full, v.Empty = strings.Repeat("★", n), strings.Repeat("☆", 5-n)
		case r.Rating.Error != "":
			v.RatingError = r.Rating.Error
		}
		d.Reviews = append(d.Reviews, v)
	}
	return d
}

// servedBy names the reviews instance: reviews-<version> when reviews
// reports its version, else the pod name (Istio's own reviews).
func servedBy(pr ProductReviews) string {
	if pr.Version != "" {
		return "reviews-" + pr.Version
	}
	return pr.PodName
}

// detailFields lists the details in display order; fields the backend
// did not send are left out and unknown ones appended in name order.
func detailFields(det result) ([]field, bool) {
	if det.status != http.StatusOK {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(det.body, &m); err != nil || m == nil {
		return nil, false
	}
	known := []struct{ key, label string }{
		{"author", "Author"}, {"year", "Year"}, {"type", "Type"}, {"pages", "Pages"},
		{"publisher", "Publisher"}, {"language", "Language"}, {"ISBN-10", "ISBN-10"}, {"ISBN-13", "ISBN-13"},
	}
	var out []field
	seen := map[string]bool{"id": true}
	for _, k := range known {
		seen[k.key] = true
		if v, ok := m[k.key]; ok {
			out = append(out, field{Name: k.label, Value: scalarText(v)})
		}
	}
	var extra []string
	for k := range m {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		out = append(out, field{Name: k, Value: scalarText(m[k])})
	}
	return out, true
}

func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
