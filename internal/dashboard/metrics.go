package dashboard

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// Metric names read from the proxies (Istio's standard metrics).
const (
	requestsTotal   = "istio_requests_total"
	requestDuration = "istio_request_duration_milliseconds"
)

// series identifies one istio_requests_total series by the labels the
// graph uses; the other labels are summed over.
type series struct {
	Reporter        string
	SourceWorkload  string
	SourceNamespace string
	DestWorkload    string
	DestNamespace   string
	DestService     string
	ResponseCode    string
	SecurityPolicy  string
}

// histogram is a cumulative histogram: Counts[i] requests took at most
// Bounds[i] ms; Count is every request (the +Inf bucket).
type histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
}

// Sample is what one scrape of one proxy holds: counters and duration
// histograms by series. Immutable once built.
type Sample struct {
	Requests  map[series]float64
	Durations map[series]histogram
}

// ParseSample reads Prometheus text exposition and keeps Istio's request
// counter and duration histogram. Series with the same kept labels are
// added up.
func ParseSample(r io.Reader) (Sample, error) {
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("parsing metrics: %w", err)
	}
	s := Sample{Requests: map[series]float64{}, Durations: map[series]histogram{}}
	if f := fams[requestsTotal]; f != nil {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			if f.GetType() == dto.MetricType_UNTYPED {
				v = m.GetUntyped().GetValue()
			}
			s.Requests[seriesOf(m)] += v
		}
	}
	if f := fams[requestDuration]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
		for _, m := range f.GetMetric() {
			k := seriesOf(m)
			s.Durations[k] = addHistograms(s.Durations[k], histogramOf(m.GetHistogram()))
		}
	}
	return s, nil
}

func seriesOf(m *dto.Metric) series {
	var k series
	for _, l := range m.GetLabel() {
		v := l.GetValue()
		switch l.GetName() {
		case "reporter":
			k.Reporter = v
		case "source_workload":
			k.SourceWorkload = v
		case "source_workload_namespace":
			k.SourceNamespace = v
		case "destination_workload":
			k.DestWorkload = v
		case "destination_workload_namespace":
			k.DestNamespace = v
		case "destination_service":
			k.DestService = v
		case "response_code":
			k.ResponseCode = v
		case "connection_security_policy":
			k.SecurityPolicy = v
		}
	}
	return k
}

func histogramOf(h *dto.Histogram) histogram {
	out := histogram{Count: float64(h.GetSampleCount())}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		out.Bounds = append(out.Bounds, b.GetUpperBound())
		out.Counts = append(out.Counts, float64(b.GetCumulativeCount()))
	}
	return out
}

// addHistograms adds b to a. Histograms with different bounds are merged
// on the bounds of both (a bound missing on one side takes that side's
// next larger bound's count, an upper estimate).
func addHistograms(a, b histogram) histogram {
	if len(a.Bounds) == 0 && a.Count == 0 {
		return histogram{Bounds: slices.Clone(b.Bounds), Counts: slices.Clone(b.Counts), Count: b.Count}
	}
	if slices.Equal(a.Bounds, b.Bounds) {
		out := histogram{Bounds: slices.Clone(a.Bounds), Counts: slices.Clone(a.Counts), Count: a.Count + b.Count}
		for i := range out.Counts {
			out.Counts[i] += b.Counts[i]
		}
		return out
	}
	bounds := append(slices.Clone(a.Bounds), b.Bounds...)
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	out := histogram{Bounds: bounds, Counts: make([]float64, len(bounds)), Count: a.Count + b.Count}
	for i, le := range bounds {
		out.Counts[i] = a.at(le) + b.at(le)
	}
	return out
}

// at is the cumulative count at bound le: the count of the smallest bound
// at or above it, or Count past the last bound.
func (h histogram) at(le float64) float64 {
	i, _ := slices.BinarySearch(h.Bounds, le)
	if i == len(h.Bounds) {
		return h.Count
	}
	return h.Counts[i]
}

// delta is h minus prev, bucket by bucket: the requests observed between
// two scrapes. A smaller count means the proxy restarted: h counts from
// zero then, so h itself is the delta.
func (h histogram) delta(prev histogram) histogram {
	if h.Count < prev.Count || !slices.Equal(h.Bounds, prev.Bounds) {
		return h
	}
	out := histogram{Bounds: h.Bounds, Counts: make([]float64, len(h.Counts)), Count: h.Count - prev.Count}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i] - prev.Counts[i]
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear interpolation inside the bucket that holds the rank (the
// first bucket starting at 0); in the +Inf bucket, the largest finite
// bound. ok is false without observations.
func (h histogram) quantile(q float64) (float64, bool) {
	if h.Count <= 0 || len(h.Bounds) == 0 {
		return 0, false
	}
	rank := q * h.Count
	for i, c := range h.Counts {
		if c < rank {
			continue
		}
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = h.Bounds[i-1], h.Counts[i-1]
		}
		in := c - below
		if in <= 0 {
			return h.Bounds[i], true
		}
		return lower + (h.Bounds[i]-lower)*(rank-below)/in, true
	}
	return h.Bounds[len(h.Bounds)-1], true
}

// is5xx reports whether a response_code label is a server error.
func is5xx(code string) bool {
	n, err := strconv.Atoi(code)
	return err == nil && n >= 500 && n <= 599
}
