package harness

import (
	"testing"
	"time"
)

// Eventually calls f every interval until it returns nil, and returns how long that
// took; when within passes first, the test fails naming what and f's last error.
func Eventually(t testing.TB, within, interval time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < within {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(interval)
	}
	t.Fatalf("%s: not within %v: %v", what, within, err)
	return 0
}
