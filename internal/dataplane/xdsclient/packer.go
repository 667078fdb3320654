package xdsclient

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// packLevel is flate's level for kept resources: the lowest that uses a
// dictionary (level 1 ignores it), within a few per cent of level 6 here.
const packLevel = 2

// maxDict is flate's window: only the last 32 KiB of a dictionary count.
const maxDict = 32 << 10

// packer compresses the kept bodies of one resource type. Resources of a
// type repeat each other (every cluster carries the same TLS context and
// metadata keys; every load assignment the same workload metadata), so
// each body is compressed against a dictionary: the middle resource of
// the first response (its last 32 KiB; the first resources of a response
// tend to be the special ones, such as the passthrough cluster). With
// 1,000 services the kept CDS bodies shrink ~17×, EDS ~4.5×, RDS ~20×
// (docs/benchmarks.md). A resource keeps
// its packer (the dictionary) for unpacking; a packer never changes its
// dictionary, so it stays right for every body it packed.
//
// Writers (a level-2 flate compressor holds ~700 KB of tables) are reused
// through a sync.Pool: kept while responses come in, released by the
// collector when they stop.
type packer struct {
	mu      sync.Mutex
	dict    []byte
	writers sync.Pool // *flate.Writer with dict
}

// packAll compresses the bodies of rs in place (pk set), choosing the
// packer's dictionary from rs if it has none yet.
func (p *packer) packAll(rs []resource) error {
	if len(rs) == 0 {
		return nil
	}
	p.mu.Lock()
	if p.dict == nil {
		body := rs[len(rs)/2].body
		p.dict = bytes.Clone(body[max(0, len(body)-maxDict):])
	}
	p.mu.Unlock()
	for i := range rs {
		packed, err := p.pack(rs[i].body)
		if err != nil {
			return fmt.Errorf("%s: %w", rs[i].name, err)
		}
		rs[i].body, rs[i].pk = packed, p
	}
	return nil
}

// pack returns body compressed; body is not retained. The first call
// makes body the dictionary unless packAll chose one.
func (p *packer) pack(body []byte) ([]byte, error) {
	p.mu.Lock()
	if p.dict == nil {
		p.dict = bytes.Clone(body[max(0, len(body)-maxDict):])
	}
	dict := p.dict
	p.mu.Unlock()
	var buf bytes.Buffer
	w, _ := p.writers.Get().(*flate.Writer)
	if w == nil {
		var err error
		if w, err = flate.NewWriterDict(&buf, packLevel, dict); err != nil {
			return nil, fmt.Errorf("compressing the kept resource: %w", err)
		}
	} else {
		w.Reset(&buf)
	}
	defer p.writers.Put(w)
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("compressing the kept resource: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compressing the kept resource: %w", err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// unpack returns the body that pack compressed into packed.
func (p *packer) unpack(packed []byte) ([]byte, error) {
	p.mu.Lock()
	dict := p.dict
	p.mu.Unlock()
	r := flate.NewReaderDict(bytes.NewReader(packed), dict)
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompressing the kept resource: %w", err)
	}
	return body, nil
}
