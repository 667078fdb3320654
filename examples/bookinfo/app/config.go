package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Role is one of Bookinfo's four services.
type Role string

// The four roles, named as the Kubernetes Services of Istio's bookinfo.yaml.
const (
	ProductPage Role = "productpage"
	Details     Role = "details"
	Reviews     Role = "reviews"
	Ratings     Role = "ratings"
)

// DefaultPort is the port every Bookinfo service listens on and calls the
// others on, as in Istio's sample.
const DefaultPort = 9080

// Config is everything one service process needs. Build it with ParseArgs
// (what the command does) or by hand in tests; New checks it.
type Config struct {
	Role    Role
	Version string // the workload's version label: v1, v2, v3
	Listen  string // host:port to serve on

	// PodName and ClusterName are reported by reviews (Istio's "podname"
	// and "clustername"); PodName defaults to $HOSTNAME, which Kubernetes
	// sets to the pod's name.
	PodName     string
	ClusterName string

	// Base URLs of the services this one calls (scheme://host:port).
	DetailsURL string
	ReviewsURL string
	RatingsURL string

	// Outbound, when set, is the host:port every outbound connection is
	// dialled to instead of the URL's host: a sidecar's explicit proxy
	// in local mode, which routes on the Host header (the service name).
	Outbound string

	// Per-call timeouts and productpage's attempts at reviews (Istio's
	// productpage tries reviews twice with 3 s each; reviews v2 waits 10 s
	// for ratings, v3 2.5 s).
	DetailsTimeout  time.Duration
	ReviewsTimeout  time.Duration
	ReviewsAttempts int
	RatingsTimeout  time.Duration
}

// Validate reports the first field that cannot work, naming the flag.
func (c Config) Validate() error {
	switch c.Role {
	case ProductPage, Details, Ratings:
	case Reviews:
		if _, ok := starColor(c.Version); !ok {
			return fmt.Errorf("reviews: --version %q: must be v1, v2 or v3", c.Version)
		}
	default:
		return fmt.Errorf("unknown role %q (want one of %s)", c.Role, roleList())
	}
	if c.Version == "" {
		return fmt.Errorf("%s: --version must not be empty", c.Role)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%s: --listen %q: %w", c.Role, c.Listen, err)
	}
	if c.Outbound != "" {
		if _, _, err := net.SplitHostPort(c.Outbound); err != nil {
			return fmt.Errorf("%s: --outbound %q: %w", c.Role, c.Outbound, err)
		}
	}
	check := func(flag, raw string) error {
		if err := checkBaseURL(raw); err != nil {
			return fmt.Errorf("%s: --%s %q: %w", c.Role, flag, raw, err)
		}
		return nil
	}
	positive := func(flag string, d time.Duration) error {
		if d <= 0 {
			return fmt.Errorf("%s: --%s %v: must be positive", c.Role, flag, d)
		}
		return nil
	}
	switch c.Role {
	case ProductPage:
		return errors.Join(
			check("details-url", c.DetailsURL), check("reviews-url", c.ReviewsURL), check("ratings-url", c.RatingsURL),
			positive("details-timeout", c.DetailsTimeout), positive("reviews-timeout", c.ReviewsTimeout),
			positive("ratings-timeout", c.RatingsTimeout), attempts(c.ReviewsAttempts))
	case Reviews:
		if c.Version == "v1" {
			return nil // v1 never calls ratings
		}
		return errors.Join(check("ratings-url", c.RatingsURL), positive("ratings-timeout", c.RatingsTimeout))
	}
	return nil
}

func attempts(n int) error {
	if n < 1 {
		return fmt.Errorf("productpage: --reviews-attempts %d: must be at least 1", n)
	}
	return nil
}

// checkBaseURL accepts http://host[:port] with an optional path prefix.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return errors.New("scheme must be http (the sidecar originates TLS)")
	}
	if u.Host == "" {
		return errors.New("missing host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

func roleList() string {
	return strings.Join([]string{string(ProductPage), string(Details), string(Reviews), string(Ratings)}, ", ")
}

// Usage is the command's synopsis.
const Usage = `usage: bookinfo productpage|details|reviews|ratings [flags]

Runs one service of Istio's Bookinfo sample. Run "bookinfo ROLE -h" for a
role's flags. Service addresses default as on Kubernetes (http://details:9080
and so on; Istio's DETAILS_HOSTNAME, REVIEWS_HOSTNAME, RATINGS_HOSTNAME and
SERVICES_DOMAIN variables change the defaults).
`

// ParseArgs reads "ROLE [flags]". Defaults come from getenv with the
// variables Istio's sample reads (HOSTNAME, CLUSTER_NAME, SERVICES_DOMAIN,
// *_HOSTNAME, SERVICE_VERSION) plus BOOKINFO_OUTBOUND; flags win. Help and
// parse errors are written to out. The result is validated.
func ParseArgs(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	if len(args) == 0 {
		return Config{}, errors.New("missing role (want one of " + roleList() + ")")
	}
	role := Role(args[0])
	var cfg Config
	cfg.Role = role
	fs := flag.NewFlagSet("bookinfo "+string(role), flag.ContinueOnError)
	fs.SetOutput(out)
	version := getenv("SERVICE_VERSION")
	if version == "" {
		version = "v1"
	}
	fs.StringVar(&cfg.Version, "version", version, "version label of this workload (reviews: v1 no ratings, v2 black stars, v3 red stars)")
	fs.StringVar(&cfg.Listen, "listen", fmt.Sprintf(":%d", DefaultPort), "host:port to serve on")
	serviceURL := func(name string) string {
		host := getenv(strings.ToUpper(name) + "_HOSTNAME")
		if host == "" {
			host = name
		}
		if d := getenv("SERVICES_DOMAIN"); d != "" {
			host += "." + d
		}
		return fmt.Sprintf("http://%s:%d", host, DefaultPort)
	}
	switch role {
	case ProductPage:
		fs.StringVar(&cfg.DetailsURL, "details-url", serviceURL("details"), "base URL of details")
		fs.StringVar(&cfg.ReviewsURL, "reviews-url", serviceURL("reviews"), "base URL of reviews")
		fs.StringVar(&cfg.RatingsURL, "ratings-url", serviceURL("ratings"), "base URL of ratings (for /api/v1/products/{id}/ratings)")
		fs.DurationVar(&cfg.DetailsTimeout, "details-timeout", 3*time.Second, "timeout of one call to details")
		fs.DurationVar(&cfg.ReviewsTimeout, "reviews-timeout", 3*time.Second, "timeout of one attempt at reviews")
		fs.IntVar(&cfg.ReviewsAttempts, "reviews-attempts", 2, "attempts at reviews before giving up (Istio's productpage makes 2)")
		fs.DurationVar(&cfg.RatingsTimeout, "ratings-timeout", 3*time.Second, "timeout of one call to ratings")
	case Reviews:
		fs.StringVar(&cfg.RatingsURL, "ratings-url", serviceURL("ratings"), "base URL of ratings (v2 and v3)")
		fs.DurationVar(&cfg.RatingsTimeout, "ratings-timeout", 0, "timeout of one call to ratings (default 10s for v2, 2.5s for v3, as Istio's reviews)")
		fs.StringVar(&cfg.PodName, "podname", getenv("HOSTNAME"), "pod name reported to productpage (default $HOSTNAME, else reviews-VERSION)")
		fs.StringVar(&cfg.ClusterName, "cluster-name", getenv("CLUSTER_NAME"), "cluster name reported to productpage")
	case Details, Ratings:
	default:
		return Config{}, fmt.Errorf("unknown role %q (want one of %s)", role, roleList())
	}
	if role == ProductPage || role == Reviews {
		fs.StringVar(&cfg.Outbound, "outbound", getenv("BOOKINFO_OUTBOUND"), "dial every outbound call to this host:port (a sidecar's explicit proxy), keeping the service name in Host")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%s: unexpected argument %q", role, fs.Arg(0))
	}
	if role == Reviews {
		if !flagSet(fs, "ratings-timeout") {
			cfg.RatingsTimeout = defaultRatingsTimeout(cfg.Version)
		}
		if cfg.PodName == "" {
			cfg.PodName = "reviews-" + cfg.Version
		}
	}
	return cfg, cfg.Validate()
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
