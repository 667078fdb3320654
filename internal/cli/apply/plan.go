package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/decode"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// doc is one "---"-separated document of a file, with the objects it
// defines.
type doc struct {
	text []byte
	keys []config.Key
}

// file is a YAML file cut into documents.
type file struct {
	path string
	docs []doc
}

// object is one object of an input file, with the document that defines it.
type object struct {
	key  config.Key
	text []byte // its document; shared by the objects of one List document
	list bool   // defined in a List document with other objects
}

// split cuts data into documents as kubectl (and the control plane's
// decoder) do: a line starting with "---" followed by nothing but blanks or
// a comment separates documents; documents of only blanks and comments are
// dropped.
func split(data []byte) [][]byte {
	var out [][]byte
	start := 0
	flush := func(end int) {
		if chunk := data[start:end]; !blank(chunk) {
			out = append(out, chunk)
		}
	}
	for pos := 0; pos < len(data); {
		next := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		line := bytes.TrimRight(data[pos:next], "\r\n")
		if bytes.HasPrefix(line, []byte("---")) {
			if rest := bytes.TrimSpace(line[3:]); len(rest) == 0 || rest[0] == '#' {
				flush(pos)
				start = next
			}
		}
		pos = next
	}
	flush(len(data))
	return out
}

func blank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// readFile decodes path document by document. With strict, any decode
// error, validation error or document without Istio objects fails (input
// files); otherwise documents that do not decode are kept with no keys
// (the directory: its problems are the control plane's to report).
func readFile(path string, data []byte, strict bool) (file, error) {
	schemas := schema.Istio()
	f := file{path: path}
	var errs []error
	for i, chunk := range split(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})) {
		src := config.Source{File: path, Document: i + 1}
		res := decode.Decode(schemas, path, chunk)
		d := doc{text: chunk}
		if strict {
			for _, e := range res.Errors {
				errs = append(errs, fmt.Errorf("%s: %s", src, e.Error()))
			}
			if len(res.Errors) == 0 && len(res.Configs) == 0 {
				errs = append(errs, fmt.Errorf("%s: no Istio configuration (trellis up reads only Istio's kinds)", src))
			}
		}
		for _, c := range res.Configs {
			if strict {
				if _, err := ingest.Validate(c); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", src, c.Key(), err))
				}
			}
			d.keys = append(d.keys, c.Key())
		}
		f.docs = append(f.docs, d)
	}
	return f, errors.Join(errs...)
}

// objects lists the objects of input files, refusing one defined twice.
func objects(files []file) ([]object, error) {
	var out []object
	seen := map[config.Key]string{}
	for _, f := range files {
		for i, d := range f.docs {
			for _, k := range d.keys {
				where := fmt.Sprintf("%s (document %d)", f.path, i+1)
				if prev, ok := seen[k]; ok {
					return nil, fmt.Errorf("%s is defined twice: %s and %s", k, prev, where)
				}
				seen[k] = where
				out = append(out, object{key: k, text: d.text, list: len(d.keys) > 1})
			}
		}
	}
	return out, nil
}

// readDir reads every configuration file under dir, as the control plane's
// file store does (.yaml, .yml, .json; names starting with "." skipped).
func readDir(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if path != dir && strings.HasPrefix(name, ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, _ := readFile(path, data, false)
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	return out, nil
}

// ManagedName is the file apply writes an object to, in the watched
// directory: "<kind>.<namespace>.<name>.yaml", lower case.
func ManagedName(k config.Key) string {
	return strings.ToLower(k.Kind.Kind) + "." + k.Namespace + "." + k.Name + ".yaml"
}

// Change is one object's outcome, for the command's output.
type Change struct {
	Key    config.Key
	Action string // "created", "configured", "unchanged", "deleted", "not found"
}

// Plan is the set of file writes (nil content: remove the file) that
// applies or deletes objects.
type Plan struct {
	Writes  map[string][]byte
	Changes []Change
}

// planApply replaces or creates each object: its current document is
// removed from wherever it is defined, and its input document is written
// to its managed file.
func planApply(dir string, current []file, objs []object) (Plan, error) {
	return plan(dir, current, objs, true)
}

// planDelete removes each object's document.
func planDelete(dir string, current []file, objs []object) (Plan, error) {
	return plan(dir, current, objs, false)
}

func plan(dir string, current []file, objs []object, apply bool) (Plan, error) {
	where := map[config.Key]string{} // key -> file path
	for _, f := range current {
		for _, d := range f.docs {
			for _, k := range d.keys {
				if _, dup := where[k]; !dup {
					where[k] = f.path
				}
			}
		}
	}
	want := map[config.Key]bool{}
	for _, o := range objs {
		want[o.key] = true
	}
	p := Plan{Writes: map[string][]byte{}}
	// Remove the objects' documents from the files that define them.
	for _, f := range current {
		var kept [][]byte
		touched := false
		for i, d := range f.docs {
			hit, other := 0, 0
			for _, k := range d.keys {
				if want[k] {
					hit++
				} else {
					other++
				}
			}
			if hit == 0 {
				kept = append(kept, d.text)
				continue
			}
			if other > 0 {
				return Plan{}, fmt.Errorf("%s (document %d) defines %s together with other objects (a List): edit that file by hand", f.path, i+1, d.keys[0])
			}
			touched = true
		}
		if !touched {
			continue
		}
		if len(kept) == 0 {
			p.Writes[f.path] = nil
		} else {
			p.Writes[f.path] = join(kept)
		}
	}
	for _, o := range objs {
		if !apply {
			act := "deleted"
			if _, ok := where[o.key]; !ok {
				act = "not found"
			}
			p.Changes = append(p.Changes, Change{Key: o.key, Action: act})
			continue
		}
		if o.list {
			return Plan{}, fmt.Errorf("%s is in a List document with other objects: apply takes one object per document", o.key)
		}
		target := filepath.Join(dir, ManagedName(o.key))
		act := "created"
		if prev, ok := where[o.key]; ok {
			act = "configured"
			if prev == target && sameDoc(current, target, o) {
				delete(p.Writes, target) // nothing to remove or write
				p.Changes = append(p.Changes, Change{Key: o.key, Action: "unchanged"})
				continue
			}
		}
		p.Writes[target] = join([][]byte{o.text})
		p.Changes = append(p.Changes, Change{Key: o.key, Action: act})
	}
	sort.Slice(p.Changes, func(i, j int) bool { return p.Changes[i].Key.String() < p.Changes[j].Key.String() })
	return p, nil
}

// sameDoc reports whether the managed file path holds exactly o's document.
func sameDoc(current []file, path string, o object) bool {
	for _, f := range current {
		if f.path == path && len(f.docs) == 1 {
			return bytes.Equal(bytes.TrimSpace(f.docs[0].text), bytes.TrimSpace(o.text))
		}
	}
	return false
}

func join(docs [][]byte) []byte {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(d)
		if !bytes.HasSuffix(d, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// execute performs p: removals and rewrites of existing files first, then
// new files, each replaced atomically.
func execute(p Plan) error {
	paths := make([]string, 0, len(p.Writes))
	for path := range p.Writes {
		paths = append(paths, path)
	}
	sort.Slice(paths, func(i, j int) bool {
		_, ei := os.Stat(paths[i])
		_, ej := os.Stat(paths[j])
		if (ei == nil) != (ej == nil) {
			return ei == nil // existing files first
		}
		return paths[i] < paths[j]
	})
	for _, path := range paths {
		data := p.Writes[path]
		if data == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", path, err)
			}
			continue
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".trellis-apply-*")
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if _, err := tmp.Write(data); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
