package app

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
)

// ProductRatings is ratings' answer: stars (1 to 5) per reviewer.
type ProductRatings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// ratingsStore holds the ratings posted to this instance (Istio's ratings
// v1 keeps them in memory too); products nobody posted for get the
// sample's fixed ratings. Safe for concurrent use.
type ratingsStore struct {
	mu    sync.Mutex
	added map[int]map[string]int
}

func (s *ratingsStore) get(id int) ProductRatings {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.added[id]; ok {
		return ProductRatings{ID: id, Ratings: maps.Clone(r)}
	}
	return ProductRatings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}
}

func (s *ratingsStore) put(id int, r map[string]int) ProductRatings {
	s.mu.Lock()
	if s.added == nil {
		s.added = make(map[int]map[string]int)
	}
	s.added[id] = maps.Clone(r)
	s.mu.Unlock()
	return s.get(id)
}

// maxRatingsBody bounds a POSTed ratings object.
const maxRatingsBody = 64 << 10

// decodeRatings parses a POSTed {"Reviewer": stars, ...} object; stars
// must be 1 to 5.
func decodeRatings(r io.Reader) (map[string]int, error) {
	var m map[string]int
	dec := json.NewDecoder(io.LimitReader(r, maxRatingsBody))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("ratings body: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("ratings body: want an object of reviewer to stars")
	}
	for name, stars := range m {
		if stars < 1 || stars > 5 {
			return nil, fmt.Errorf("ratings body: %q: stars %d: must be 1 to 5", name, stars)
		}
	}
	return m, nil
}

// ratingsHandler serves GET and POST /ratings/{id} and GET /health.
func ratingsHandler(store *ratingsStore) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Ratings is healthy"})
	})
	mux.HandleFunc("GET /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, store.get(id))
	})
	mux.HandleFunc("POST /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		m, err := decodeRatings(r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, store.put(id, m))
	})
	return mux
}
