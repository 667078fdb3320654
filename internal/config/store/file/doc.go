// Package file serves the configuration defined by a directory tree of
// *.yaml, *.yml and *.json files, kept up to date with fsnotify.
//
//	fsnotify events ──debounce──► walk tree ──► per file: read, hash,
//	  (any watched dir)            (watch each    decode + Check only if the
//	                                dir, then     content changed (cached)
//	                                list it)                │
//	                                                        ▼
//	   handlers ◄── Dispatcher ◄── apply: diff with ◄── desired: merge files
//	  (serial)                      state in force       in lexical order
//
// Every reload re-reads the whole tree and compares file contents with the
// previous read, instead of interpreting individual events. Editors' save
// strategies (rename over, write to a temporary file then rename, vim's
// backup and 4913 probe files), new subdirectories and ConfigMap-style
// "..data" symlink swaps therefore need no special cases. Names starting
// with "." are skipped; symlinks to files are followed, symlinks to
// directories are not, and a change to a symlink's target outside the tree
// is seen at the next reload, not when it happens. If the root cannot be
// read or watched, that is reported as a Problem and the store serves what
// it could read; it does not poll for the root to appear.
//
// Merge rules (see desired):
//   - a file or document that does not decode is a Problem; the objects the
//     file defined before stay at their last valid version, while objects
//     from its documents that did decode are applied (if the decode error
//     names its object, only that object is kept, and the file otherwise
//     counts as clean);
//   - an object that fails validation is a Problem; its last valid version
//     stays, and the other objects of its file are applied;
//   - an object missing from a file that decodes cleanly, or whose file is
//     gone, is deleted;
//   - a key defined twice is won by the lexically first file (first document
//     within a file); the loser is a CodeDuplicate problem;
//   - only real changes (config.Config.Equal) emit events, so an object
//     moved between files within one debounce window emits nothing (or an
//     update if it also changed).
//
// The Run goroutine owns the file cache and the watch list; the state in
// force and the problem list are guarded by the store's lock.
package file
