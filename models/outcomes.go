package models

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Boot results: what became of a boot after the agent served it (issue 18). A boot's
// Outcome says what the agent told the device; its Result says whether the device came up.
const (
	BootResultPending = ""        // still observed by the agent
	BootResultUp      = "up"      // checked in, or its iSCSI session stayed up past the bound with reads
	BootResultFailed  = "failed"  // asked for a boot script again within the bound, or its session dropped early
	BootResultUnknown = "unknown" // the agent could not tell (restarted, no session seen)
)

// BootStats sums up the boots of one group version, for a rollout's thresholds and the
// version's page: counts by result and the time to up of the boots that came up.
type BootStats struct {
	Boots   int           `json:"boots"`
	Up      int           `json:"up"`
	Failed  int           `json:"failed"`
	Unknown int           `json:"unknown"`
	Pending int           `json:"pending"`
	P50     time.Duration `json:"p50_ns"`
	P95     time.Duration `json:"p95_ns"`
}

// SuccessRate is the share of decided boots that came up (0 when none is decided).
func (s BootStats) SuccessRate() float64 {
	decided := s.Up + s.Failed + s.Unknown
	if decided == 0 {
		return 0
	}
	return float64(s.Up) / float64(decided)
}

// LatestBoots returns, for each device of deviceIDs (every device when empty), its latest
// boot of the group's version at or after since, keyed by device id. Devices that have not
// booted the version since then are absent; an answer that gave no disk (a redirect, the
// reboot loop while no server holds the version) is no boot of it.
func LatestBoots(ctx context.Context, db *gorm.DB, groupID uint, version int, deviceIDs []uint, since time.Time) (map[uint]BootHistory, error) {
	q := db.WithContext(ctx).Where("group_id = ? AND version = ? AND created_at >= ? AND outcome <> ?", groupID, version, since, BootOutcomeNotBooted)
	if len(deviceIDs) > 0 {
		q = q.Where("device_id IN ?", deviceIDs)
	}
	var rows []BootHistory
	if err := q.Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("boot history: %w", err)
	}
	out := make(map[uint]BootHistory, len(rows))
	for _, r := range rows {
		// Ordered by time (a result whose first report was lost adds its row late, dated
		// when it was served): the last one wins.
		out[r.DeviceID] = r
	}
	return out, nil
}

// VersionBootStats sums up the latest boot of each device (of deviceIDs, or every device
// when empty) that booted the group's version at or after since.
func VersionBootStats(ctx context.Context, db *gorm.DB, groupID uint, version int, deviceIDs []uint, since time.Time) (BootStats, error) {
	latest, err := LatestBoots(ctx, db, groupID, version, deviceIDs, since)
	if err != nil {
		return BootStats{}, err
	}
	var st BootStats
	var ups []int64
	for _, r := range latest {
		st.Boots++
		switch r.Result {
		case BootResultUp:
			st.Up++
			ups = append(ups, r.UpMS)
		case BootResultFailed:
			st.Failed++
		case BootResultUnknown:
			st.Unknown++
		default:
			st.Pending++
		}
	}
	st.P50, st.P95 = percentileMS(ups, 50), percentileMS(ups, 95)
	return st, nil
}

// percentileMS is the nearest-rank percentile p of millisecond values, as a duration.
func percentileMS(ms []int64, p int) time.Duration {
	if len(ms) == 0 {
		return 0
	}
	s := append([]int64(nil), ms...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := (p*len(s) + 99) / 100 // ceil(p/100 · n)
	if rank < 1 {
		rank = 1
	}
	return time.Duration(s[rank-1]) * time.Millisecond
}

// bootOutcomesMigration adds a boot's result and its time to up to the boot history.
func bootOutcomesMigration() *gormigrate.Migration {
	return addColumnsMigration("202612010400_boot_outcomes", &bootOutcomesTable{}, "Result", "UpMS")
}

// bootOutcomesTable is the boot history as migration 202612010400 knows it (frozen).
type bootOutcomesTable struct {
	Result string `gorm:"size:10;not null;default:''"`
	UpMS   int64  `gorm:"not null;default:0"`
}

func (bootOutcomesTable) TableName() string { return "boot_histories" }
