//go:build linux

package sidecar

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// streamPath is the backends' path that reads the request body as it
// comes, counting the bytes in backend.streamed, and answers with the
// body's length and digest.
const streamPath = "/stream"

// vsV1NoRetries routes everything to v1 with retries off (attempts: 0):
// the router then keeps no copy of the body for a retry.
const vsV1NoRetries = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    retries:
      attempts: 0
    headers:
      request:
        set:
          ` + markerHeader + `: stream-v1-no-retries
`

// Body sizes of the streaming test. The rest is larger than the proxies'
// per-request buffer limit (64 KiB: internal/dataplane/http
// DefaultBufferLimit), so even a proxy that held a retry copy could not
// hold the whole body.
const (
	streamFirst = 1 << 10
	streamRest  = 256 << 10
	// streamWait bounds the wait for the first chunk at the backend.
	streamWait = 5 * time.Second
)

func (b *backend) serveStream(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	b.streamed.Store(0)
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		h.Write(buf[:n])
		b.streamed.Add(int64(n))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("%s: reading body after %d bytes: %v", b.name, b.streamed.Load(), err), http.StatusBadRequest)
			return
		}
	}
	rep := reply{Name: b.name, Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr, Headers: r.Header.Clone(),
		BodyBytes: b.streamed.Load(), BodySHA256: hex.EncodeToString(h.Sum(nil))}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// testBodyStreaming: an HTTP/1.1 chunked request body goes through both
// sidecars as it is written. The client writes a first chunk and writes
// the rest only once the backend has read that chunk: a sidecar that held
// the body until its end would never deliver the first chunk, and the test
// fails after streamWait.
//
// Why the sidecars do not hold it: the router sends the body upstream
// through replayBody (internal/dataplane/http/router/body.go), which
// passes each read on at once and only keeps a copy, up to the
// per-request buffer limit, for retries and mirrors. This route has
// neither (attempts: 0, no mirror), and the body is larger than the limit
// anyway; the inbound sidecar's route has no retries either.
func testBodyStreaming(t *testing.T, m *mesh) {
	v1 := m.backends["v1"]
	m.applyVS(t, vsV1NoRetries)
	m.until(t, propagation, 20, "/", nil, marked("reviews-v1", "stream-v1-no-retries"))

	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, streamFirst+streamRest)
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(body)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(m.reviews["v1"].ns.Addr, reviewsPort), streamPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr) // unknown length: chunked
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fmt.Sprintf("%s:%d", reviewsHost, reviewsPort)
	type answer struct {
		code int
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	client := &http.Client{Transport: m.http.Transport} // m.http's 5s timeout would cover the wait
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{code: resp.StatusCode, body: b, err: err}
	}()

	// The pipe hands the chunk to the client's transport, which writes it
	// as one HTTP/1.1 chunk and flushes (net/http flushes after each
	// chunk of a request body).
	sent := time.Now()
	if _, err := pw.Write(body[:streamFirst]); err != nil {
		t.Fatalf("writing the first chunk: %v", err)
	}
	deadline := time.Now().Add(streamWait)
	for v1.streamed.Load() < streamFirst {
		select {
		case a := <-answered:
			t.Fatalf("answered before the rest of the body was written: %d %q, err %v", a.code, trim(string(a.body)), a.err)
		default:
		}
		if time.Now().After(deadline) {
			pw.CloseWithError(errors.New("first chunk not delivered"))
			t.Fatalf("the backend read %d of the first %d body bytes %v after the client wrote them (the rest not written yet): a sidecar holds the request body instead of streaming it", v1.streamed.Load(), streamFirst, streamWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	firstAt := time.Since(sent)
	if got := v1.streamed.Load(); got != streamFirst {
		t.Fatalf("the backend read %d bytes before the client wrote more than %d", got, streamFirst)
	}
	if _, err := pw.Write(body[streamFirst:]); err != nil {
		t.Fatalf("writing the rest: %v", err)
	}
	pw.Close()

	var a answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		t.Fatalf("no answer: %v", ctx.Err())
	}
	if a.err != nil || a.code != http.StatusOK {
		t.Fatalf("answer %d %q, err %v", a.code, trim(string(a.body)), a.err)
	}
	var rep reply
	if err := json.Unmarshal(a.body, &rep); err != nil {
		t.Fatalf("answer %q: %v", trim(string(a.body)), err)
	}
	t.Logf("chunked POST of %d + %d bytes: first chunk at the backend %v after the client began writing it; backend %s read %d bytes, sha256 %.16s…",
		streamFirst, streamRest, firstAt.Round(time.Microsecond), rep.Name, rep.BodyBytes, rep.BodySHA256)
	if rep.Name != "reviews-v1" {
		t.Errorf("answered by %s, want reviews-v1", rep.Name)
	}
	if rep.BodyBytes != int64(len(body)) || rep.BodySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("backend read %d bytes with sha256 %s, want %d bytes with sha256 %x", rep.BodyBytes, rep.BodySHA256, len(body), sum)
	}
}
