package file

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/store"
)

// extensions are the file name suffixes the store reads.
var extensions = []string{".yaml", ".yml", ".json"}

// result is what one file contributed at its current content. Results are
// cached by content digest, so an unchanged file is neither decoded nor
// validated again.
type result struct {
	digest [sha256.Size]byte
	// clean reports whether the file was read and every document decoded
	// far enough to name its object. Objects of an unclean file that are
	// missing from objects keep their last valid version, since they may be
	// in the broken part.
	clean bool
	// objects are the admitted objects, in document order.
	objects []config.Config
	// rejected are the keys of objects that failed to decode or Check; they
	// keep their last valid version.
	rejected []config.Key
	// problems are decode errors, rejections and warnings.
	problems []store.Problem
}

// watcher is the part of *fsnotify.Watcher the scan uses.
type watcher interface {
	Add(name string) error
	Remove(name string) error
}

// scan is the outcome of walking the tree once.
type scan struct {
	files    map[string]*result
	dirs     map[string]bool
	problems []store.Problem // directories that could not be read or watched
}

// walk reads the tree under root, reusing cached results for unchanged
// files. Each directory is watched before it is listed, so a file created
// in a new directory is either listed now or reported by a later event.
func (s *Store) walk(w watcher, watched map[string]bool, cache map[string]*result) scan {
	sc := scan{files: make(map[string]*result), dirs: make(map[string]bool)}
	var visit func(dir string)
	visit = func(dir string) {
		sc.dirs[dir] = true
		if w != nil && !watched[dir] {
			if err := w.Add(dir); err != nil {
				sc.problems = append(sc.problems, dirProblem(dir, fmt.Errorf("watching: %w", err)))
			} else {
				watched[dir] = true
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			if dir == s.dir || !errors.Is(err, fs.ErrNotExist) {
				sc.problems = append(sc.problems, dirProblem(dir, fmt.Errorf("listing: %w", err)))
			}
			return
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				// Hidden files and editors' temporaries; ConfigMap-style
				// "..data" directories are reached through the symlinks
				// that point into them.
				continue
			}
			path := filepath.Join(dir, name)
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				fi, err := os.Stat(path)
				if err != nil {
					continue // dangling, e.g. an editor's lock file
				}
				if fi.IsDir() {
					continue // not followed: no loops
				}
				mode = fi.Mode().Type()
			}
			switch {
			case mode.IsDir():
				visit(path)
			case mode.IsRegular() && hasExtension(name):
				if r, ok := s.readFile(path, cache[path]); ok {
					sc.files[path] = r
				}
			}
		}
	}
	visit(s.dir)
	for dir := range watched {
		if !sc.dirs[dir] {
			delete(watched, dir)
			_ = w.Remove(dir) // usually already gone with the directory
		}
	}
	return sc
}

func hasExtension(name string) bool {
	return slices.Contains(extensions, strings.ToLower(filepath.Ext(name)))
}

func dirProblem(dir string, err error) store.Problem {
	return store.Problem{Code: store.CodeUnreadable, Source: config.Source{File: dir}, Message: err.Error()}
}

// readFile reads, decodes and checks one file. It reports false if the
// file vanished before it could be read.
func (s *Store) readFile(path string, prev *result) (*result, bool) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		return &result{problems: []store.Problem{{
			Code:    store.CodeUnreadable,
			Source:  config.Source{File: path},
			Message: fmt.Sprintf("reading: %v", err),
		}}}, true
	}
	digest := sha256.Sum256(data)
	if prev != nil && prev.digest == digest { // unreadable results have a zero digest
		return prev, true
	}
	return s.decode(path, data, digest), true
}

// decode turns the content of one file into a result.
func (s *Store) decode(path string, data []byte, digest [sha256.Size]byte) *result {
	r := &result{digest: digest, clean: true}
	configs, err := s.decodeFn(path, data)
	for _, p := range store.AsProblems(err, store.Problem{Code: store.CodeDecode, Source: config.Source{File: path}}) {
		p.Source.File = path
		if p.Key.Kind.Kind != "" && p.Key.Name != "" {
			// The document parsed far enough to name its object: only that
			// object keeps its last valid version.
			if p.Key.Namespace == "" {
				p.Key.Namespace = config.DefaultNamespace
			}
			r.rejected = append(r.rejected, p.Key)
		} else {
			r.clean = false
		}
		r.problems = append(r.problems, p)
	}
	for _, c := range configs {
		c.Source.File = path
		if c.Namespace == "" {
			c.Namespace = config.DefaultNamespace
		}
		problems, ok := store.Check(s.schemas, s.validate, c)
		r.problems = append(r.problems, problems...)
		if ok {
			r.objects = append(r.objects, c)
		} else {
			r.rejected = append(r.rejected, c.Key())
		}
	}
	return r
}
