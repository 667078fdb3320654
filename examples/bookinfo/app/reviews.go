package app

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ProductReviews is reviews' answer. The fields are those of Istio's
// reviews service (id as a string, podname, clustername) plus version,
// which productpage shows as "reviews-<version>".
type ProductReviews struct {
	ID          string   `json:"id"`
	PodName     string   `json:"podname"`
	ClusterName string   `json:"clustername"`
	Version     string   `json:"version,omitempty"`
	Reviews     []Review `json:"reviews"`
}

// Review is one reviewer's review; Rating is absent in v1.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is either stars with a colour or, when ratings could not be
// reached, an error text.
type Rating struct {
	Stars *int   `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// RatingsUnavailable is the rating error reviews reports when ratings
// fails or times out (Istio's text).
const RatingsUnavailable = "Ratings service is currently unavailable"

// starColor maps a reviews version to its star colour: v1 shows no
// ratings (""), v2 black, v3 red. ok is false for other versions.
func starColor(version string) (color string, ok bool) {
	switch version {
	case "v1":
		return "", true
	case "v2":
		return "black", true
	case "v3":
		return "red", true
	}
	return "", false
}

// sampleReviews are the two reviews every product gets.
func sampleReviews() []Review {
	return []Review{
		{Reviewer: "Reviewer1", Text: "A riot from start to finish: two pairs of twins, one day in Ephesus, and not a dull scene."},
		{Reviewer: "Reviewer2", Text: "Quick and very funny, though it trades the depth of the later plays for mistaken identities."},
	}
}

// reviewsService is the reviews role.
type reviewsService struct {
	cfg    Config
	color  string // "" when this version does not call ratings
	up     *upstream
	logger *slog.Logger
}

func newReviews(cfg Config, logger *slog.Logger) *reviewsService {
	color, _ := starColor(cfg.Version)
	return &reviewsService{cfg: cfg, color: color, up: newUpstream(cfg.Outbound), logger: logger}
}

func (s *reviewsService) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Reviews is healthy"})
	})
	mux.HandleFunc("GET /reviews/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, s.reviews(r, id))
	})
	return mux
}

// reviews builds the answer for one product, asking ratings when this
// version shows stars.
func (s *reviewsService) reviews(r *http.Request, id int) ProductReviews {
	out := ProductReviews{
		ID:          strconv.Itoa(id),
		PodName:     s.cfg.PodName,
		ClusterName: s.cfg.ClusterName,
		Version:     s.cfg.Version,
		Reviews:     sampleReviews(),
	}
	if s.color == "" {
		return out
	}
	stars, err := s.ratings(r, id)
	if err != nil {
		s.logger.Warn("ratings unavailable", "product", id, "error", err)
	}
	for i := range out.Reviews {
		n, ok := stars[out.Reviews[i].Reviewer]
		if !ok {
			out.Reviews[i].Rating = &Rating{Error: RatingsUnavailable}
			continue
		}
		out.Reviews[i].Rating = &Rating{Stars: &n, Color: s.color}
	}
	return out
}

// ratings fetches the stars per reviewer of one product.
func (s *reviewsService) ratings(r *http.Request, id int) (map[string]int, error) {
	url := strings.TrimSuffix(s.cfg.RatingsURL, "/") + "/ratings/" + strconv.Itoa(id)
	res, err := s.up.get(r.Context(), url, forward(r.Header), s.cfg.RatingsTimeout)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, res.status)
	}
	var pr ProductRatings
	if err := json.Unmarshal(res.body, &pr); err != nil {
		return nil, fmt.Errorf("GET %s: decoding ratings: %w", url, err)
	}
	for name, n := range pr.Ratings {
		if n < 0 || n > 5 {
			return nil, fmt.Errorf("GET %s: %q has %d stars, want 0 to 5", url, name, n)
		}
	}
	return pr.Ratings, nil
}

// defaultRatingsTimeout is Istio's reviews' wait for ratings: 10 s with
// black stars (v2), 2.5 s with red (v3).
func defaultRatingsTimeout(version string) time.Duration {
	if version == "v3" {
		return 2500 * time.Millisecond
	}
	return 10 * time.Second
}
