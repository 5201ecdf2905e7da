package panel

import (
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
)

// TestTransferRow: the percent counts what earlier attempts received (a resumed stream's
// estimate is only what is left), stays below the next step's, and the rate is over the
// samples kept.
func TestTransferRow(t *testing.T) {
	in := WatchTransferInput{OperationID: 4, Label: "iscsi/volumes/5@group-7 from server 1", From: 5, To: 50}
	t0 := time.Unix(1000, 0)
	seen := []sample{{t0, 0}, {t0.Add(4 * time.Second), 8 << 20}}
	for _, c := range []struct {
		name      string
		prog      storage.ReplicateProgress
		pct       int
		total     int64
		inMessage string
	}{
		{"first stream", storage.ReplicateProgress{Bytes: 25 << 20, Size: 100 << 20, Done: 25 << 20}, 5 + 45*25/100, 100 << 20, "25.0 MiB of ~100.0 MiB, 2.0 MiB/s"},
		// Cut at 40 MiB, resumed: the new stream's estimate is the 60 MiB left.
		{"resumed", storage.ReplicateProgress{Bytes: 70 << 20, Size: 60 << 20, Done: 30 << 20}, 5 + 45*70/100, 100 << 20, "70.0 MiB of ~100.0 MiB"},
		{"estimate exceeded", storage.ReplicateProgress{Bytes: 120 << 20, Size: 100 << 20, Done: 120 << 20}, 49, 120 << 20, ""},
		{"no estimate yet", storage.ReplicateProgress{}, 5, 0, "0 B of ~0 B"},
	} {
		got := transferRow(in, c.prog, seen)
		if got.Percent != c.pct || got.BytesTotal != c.total || got.Bytes != c.prog.Bytes || got.Rate != 2<<20 ||
			got.Step != "transfer" || got.OperationID != 4 || !strings.Contains(got.Message, c.inMessage) {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
}
