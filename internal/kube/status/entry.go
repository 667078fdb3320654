package status

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"

	"github.com/trellismesh/trellis/internal/analysis"
)

// DocBase is where Istio documents its analysis codes: an IST code's
// documentationUrl is DocBase + lower-case code + "/".
const DocBase = "https://istio.io/latest/docs/reference/config/analysis/"

// entry is one element of status.validationMessages.
type entry struct {
	Code  string
	Name  string
	Level analysisv1alpha1.AnalysisMessageBase_Level
	URL   string
}

// level maps an analysis level to Istio's enum.
func level(l analysis.Level) analysisv1alpha1.AnalysisMessageBase_Level {
	switch l {
	case analysis.Error:
		return analysisv1alpha1.AnalysisMessageBase_ERROR
	case analysis.Warning:
		return analysisv1alpha1.AnalysisMessageBase_WARNING
	case analysis.Info:
		return analysisv1alpha1.AnalysisMessageBase_INFO
	}
	return analysisv1alpha1.AnalysisMessageBase_UNKNOWN
}

// docURL returns the documentation page of a code: istio.io's for IST
// codes, none for Trellis's own.
func docURL(code analysis.Code) string {
	if !strings.HasPrefix(string(code), "IST") {
		return ""
	}
	return DocBase + strings.ToLower(string(code)) + "/"
}

// names maps codes to their type names.
func names() map[analysis.Code]string {
	m := map[analysis.Code]string{}
	for _, t := range analysis.Types() {
		m[t.Code] = t.Name
	}
	return m
}

// fromMessages builds the entries of one object's messages: sorted by
// level (most severe first) and code, without duplicates (two messages of
// one type differ only in text, which the status does not carry).
func fromMessages(ms []analysis.Message, names map[analysis.Code]string) []entry {
	out := make([]entry, 0, len(ms))
	for _, m := range ms {
		out = append(out, entry{Code: string(m.Code), Name: names[m.Code], Level: level(m.Level), URL: docURL(m.Code)})
	}
	return normalize(out)
}

// fromStatus reads an object's current validationMessages.
func fromStatus(ms []*analysisv1alpha1.AnalysisMessageBase) []entry {
	out := make([]entry, 0, len(ms))
	for _, m := range ms {
		if m == nil {
			continue
		}
		e := entry{Level: m.GetLevel(), URL: m.GetDocumentationUrl()}
		if t := m.GetType(); t != nil {
			e.Code, e.Name = t.GetCode(), t.GetName()
		}
		out = append(out, e)
	}
	return out
}

// normalize sorts entries and drops duplicates. ERROR (3) sorts before
// WARNING (8) and INFO (12), as Istio's enum values intend.
func normalize(es []entry) []entry {
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), strings.Compare(a.Code, b.Code),
			strings.Compare(a.Name, b.Name), strings.Compare(a.URL, b.URL))
	})
	return slices.Compact(es)
}

// jsonEntry is the JSON form of AnalysisMessageBase in a custom
// resource's status (protobuf JSON names, the level by name).
type jsonEntry struct {
	Type struct {
		Name string `json:"name,omitempty"`
		Code string `json:"code"`
	} `json:"type"`
	Level            string `json:"level"`
	DocumentationURL string `json:"documentationUrl,omitempty"`
}

// patch returns the JSON merge patch that sets status.validationMessages
// to es, or removes it when es is empty. Other status fields are kept.
func patch(es []entry) ([]byte, error) {
	var list any // nil: the field is removed
	if len(es) > 0 {
		js := make([]jsonEntry, len(es))
		for i, e := range es {
			js[i].Type.Name, js[i].Type.Code = e.Name, e.Code
			js[i].Level = e.Level.String()
			js[i].DocumentationURL = e.URL
		}
		list = js
	}
	return json.Marshal(map[string]any{"status": map[string]any{"validationMessages": list}})
}
