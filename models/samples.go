package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// ServerSample is one look at a server's figures, kept for its charts: written with every
// stats report the panel records (the health check's, an agent's push, a bootstrap's).
// The agent's counters are as it reported them (since it started); a report from an agent
// that does not send them leaves them null.
type ServerSample struct {
	ID               uint      `gorm:"primaryKey" json:"-"`
	ServerID         uint      `gorm:"not null;index:idx_server_samples_server_at,priority:1" json:"-"`
	At               time.Time `gorm:"not null;index:idx_server_samples_server_at,priority:2;index:idx_server_samples_at" json:"at"`
	PoolSize         int64     `gorm:"not null;default:0" json:"pool_size"`
	PoolUsed         int64     `gorm:"not null;default:0" json:"pool_used"`
	ISCSISessions    *int64    `gorm:"column:iscsi_sessions" json:"iscsi_sessions"`
	BootRequests     *int64    `gorm:"column:boot_requests" json:"boot_requests"`
	ReplicationBytes *int64    `gorm:"column:replication_bytes" json:"replication_bytes"`
}

// Sample retention: every sample of the last SampleFull, one per SampleThin slot (the
// first) up to SampleKeep, nothing older. At the agents' 15 s pace that bounds a server
// to about 5,760 + 864 rows.
const (
	SampleKeep = 7 * 24 * time.Hour
	SampleFull = 24 * time.Hour
	SampleThin = 10 * time.Minute
)

// RecordSample stores one sample of server serverID taken at at from a stats report, and
// applies the retention when at starts a new SampleThin slot (so at most once per slot
// per server). Repeating it stores the sample twice; the retention drops the copy once it
// is older than SampleFull.
func RecordSample(ctx context.Context, db *gorm.DB, serverID uint, r *StatsReport, at time.Time) error {
	return recordSample(db.WithContext(ctx), serverID, r, at)
}

func recordSample(tx *gorm.DB, serverID uint, r *StatsReport, at time.Time) error {
	at = at.UTC()
	var prev []time.Time
	if err := tx.Model(&ServerSample{}).Where("server_id = ?", serverID).Order("at DESC").Limit(1).Pluck("at", &prev).Error; err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	s := &ServerSample{ServerID: serverID, At: at, PoolSize: max(r.PoolSize, 0),
		ISCSISessions: nonNegative(r.ISCSISessions), BootRequests: nonNegative(r.BootRequests), ReplicationBytes: nonNegative(r.ReplicationBytes)}
	if r.PoolSize > 0 {
		s.PoolUsed = min(max(r.PoolSize-r.PoolFree, 0), r.PoolSize)
	}
	if err := tx.Create(s).Error; err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	if len(prev) == 1 && prev[0].UTC().Truncate(SampleThin).Equal(at.Truncate(SampleThin)) {
		return nil
	}
	if err := pruneSamples(tx, serverID, at); err != nil {
		return err
	}
	return pruneBootHistory(tx, serverID, at)
}

// nonNegative is a reported figure, or nil when it is absent or makes no sense.
func nonNegative(v *int64) *int64 {
	if v == nil || *v < 0 {
		return nil
	}
	n := *v
	return &n
}

// pruneSamples drops every server's samples older than SampleKeep and thins server
// serverID's samples older than SampleFull to the first of each SampleThin slot.
func pruneSamples(tx *gorm.DB, serverID uint, now time.Time) error {
	if err := tx.Where("at < ?", now.Add(-SampleKeep)).Delete(&ServerSample{}).Error; err != nil {
		return fmt.Errorf("prune samples: %w", err)
	}
	var old []ServerSample
	if err := tx.Select("id", "at").Where("server_id = ? AND at < ?", serverID, now.Add(-SampleFull)).Order("at, id").Find(&old).Error; err != nil {
		return fmt.Errorf("thin samples: %w", err)
	}
	var drop []uint
	var slot time.Time
	for i, s := range old {
		if t := s.At.UTC().Truncate(SampleThin); i == 0 || !t.Equal(slot) {
			slot = t
			continue
		}
		drop = append(drop, s.ID)
	}
	for len(drop) > 0 {
		n := min(len(drop), 500)
		if err := tx.Where("id IN ?", drop[:n]).Delete(&ServerSample{}).Error; err != nil {
			return fmt.Errorf("thin samples: %w", err)
		}
		drop = drop[n:]
	}
	return nil
}

// ParseSince reads a "since" value: a time (2026-11-30T12:00:00Z), a date (2026-11-30)
// or a duration back from now (1h, 24h, 168h). Anything else is a 422 naming field.
func ParseSince(field, v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, Invalid(field, "must be a time (2026-11-30T12:00:00Z), a date (2026-11-30) or a duration back from now (1h, 24h, 168h)")
}

// ServerSamples lists a visible server's samples taken at or after since, oldest first.
func (s *Store) ServerSamples(ctx context.Context, a *Actor, key string, since time.Time) (*Server, []ServerSample, error) {
	srv, err := s.FindServer(ctx, a, key)
	if err != nil {
		return nil, nil, err
	}
	out, err := SamplesOf(ctx, s.DB, srv.ID, since)
	return srv, out, err
}

// SamplesOf lists server id's samples taken at or after since, oldest first (not scoped:
// the caller has found the server visible).
func SamplesOf(ctx context.Context, db *gorm.DB, id uint, since time.Time) ([]ServerSample, error) {
	out := []ServerSample{}
	err := db.WithContext(ctx).Where("server_id = ? AND at >= ?", id, since.UTC()).Order("at, id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

// serverSamplesMigration creates the samples table (frozen as this migration knows it).
func serverSamplesMigration() *gormigrate.Migration {
	return createTableMigration("202611302010_server_samples", &serverSamplesTable{})
}

type serverSamplesTable struct {
	ID               uint      `gorm:"primaryKey"`
	ServerID         uint      `gorm:"not null;index:idx_server_samples_server_at,priority:1"`
	At               time.Time `gorm:"not null;index:idx_server_samples_server_at,priority:2;index:idx_server_samples_at"`
	PoolSize         int64     `gorm:"not null;default:0"`
	PoolUsed         int64     `gorm:"not null;default:0"`
	ISCSISessions    *int64    `gorm:"column:iscsi_sessions"`
	BootRequests     *int64    `gorm:"column:boot_requests"`
	ReplicationBytes *int64    `gorm:"column:replication_bytes"`
}

func (serverSamplesTable) TableName() string { return "server_samples" }
