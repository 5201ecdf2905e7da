// Package proc holds the small helpers tests use around the processes and ports they
// start; a leaf package, so any test can use it without building the rest of the harness.
package proc

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// SyncBuffer collects a process's output while a test reads it; Echo, when set, also
// receives every write. It keeps at most the last 4 MiB or so.
type SyncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	Echo io.Writer
}

// Write appends p (and echoes it).
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Echo != nil {
		s.Echo.Write(p) //nolint:errcheck // the echo is best effort
	}
	if s.b.Len() > 4<<20 {
		s.b.Reset()
	}
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
