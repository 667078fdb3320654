package decode

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Limits on untrusted input.
const (
	// MaxFileSize is the largest file Decode accepts.
	MaxFileSize = 8 << 20
	// MaxDocumentSize is the largest single document. Kubernetes cannot
	// store larger objects either (etcd's default request limit is 1.5 MiB).
	MaxDocumentSize = 3 << 19
	// MaxObjects is the largest number of documents plus List items in a file.
	MaxObjects = 10000
	// maxDepth bounds nesting inside a document; Istio specs need about 12.
	maxDepth = 64
	// maxNodes bounds the values in one document after YAML aliases have
	// been expanded.
	maxNodes = 1 << 20
	// maxErrorsPerDocument keeps the report of a badly broken document short.
	maxErrorsPerDocument = 20
)

// Result is the outcome of decoding one file.
type Result struct {
	// Configs are the Istio objects that decoded cleanly, in file order.
	Configs []config.Config
	// Skipped are well-formed objects of kinds that are not Istio
	// configuration (Services, Deployments, ...).
	Skipped []Skipped
	// Errors are the problems found, in file order. An object with errors
	// is absent from Configs.
	Errors []*Error
}

// Err returns the errors as one error, or nil.
func (r Result) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	errs := make([]error, len(r.Errors))
	for i, e := range r.Errors {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Skipped describes an object that is not Istio configuration.
type Skipped struct {
	Source     config.Source
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
}

// Decode decodes every document of a YAML file. file names the origin in
// errors and in Config.Source; data is the file content. schemas says which
// kinds are configuration; an apiVersion whose group belongs to schemas but
// whose kind or version is not served is an error, any other group is
// skipped.
func Decode(schemas schema.Set, file string, data []byte) Result {
	var res Result
	if len(data) > MaxFileSize {
		res.Errors = append(res.Errors, &Error{
			Source: config.Source{File: file},
			Reason: fmt.Sprintf("file is too large (%d bytes, limit %d)", len(data), MaxFileSize),
		})
		return res
	}
	docs := split(data)
	if len(docs) > MaxObjects {
		res.Errors = append(res.Errors, &Error{
			Source: config.Source{File: file},
			Reason: fmt.Sprintf("too many documents (%d, limit %d)", len(docs), MaxObjects),
		})
		return res
	}
	d := decoder{schemas: schemas, groups: groupsOf(schemas), file: file, objects: len(docs), res: &res}
	for _, doc := range docs {
		d.document(doc)
	}
	return res
}

// decoder holds the state of one Decode call.
type decoder struct {
	schemas schema.Set
	groups  map[string]bool
	file    string
	objects int // documents plus list items seen so far
	res     *Result
}

func groupsOf(s schema.Set) map[string]bool {
	g := make(map[string]bool)
	for _, sc := range s.All() {
		g[sc.Group] = true
	}
	return g
}

// report collects the errors of one document.
type report struct {
	src  config.Source
	obj  objectID
	errs []*Error
}

// objectID is what is known about the object an error is about.
type objectID struct {
	kind, namespace, name string
}

func (r *report) add(p fieldPath, format string, args ...any) {
	if len(r.errs) >= maxErrorsPerDocument {
		return
	}
	reason := fmt.Sprintf(format, args...)
	if len(r.errs) == maxErrorsPerDocument-1 {
		p, reason = "", "too many errors; giving up on this document"
	}
	r.errs = append(r.errs, &Error{
		Source:    r.src,
		Kind:      r.obj.kind,
		Namespace: r.obj.namespace,
		Name:      r.obj.name,
		Field:     string(p),
		Reason:    reason,
	})
}

func (d *decoder) document(doc document) {
	src := config.Source{File: d.file, Document: doc.index}
	r := &report{src: src}
	defer func() { d.res.Errors = append(d.res.Errors, r.errs...) }()
	if doc.err != "" {
		r.add("", "%s", doc.err)
		return
	}
	if len(doc.data) > MaxDocumentSize {
		r.add("", "document is too large (%d bytes, limit %d)", len(doc.data), MaxDocumentSize)
		return
	}
	tree, err := parseYAML(doc.data, doc.line)
	if err != nil {
		if ce, ok := err.(*convertError); ok {
			r.add(ce.path, "%s", ce.reason)
		} else {
			r.add("", "%s", err.Error())
		}
		return
	}
	if tree == nil {
		return // an empty document, such as "~"
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		r.add("", "document must be a mapping (an object with apiVersion and kind), not %s", describe(tree))
		return
	}
	d.object(r, obj, "", false, nil)
}

// object decodes one Kubernetes object found at path p of the document.
// inList is set for the items of a List; defaults is the list's type when it
// is a typed list such as VirtualServiceList, whose items may omit
// apiVersion and kind.
func (d *decoder) object(r *report, obj map[string]any, p fieldPath, inList bool, defaults *typeMeta) {
	before := len(r.errs)
	tm, ok := d.typeMeta(r, obj, p, defaults)
	if !ok {
		return
	}
	r.obj = objectID{kind: tm.kind}
	if tm.kind == "List" || strings.HasSuffix(tm.kind, "List") && d.isTypedList(tm) {
		if inList {
			r.add(p.child("kind"), "a List may not contain another List")
			return
		}
		d.list(r, obj, p, tm)
		return
	}
	if !d.groups[tm.group] {
		d.skip(r, obj, tm)
		return
	}
	sc, ok := d.schemas.Find(tm.group, tm.version, tm.kind)
	if !ok {
		r.obj = identify(obj, tm.kind)
		d.unserved(r, p, tm)
		return
	}
	for _, k := range sortedKeys(obj) {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			r.add(p.child(k), "unknown field %q", k)
		}
	}
	meta, ok := d.metadata(r, obj["metadata"], p.child("metadata"))
	meta.Kind = sc.GroupKind
	meta.Version = tm.version
	r.obj = objectID{kind: tm.kind, namespace: meta.Namespace, name: meta.Name}
	for _, e := range r.errs[before:] {
		e.Namespace, e.Name = meta.Namespace, meta.Name
	}
	spec, specOK := decodeSpec(r, sc, obj["spec"], p.child("spec"))
	if !ok || !specOK || len(r.errs) > before {
		return
	}
	d.res.Configs = append(d.res.Configs, config.Config{Meta: meta, Spec: spec, Source: r.src})
}

// typeMeta is a parsed apiVersion and kind.
type typeMeta struct {
	apiVersion, group, version, kind string
}

func (d *decoder) typeMeta(r *report, obj map[string]any, p fieldPath, list *typeMeta) (typeMeta, bool) {
	var tm typeMeta
	ok := true
	field := func(name string, def string) string {
		v, present := obj[name]
		if !present || v == nil {
			if def != "" {
				return def
			}
			r.add(p.child(name), "required")
			ok = false
			return ""
		}
		s, isString := v.(string)
		if !isString || s == "" {
			r.add(p.child(name), "must be a non-empty string, not %s", describe(v))
			ok = false
		}
		return s
	}
	var defAPIVersion, defKind string
	if list != nil {
		defAPIVersion, defKind = list.apiVersion, strings.TrimSuffix(list.kind, "List")
	}
	tm.apiVersion = field("apiVersion", defAPIVersion)
	tm.kind = field("kind", defKind)
	if !ok {
		return tm, false
	}
	tm.group, tm.version, _ = strings.Cut(tm.apiVersion, "/")
	if !strings.Contains(tm.apiVersion, "/") {
		tm.group, tm.version = "", tm.apiVersion // the core group: "v1"
	}
	if tm.version == "" || strings.Contains(tm.version, "/") {
		r.add(p.child("apiVersion"), "must be \"group/version\" or \"version\", not %q", tm.apiVersion)
		return tm, false
	}
	return tm, true
}

// isTypedList reports whether kind is "<Kind>List" of a known kind, the
// form the Kubernetes API returns for list requests.
func (d *decoder) isTypedList(tm typeMeta) bool {
	if !d.groups[tm.group] {
		return false
	}
	_, ok := d.schemas.Get(config.GroupKind{Group: tm.group, Kind: strings.TrimSuffix(tm.kind, "List")})
	return ok
}

func (d *decoder) list(r *report, obj map[string]any, p fieldPath, tm typeMeta) {
	for _, k := range sortedKeys(obj) {
		switch k {
		case "apiVersion", "kind", "metadata", "items":
		default:
			r.add(p.child(k), "unknown field %q", k)
		}
	}
	items, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		r.add(p.child("items"), "must be a list, not %s", describe(obj["items"]))
		return
	}
	var defaults *typeMeta
	if tm.kind != "List" {
		defaults = &tm
	}
	// Items have their own reports, so that an item's kind and name label
	// only its own errors and one bad item does not use up the error budget
	// of the others.
	var itemErrs []*Error
	defer func() { r.errs = append(r.errs, itemErrs...) }()
	for i, it := range items {
		ip := p.child("items").index(i)
		d.objects++
		if d.objects > MaxObjects {
			r.obj = objectID{}
			r.add(ip, "too many objects in the file (limit %d)", MaxObjects)
			return
		}
		item, ok := it.(map[string]any)
		if !ok {
			r.obj = objectID{}
			r.add(ip, "must be an object, not %s", describe(it))
			continue
		}
		ir := &report{src: r.src}
		d.object(ir, item, ip, true, defaults)
		itemErrs = append(itemErrs, ir.errs...)
	}
}

// identify extracts the name of an object that will not be decoded, so that
// its errors can still say which object they are about.
func identify(obj map[string]any, kind string) objectID {
	id := objectID{kind: kind}
	if m, ok := obj["metadata"].(map[string]any); ok {
		id.name, _ = m["name"].(string)
		id.namespace, _ = m["namespace"].(string)
	}
	if id.namespace == "" && id.name != "" {
		id.namespace = config.DefaultNamespace
	}
	return id
}

// skip records an object of a kind that is not configuration.
func (d *decoder) skip(r *report, obj map[string]any, tm typeMeta) {
	id := identify(obj, tm.kind)
	s := Skipped{Source: r.src, APIVersion: tm.apiVersion, Kind: tm.kind, Namespace: id.namespace, Name: id.name}
	d.res.Skipped = append(d.res.Skipped, s)
}

// unserved reports an Istio group with an unknown kind or version.
func (d *decoder) unserved(r *report, p fieldPath, tm typeMeta) {
	sc, ok := d.schemas.Get(config.GroupKind{Group: tm.group, Kind: tm.kind})
	if !ok {
		var kinds []string
		for _, s := range d.schemas.All() {
			if s.Group == tm.group {
				kinds = append(kinds, s.Kind)
			}
		}
		r.add(p.child("kind"), "kind %q is not supported in group %s (supported: %s)", tm.kind, tm.group, strings.Join(kinds, ", "))
		return
	}
	r.add(p.child("apiVersion"), "version %q of %s is not served (served: %s)", tm.version, sc.GroupKind, strings.Join(sc.Versions, ", "))
}

// knownMeta are the ObjectMeta fields that may appear (for example in
// kubectl output) and are ignored.
var knownMeta = map[string]bool{
	"uid": true, "generateName": true, "selfLink": true, "deletionTimestamp": true,
	"deletionGracePeriodSeconds": true, "ownerReferences": true, "finalizers": true,
	"managedFields": true, "clusterName": true,
}

func (d *decoder) metadata(r *report, v any, p fieldPath) (config.Meta, bool) {
	var m config.Meta
	before := len(r.errs)
	md, isMap := v.(map[string]any)
	if !isMap {
		if v == nil {
			r.add(p.child("name"), "required")
		} else {
			r.add(p, "must be an object, not %s", describe(v))
		}
		return m, false
	}
	str := func(name string) string {
		v := md[name]
		if v == nil {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			r.add(p.child(name), "must be a string, not %s", describe(v))
		}
		return s
	}
	for _, k := range sortedKeys(md) {
		switch k {
		case "name":
			m.Name = str(k)
		case "namespace":
			m.Namespace = str(k)
		case "resourceVersion":
			m.ResourceVersion = str(k)
		case "labels":
			m.Labels = stringMap(r, md[k], p.child(k))
		case "annotations":
			m.Annotations = stringMap(r, md[k], p.child(k))
		case "generation":
			switch g := md[k].(type) {
			case nil:
			case int64:
				if g < 0 {
					r.add(p.child(k), "must not be negative")
				}
				m.Generation = g
			default:
				r.add(p.child(k), "must be an integer, not %s", describe(g))
			}
		case "creationTimestamp":
			if s := str(k); s != "" {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					r.add(p.child(k), "invalid RFC 3339 time %q", s)
				}
				m.CreationTimestamp = t
			}
		default:
			if !knownMeta[k] {
				r.add(p.child(k), "unknown field %q", k)
			}
		}
	}
	switch {
	case m.Name == "" && md["generateName"] != nil:
		r.add(p.child("name"), "required (generateName is not supported)")
	case m.Name == "":
		r.add(p.child("name"), "required")
	default:
		if reason := checkSubdomain(m.Name); reason != "" {
			r.add(p.child("name"), "invalid name %q: %s", m.Name, reason)
		}
	}
	if m.Namespace == "" {
		m.Namespace = config.DefaultNamespace
	} else if reason := checkLabel(m.Namespace); reason != "" {
		r.add(p.child("namespace"), "invalid namespace %q: %s", m.Namespace, reason)
	}
	return m, len(r.errs) == before
}

func stringMap(r *report, v any, p fieldPath) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.add(p, "must be a map of strings, not %s", describe(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			r.add(p.key(k), "must be a string, not %s (quote the value)", describe(m[k]))
			continue
		}
		out[k] = s
	}
	return out
}

// checkSubdomain checks a Kubernetes object name: a DNS-1123 subdomain.
func checkSubdomain(s string) string {
	if len(s) > 253 {
		return "must be no more than 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if reason := checkLabel(l); reason != "" {
			return "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
		}
	}
	return ""
}

// checkLabel checks a DNS-1123 label, as Kubernetes requires of namespaces.
func checkLabel(s string) string {
	if len(s) == 0 || len(s) > 63 {
		return "must be 1 to 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
		}
	}
	return ""
}

// describe names the JSON type of a value for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case int64, uint64, float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
