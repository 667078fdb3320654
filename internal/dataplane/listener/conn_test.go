package listener

import (
	"errors"
	"io"
	"net"
	"testing"
)

func TestConnReplaysInspectedBytes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		io.WriteString(a, " world")
		a.Close()
	}()
	c := &Conn{Conn: newReplayConn(b, []byte("hello"))}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello world" {
		t.Errorf("got %q, %v", got, err)
	}
	// net.Pipe cannot half-close.
	if err := c.CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("CloseWrite on a pipe: %v", err)
	}
	if newReplayConn(b, nil) != b {
		t.Error("nothing to replay should not wrap")
	}
}
