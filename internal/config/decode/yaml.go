package decode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v2"
)

// document is one "---"-separated part of a file.
type document struct {
	index int    // 1-based among non-empty documents
	line  int    // 1-based line of the file where the document starts
	data  []byte // the document text, without the separator
	err   string // set when the separator line itself is malformed
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// split cuts a file into documents the way kubectl does: a line that starts
// with "---" followed only by blanks or a comment separates documents.
// Documents holding nothing but blank lines and comments are dropped, so
// document numbers count objects the way a reader would.
func split(data []byte) []document {
	data = bytes.TrimPrefix(data, utf8BOM)
	var docs []document
	start, startLine, line := 0, 1, 1
	var sepErr string
	flush := func(end int) {
		chunk := data[start:end]
		if sepErr != "" || !blank(chunk) {
			docs = append(docs, document{index: len(docs) + 1, line: startLine, data: chunk, err: sepErr})
		}
	}
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		text := bytes.TrimRight(data[pos:next], "\r\n")
		if bytes.HasPrefix(text, []byte("---")) {
			rest := bytes.TrimSpace(text[3:])
			isSep := len(rest) == 0 || rest[0] == '#'
			// "---" followed by content on the same line is valid YAML but
			// kubectl rejects it too; report it on the document it starts.
			if isSep || text[3] == ' ' || text[3] == '\t' {
				flush(pos)
				sepErr = ""
				if !isSep {
					sepErr = fmt.Sprintf("line %d: content after the document separator \"---\" on the same line is not supported", line)
				}
				start, startLine = next, line+1
			}
		}
		pos = next
	}
	flush(len(data))
	return docs
}

// blank reports whether a chunk holds only whitespace and comments.
func blank(chunk []byte) bool {
	for len(chunk) > 0 {
		var l []byte
		l, chunk, _ = bytes.Cut(chunk, []byte("\n"))
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// parseYAML decodes one document into a tree of map[string]any, []any and
// JSON scalars. It reports a nil tree for an empty document (a document
// holding only "~", say). Line numbers in errors are relative to the file.
func parseYAML(data []byte, firstLine int) (tree any, err error) {
	defer func() {
		// go.yaml.in/yaml/v2 converts its own failures to errors; anything
		// else is a bug in it that untrusted input must not turn into a crash.
		if r := recover(); r != nil {
			tree, err = nil, fmt.Errorf("invalid YAML: parser failure: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true) // duplicate keys are errors, as YAML requires
	var raw any
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(err, firstLine)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err, firstLine)
		}
		return nil, errors.New("invalid YAML: more than one document; separate documents with a line holding only \"---\"")
	}
	c := converter{budget: maxNodes}
	return c.convert(raw)
}

func yamlError(err error, firstLine int) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(s string) string {
		n, err := strconv.Atoi(s[len("line "):])
		if err != nil {
			return s
		}
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	return errors.New("invalid YAML: " + msg)
}

// converter turns the output of the YAML decoder into JSON-compatible values,
// enforcing the depth and size limits.
type converter struct {
	budget int       // values left
	stack  []segment // path to the value being converted
}

// segment is one step of a path: a key, or an index when key is nil.
type segment struct {
	key   *string
	index int
}

// path renders the current position; only called on error, so that
// converting large documents does not allocate a path per value.
func (c *converter) path() fieldPath {
	var p fieldPath
	for _, s := range c.stack {
		if s.key != nil {
			p = p.child(*s.key)
		} else {
			p = p.index(s.index)
		}
	}
	return p
}

// convertError is a conversion failure at a path of the document.
type convertError struct {
	path   fieldPath
	reason string
}

func (e *convertError) Error() string {
	if e.path == "" {
		return e.reason
	}
	return string(e.path) + ": " + e.reason
}

func (c *converter) fail(format string, args ...any) error {
	return &convertError{c.path(), fmt.Sprintf(format, args...)}
}

func (c *converter) convert(v any) (any, error) {
	c.budget--
	if c.budget < 0 {
		return nil, &convertError{"", fmt.Sprintf("document is too large (more than %d values)", maxNodes)}
	}
	if len(c.stack) > maxDepth {
		return nil, &convertError{"", fmt.Sprintf("nesting is deeper than %d levels", maxDepth)}
	}
	switch v := v.(type) {
	case nil, string, bool:
		return v, nil
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint64:
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, c.fail("unsupported number %v", v)
		}
		return v, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c.stack = append(c.stack, segment{index: i})
			ce, err := c.convert(e)
			c.stack = c.stack[:len(c.stack)-1]
			if err != nil {
				return nil, err
			}
			out[i] = ce
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, err := mapKey(k)
			if err != nil {
				return nil, c.fail("%v", err)
			}
			c.stack = append(c.stack, segment{key: &ks})
			if _, dup := out[ks]; dup {
				return nil, c.fail("duplicate key")
			}
			ce, err := c.convert(e)
			c.stack = c.stack[:len(c.stack)-1]
			if err != nil {
				return nil, err
			}
			out[ks] = ce
		}
		return out, nil
	}
	return nil, c.fail("unsupported YAML value of type %T", v)
}

// mapKey renders a YAML mapping key as a JSON object key, as sigs.k8s.io/yaml
// does: scalars become their string form, anything else is an error.
func mapKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case int:
		return strconv.Itoa(k), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(k), nil
	case nil:
		return "", errors.New("null mapping key is not supported")
	}
	return "", fmt.Errorf("mapping key of type %T is not supported", k)
}
