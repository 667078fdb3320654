package status

import (
	"encoding/json"
	"slices"
	"testing"

	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"

	"github.com/trellismesh/trellis/internal/analysis"
)

func TestFromMessages(t *testing.T) {
	vs := analysis.Origin{Kind: "VirtualService", Namespace: "shop", Name: "reviews", File: "kubernetes"}
	tests := []struct {
		name string
		in   []analysis.Message
		want []entry
	}{
		{"none", nil, []entry{}},
		{"one IST code", []analysis.Message{{Code: "IST0101", Level: analysis.Error, Origin: vs, Text: "Referenced host not found"}},
			[]entry{{Code: "IST0101", Name: "ReferencedResourceNotFound", Level: analysisv1alpha1.AnalysisMessageBase_ERROR,
				URL: "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}}},
		{"duplicates folded, errors first", []analysis.Message{
			{Code: "IST0173", Level: analysis.Warning, Origin: vs, Text: "subset v1"},
			{Code: "IST0101", Level: analysis.Error, Origin: vs, Text: "host a"},
			{Code: "IST0101", Level: analysis.Error, Origin: vs, Text: "host b"},
		}, []entry{
			{Code: "IST0101", Name: "ReferencedResourceNotFound", Level: analysisv1alpha1.AnalysisMessageBase_ERROR,
				URL: "https://istio.io/latest/docs/reference/config/analysis/ist0101/"},
			{Code: "IST0173", Name: "DestinationRuleSubsetNotSelectPods", Level: analysisv1alpha1.AnalysisMessageBase_WARNING,
				URL: "https://istio.io/latest/docs/reference/config/analysis/ist0173/"},
		}},
		{"Trellis code has no istio.io page", []analysis.Message{{Code: "TRL0003", Level: analysis.Warning, Origin: vs}},
			[]entry{{Code: "TRL0003", Name: "DuplicateObject", Level: analysisv1alpha1.AnalysisMessageBase_WARNING}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fromMessages(tc.in, names())
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestStatusRoundTrip checks what is read back from a status equals what
// was written: the comparison that avoids needless writes.
func TestStatusRoundTrip(t *testing.T) {
	es := fromMessages([]analysis.Message{
		{Code: "IST0109", Level: analysis.Error}, {Code: "IST0133", Level: analysis.Warning}, {Code: "TRL0001", Level: analysis.Info},
	}, names())
	body, err := patch(es)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Status struct {
			ValidationMessages []json.RawMessage `json:"validationMessages"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	var read []*analysisv1alpha1.AnalysisMessageBase
	for _, raw := range obj.Status.ValidationMessages {
		m := &analysisv1alpha1.AnalysisMessageBase{}
		if err := m.UnmarshalJSON(raw); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		read = append(read, m)
	}
	if got := normalize(fromStatus(read)); !slices.Equal(got, es) {
		t.Errorf("read back %+v\nwrote %+v", got, es)
	}
}

func TestPatch(t *testing.T) {
	tests := []struct {
		name string
		in   []entry
		want string
	}{
		{"clear", nil, `{"status":{"validationMessages":null}}`},
		{"set", []entry{{Code: "IST0101", Name: "ReferencedResourceNotFound", Level: analysisv1alpha1.AnalysisMessageBase_ERROR, URL: "u"}},
			`{"status":{"validationMessages":[{"type":{"name":"ReferencedResourceNotFound","code":"IST0101"},"level":"ERROR","documentationUrl":"u"}]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := patch(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
		})
	}
}
