package rbac

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// URITemplateTypeURL is the typed_config of the uri_template path matcher.
const URITemplateTypeURL = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"

// Envoy's uri_template grammar (source/extensions/path/uri_template_lib):
// literals are pchars without "=" and "*"; "*" matches one segment,
// "**" zero or more segments (only as the last operator), variables are
// "{name}" or "{name=<segments of literals, * and **>}", at most 5.
const (
	maxTemplateVariables = 5
	maxTemplateLen       = 256
	literalChars         = `a-zA-Z0-9\-._~%!$&'()+,;:@`
	oneSegment           = `[` + literalChars + `=]+`
	anySegments          = `[` + literalChars + `=/]*`
)

var (
	literalRe  = regexp.MustCompile(`^[` + literalChars + `]*$`)
	variableRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
)

type uriTemplateRule struct{ re *regexp.Regexp }

func (r *uriTemplateRule) match(in *Input) bool {
	return in.Request != nil && r.re.MatchString(in.urlPath)
}

func compileURITemplateExtension(tc *corev3.TypedExtensionConfig) (matcher, error) {
	a := tc.GetTypedConfig()
	if a.GetTypeUrl() != URITemplateTypeURL {
		return nil, fmt.Errorf("uri_template: unsupported type %q", a.GetTypeUrl())
	}
	cfg := &uritemplatev3.UriTemplateMatchConfig{}
	if err := anypb.UnmarshalTo(a, cfg, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("uri_template: %w", err)
	}
	re, err := CompileURITemplate(cfg.GetPathTemplate())
	if err != nil {
		return nil, fmt.Errorf("uri_template: %w", err)
	}
	return &uriTemplateRule{re}, nil
}

// CompileURITemplate turns an Envoy path template ("/v1/*/items/**")
// into an anchored regular expression over a path without query.
func CompileURITemplate(tmpl string) (*regexp.Regexp, error) {
	if len(tmpl) > maxTemplateLen {
		return nil, fmt.Errorf("path template is %d bytes; maximum is %d", len(tmpl), maxTemplateLen)
	}
	if !strings.HasPrefix(tmpl, "/") {
		return nil, fmt.Errorf("path template %q does not start with /", tmpl)
	}
	var b strings.Builder
	b.WriteString("^")
	vars := map[string]bool{}
	sawMulti := false
	// The last segment may carry a literal suffix after its operator
	// ("/**.mpd"): split it off first.
	segs := strings.Split(tmpl[1:], "/")
	for i, seg := range segs {
		b.WriteString("/")
		if sawMulti {
			return nil, fmt.Errorf("path template %q: ** must be the last operator", tmpl)
		}
		// Variables are a whole segment, possibly spanning "/" inside
		// braces: rejoin segments until the brace closes.
		if strings.HasPrefix(seg, "{") {
			j := i
			full := seg
			for !strings.Contains(full, "}") && j+1 < len(segs) {
				j++
				full += "/" + segs[j]
			}
			if j != i {
				return nil, fmt.Errorf("path template %q: multi-segment variables are not supported", tmpl)
			}
			end := strings.Index(seg, "}")
			if end < 0 {
				return nil, fmt.Errorf("path template %q: unterminated variable", tmpl)
			}
			body, rest := seg[1:end], seg[end+1:]
			name, expr, hasExpr := strings.Cut(body, "=")
			if !variableRe.MatchString(name) {
				return nil, fmt.Errorf("path template %q: invalid variable name %q", tmpl, name)
			}
			if vars[name] {
				return nil, fmt.Errorf("path template %q: duplicate variable %q", tmpl, name)
			}
			vars[name] = true
			if len(vars) > maxTemplateVariables {
				return nil, fmt.Errorf("path template %q: more than %d variables", tmpl, maxTemplateVariables)
			}
			if !hasExpr {
				expr = "*"
			}
			multi, err := writeOperator(&b, expr, tmpl)
			if err != nil {
				return nil, err
			}
			sawMulti = sawMulti || multi
			if err := writeSuffix(&b, rest, i == len(segs)-1, tmpl); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case seg == "**" || strings.HasPrefix(seg, "**"):
			b.WriteString(anySegments)
			sawMulti = true
			if err := writeSuffix(&b, seg[2:], i == len(segs)-1, tmpl); err != nil {
				return nil, err
			}
		case strings.HasPrefix(seg, "*"):
			b.WriteString(oneSegment)
			if err := writeSuffix(&b, seg[1:], i == len(segs)-1, tmpl); err != nil {
				return nil, err
			}
		default:
			if !literalRe.MatchString(seg) {
				return nil, fmt.Errorf("path template %q: invalid literal %q", tmpl, seg)
			}
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// writeOperator writes a variable's expression: "*", "**" or literal
// segments; it reports a "**".
func writeOperator(b *strings.Builder, expr, tmpl string) (bool, error) {
	switch expr {
	case "*":
		b.WriteString(oneSegment)
		return false, nil
	case "**":
		b.WriteString(anySegments)
		return true, nil
	}
	if expr == "" || !literalRe.MatchString(expr) {
		return false, fmt.Errorf("path template %q: invalid variable expression %q", tmpl, expr)
	}
	b.WriteString(regexp.QuoteMeta(expr))
	return false, nil
}

// writeSuffix writes the literal text after an operator, allowed only in
// the last segment.
func writeSuffix(b *strings.Builder, rest string, last bool, tmpl string) error {
	if rest == "" {
		return nil
	}
	if !last {
		return fmt.Errorf("path template %q: text after an operator is only allowed in the last segment", tmpl)
	}
	if !literalRe.MatchString(rest) {
		return errors.New("path template " + tmpl + ": invalid literal " + rest)
	}
	b.WriteString(regexp.QuoteMeta(rest))
	return nil
}
