package lab

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cached builds unused for a day are removed; the one in use and recent ones stay.
func TestPruneBuilds(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keep := mk("clusterducks-aaaa", 48*time.Hour)
	stale := mk("clusterducks-bbbb", 48*time.Hour)
	recent := mk("clusterducks-cccc", time.Hour)
	other := mk("guestexec-dddd", 48*time.Hour)
	pruneBuilds(dir, "clusterducks", keep)
	for p, want := range map[string]bool{keep: true, stale: false, recent: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: present %t, want %t", filepath.Base(p), err == nil, want)
		}
	}
}
