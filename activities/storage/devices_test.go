package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// On a regular file (a file-backed pool) BLKZNAME is not supported: existence is enough;
// a missing node is waited for, within the bound.
func TestWaitNodeOutsideZFS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Devices{NodeWait: 300 * time.Millisecond}
	if err := d.waitNode(context.Background(), p, "tank/iscsi/devices/1", ""); err != nil {
		t.Fatalf("regular file: %v", err)
	}
	if err := d.waitNode(context.Background(), p+"-missing", "tank/iscsi/devices/1", ""); err == nil {
		t.Fatal("a missing node was accepted")
	}
	if g, v := parseVersionOrigin("tank", "tank/iscsi/groups/12@v3"); g != 12 || v != 3 {
		t.Fatalf("origin: %d v%d", g, v)
	}
}
