package app_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want app.Config
	}{
		{
			name: "productpage defaults are Kubernetes service names",
			args: []string{"productpage"},
			want: app.Config{Role: app.ProductPage, Version: "v1", Listen: ":9080",
				DetailsURL: "http://details:9080", ReviewsURL: "http://reviews:9080", RatingsURL: "http://ratings:9080",
				DetailsTimeout: 3 * time.Second, ReviewsTimeout: 3 * time.Second, ReviewsAttempts: 2, RatingsTimeout: 3 * time.Second},
		},
		{
			name: "Istio's environment variables",
			args: []string{"productpage"},
			env: map[string]string{"SERVICES_DOMAIN": "default.svc.cluster.local", "REVIEWS_HOSTNAME": "reviews-canary",
				"BOOKINFO_OUTBOUND": "127.0.0.1:15001"},
			want: app.Config{Role: app.ProductPage, Version: "v1", Listen: ":9080",
				DetailsURL:     "http://details.default.svc.cluster.local:9080",
				ReviewsURL:     "http://reviews-canary.default.svc.cluster.local:9080",
				RatingsURL:     "http://ratings.default.svc.cluster.local:9080",
				Outbound:       "127.0.0.1:15001",
				DetailsTimeout: 3 * time.Second, ReviewsTimeout: 3 * time.Second, ReviewsAttempts: 2, RatingsTimeout: 3 * time.Second},
		},
		{
			name: "productpage flags win",
			args: []string{"productpage", "--listen", "127.0.0.10:9080", "--details-url", "http://127.0.0.11:9080",
				"--reviews-url", "http://reviews.default.svc.cluster.local:9080/", "--reviews-attempts", "1", "--reviews-timeout", "1s"},
			env: map[string]string{"DETAILS_HOSTNAME": "ignored"},
			want: app.Config{Role: app.ProductPage, Version: "v1", Listen: "127.0.0.10:9080",
				DetailsURL: "http://127.0.0.11:9080", ReviewsURL: "http://reviews.default.svc.cluster.local:9080/", RatingsURL: "http://ratings:9080",
				DetailsTimeout: 3 * time.Second, ReviewsTimeout: time.Second, ReviewsAttempts: 1, RatingsTimeout: 3 * time.Second},
		},
		{
			name: "reviews v2 waits 10s for ratings, pod name from HOSTNAME",
			args: []string{"reviews", "--version", "v2"},
			env:  map[string]string{"HOSTNAME": "reviews-v2-5b64f47978-abcde", "CLUSTER_NAME": "Kubernetes"},
			want: app.Config{Role: app.Reviews, Version: "v2", Listen: ":9080", PodName: "reviews-v2-5b64f47978-abcde",
				ClusterName: "Kubernetes", RatingsURL: "http://ratings:9080", RatingsTimeout: 10 * time.Second},
		},
		{
			name: "reviews v3 waits 2.5s, version from SERVICE_VERSION",
			args: []string{"reviews"},
			env:  map[string]string{"SERVICE_VERSION": "v3"},
			want: app.Config{Role: app.Reviews, Version: "v3", Listen: ":9080", PodName: "reviews-v3",
				RatingsURL: "http://ratings:9080", RatingsTimeout: 2500 * time.Millisecond},
		},
		{
			name: "reviews timeout flag",
			args: []string{"reviews", "--version=v3", "--ratings-timeout=100ms", "--outbound", "127.0.0.13:15001"},
			want: app.Config{Role: app.Reviews, Version: "v3", Listen: ":9080", PodName: "reviews-v3",
				RatingsURL: "http://ratings:9080", RatingsTimeout: 100 * time.Millisecond, Outbound: "127.0.0.13:15001"},
		},
		{
			name: "details",
			args: []string{"details", "--listen", "[::1]:9080"},
			want: app.Config{Role: app.Details, Version: "v1", Listen: "[::1]:9080"},
		},
		{
			name: "ratings",
			args: []string{"ratings", "--version", "v1"},
			want: app.Config{Role: app.Ratings, Version: "v1", Listen: ":9080"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := app.ParseArgs(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.args, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseArgs(%q) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"no role", nil, "missing role"},
		{"unknown role", []string{"frontend"}, `unknown role "frontend"`},
		{"reviews v4", []string{"reviews", "--version", "v4"}, `reviews: --version "v4": must be v1, v2 or v3`},
		{"https URL", []string{"productpage", "--details-url", "https://details:9080"}, `--details-url "https://details:9080": scheme must be http`},
		{"URL without host", []string{"reviews", "--version", "v2", "--ratings-url", "http://"}, `--ratings-url "http://": missing host`},
		{"listen without port", []string{"ratings", "--listen", "9080"}, `ratings: --listen "9080"`},
		{"bad outbound", []string{"productpage", "--outbound", "sidecar"}, `--outbound "sidecar"`},
		{"zero attempts", []string{"productpage", "--reviews-attempts", "0"}, "--reviews-attempts 0: must be at least 1"},
		{"negative timeout", []string{"reviews", "--version", "v2", "--ratings-timeout", "-1s"}, "--ratings-timeout -1s: must be positive"},
		{"flag of another role", []string{"details", "--reviews-url", "http://x:1"}, "flag provided but not defined: -reviews-url"},
		{"stray argument", []string{"ratings", "9080"}, `unexpected argument "9080"`},
		{"empty version", []string{"details", "--version", ""}, "--version must not be empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.ParseArgs(tc.args, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseArgs(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	var help strings.Builder
	if _, err := app.ParseArgs([]string{"reviews", "-h"}, noEnv, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(help.String(), "-ratings-timeout") || strings.Contains(help.String(), "-details-url") {
		t.Errorf("reviews help lists the wrong flags:\n%s", help.String())
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := app.New(app.Config{Role: "reviews", Version: "v9", Listen: ":1"}, quietLogger()); err == nil {
		t.Error("New accepted reviews v9")
	}
	cfg, err := app.ParseArgs([]string{"details"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(cfg, nil); err == nil {
		t.Error("New accepted a nil logger")
	}
}
