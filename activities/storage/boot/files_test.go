package boot

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFileDisksRestore: a device reprovisioned from v1 to v2 gets its v1 disk back (its
// own writes with it), the v2 disk goes to the erator, a repeat reports the same, and a
// device with nothing in the erator is refused.
func TestFileDisksRestore(t *testing.T) {
	f, err := NewFileDisks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for n, text := range map[int]string{1: "version one", 2: "version two"} {
		if err := os.WriteFile(f.GroupVersionPath(7, n), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Clone(7, 1, 3); err != nil {
		t.Fatal(err)
	}
	disk, _, _ := f.DevicePath(t.Context(), 3)
	if err := os.WriteFile(disk, []byte("version one, written by device 3"), 0o644); err != nil {
		t.Fatal(err)
	}
	trashed, err := f.Clone(7, 2, 3)
	if err != nil || trashed == "" {
		t.Fatalf("reprovisioning: %q %v", trashed, err)
	}
	now := time.Now().Unix() + 1
	res, err := f.Restore(3, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != filepath.Base(trashed) || res.GroupID != 7 || res.Version != 1 {
		t.Fatalf("restore: %+v, want %s of 7@v1", res, filepath.Base(trashed))
	}
	if b, _ := os.ReadFile(disk); string(b) != "version one, written by device 3" || f.Origin(3) != 1 {
		t.Fatalf("restored disk %q (origin v%d)", b, f.Origin(3))
	}
	trash, _ := f.Trash()
	if len(trash) != 1 || trash[0] != "device-3-"+itoa(now) {
		t.Fatalf("erator after the restore: %v", trash)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Root, "erator", trash[0]+".origin")); string(b) != "7@v2" {
		t.Fatalf("the replaced v2 disk's origin: %q", b)
	}
	// A repeat (the activity retried) finds the swap done.
	again, err := f.Restore(3, res.From, now)
	if err != nil || again.Version != 1 {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	if _, err := f.Restore(4, "", now); !errors.Is(err, ErrNothingToRestore) {
		t.Fatalf("restore of a device without erator entries: %v", err)
	}
	if _, err := f.Restore(3, "device-4-1", now); !errors.Is(err, ErrNothingToRestore) {
		t.Fatalf("restore from another device's entry: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
