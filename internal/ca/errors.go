package ca

import "fmt"

// RequestError is a caller's mistake: a malformed or disallowed CSR, or a
// TTL above the maximum. The RPC edge maps it to InvalidArgument; any other
// error from Issue is the CA's own failure (Internal).
type RequestError struct {
	Field  string // "csr" or "ttl"
	Reason string
}

func (e *RequestError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

func csrError(format string, args ...any) error {
	return &RequestError{Field: "csr", Reason: fmt.Sprintf(format, args...)}
}

// FileError names a CA file and what is wrong with it.
type FileError struct {
	Path   string
	Reason string
	Err    error
}

func (e *FileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("CA file %s: %s: %v", e.Path, e.Reason, e.Err)
	}
	return fmt.Sprintf("CA file %s: %s", e.Path, e.Reason)
}

func (e *FileError) Unwrap() error { return e.Err }
