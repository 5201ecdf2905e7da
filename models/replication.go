package models

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrGUIDMismatch: a slave reported a snapshot whose guid is not the master's; the copy is
// not recorded (the transfer must be redone from the last common snapshot).
var ErrGUIDMismatch = errors.New("received snapshot's guid differs from the master's")

// VersionCopyInput is a slave's report that it received group version VersionID, with the
// received snapshot's guid.
type VersionCopyInput struct {
	ServerID  uint
	VersionID uint
	GUID      string
	At        time.Time // when it was verified; zero: now
}

// RecordVersionCopy records that a server holds a group version, only when the guid it
// received equals the master's (ErrGUIDMismatch otherwise). Repeating it changes nothing.
func RecordVersionCopy(ctx context.Context, db *gorm.DB, in VersionCopyInput) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var v GroupVersion
		if err := tx.First(&v, in.VersionID).Error; err != nil {
			return fmt.Errorf("version %d: %w", in.VersionID, err)
		}
		if v.GUID == "" || v.GUID != in.GUID {
			return fmt.Errorf("version %d on server %d: got guid %q, master has %q: %w", in.VersionID, in.ServerID, in.GUID, v.GUID, ErrGUIDMismatch)
		}
		at := in.At
		if at.IsZero() {
			at = time.Now()
		}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&VersionCopy{VersionID: v.ID, ServerID: in.ServerID, GUID: in.GUID, ReceivedAt: at}).Error
	})
}

// replicationMigration adds where each agent serves replication and what a slave may
// receive per second.
func replicationMigration() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611300101_replication_addr",
		Migrate: func(tx *gorm.DB) error {
			for _, col := range []string{"ReplicationAddr", "ReplicationBandwidth"} {
				if !tx.Migrator().HasColumn(&replicationMigrationServer{}, col) {
					if err := tx.Migrator().AddColumn(&replicationMigrationServer{}, col); err != nil {
						return err
					}
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for _, col := range []string{"ReplicationAddr", "ReplicationBandwidth"} {
				if tx.Migrator().HasColumn(&replicationMigrationServer{}, col) {
					if err := tx.Migrator().DropColumn(&replicationMigrationServer{}, col); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
}

// replicationMigrationServer is the servers table's new columns as migration 202611300101
// makes them (frozen: Server may change later, this migration must not).
type replicationMigrationServer struct {
	ReplicationAddr      string `gorm:"size:200;not null;default:''"`
	ReplicationBandwidth int64  `gorm:"not null;default:0"`
}

func (replicationMigrationServer) TableName() string { return "servers" }

// SetReplicationAddr records the replication endpoint an agent advertised at its
// registration ("" for the default). A malformed one is refused, naming the field.
func SetReplicationAddr(ctx context.Context, db *gorm.DB, serverID uint, addr string) error {
	if addr != "" {
		host, port, err := net.SplitHostPort(addr)
		p, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || p < 1 || p > 65535 || len(addr) > 200 {
			return Invalid("replication_addr", "must be host:port (got %q)", addr)
		}
	}
	return db.WithContext(ctx).Model(&Server{}).Where("id = ?", serverID).Update("replication_addr", addr).Error
}

// ReplicationDataset is one dataset a replication brings to a slave: relative to the
// pools, up to Snapshot (GUID is the master's, "" when the panel does not record it: the
// workflow asks the master), as a clone of Origin when set.
type ReplicationDataset struct {
	Kind     string // "volume" or "group"
	ObjectID uint
	Dataset  string // iscsi/groups/7
	Snapshot string // v2, group-7; "" the master's newest
	GUID     string
	Origin   string // iscsi/volumes/5@group-7
}

// ReplicationVersion is a group version the slave should hold once the transfer ends.
type ReplicationVersion struct {
	ID     uint
	Number int
	GUID   string
}

// ReplicationPlan is what a replication to a slave needs from the database.
type ReplicationPlan struct {
	MasterID       uint
	MasterAddr     string // host:port of the master's replication endpoint
	MasterPool     string
	SlavePool      string
	BytesPerSecond int64 // the slave's limit, 0 unlimited
	// Datasets in order: a group's origin volume first, then the dataset itself.
	Datasets []ReplicationDataset
	// Versions of a group, up to the one wanted, to record as copies once verified.
	Versions []ReplicationVersion
}

// Replicated dataset kinds (workflows.ReplicateVolume, ReplicateGroup).
const (
	ReplicateVolume = "volume"
	ReplicateGroup  = "group"
)

// defaultReplicationPort is wire.DefaultReplicationPort (models does not import the wire).
const defaultReplicationPort = "8082"

// PlanReplication reads the network's master, the slave and the dataset chain for
// bringing object (kind, id) up to snapshot ("" the newest) to slave. ErrNotFound when
// one of them is gone; a validation error when the slave is the master.
func PlanReplication(ctx context.Context, db *gorm.DB, networkID, slaveID uint, kind string, objectID uint, snapshot string) (*ReplicationPlan, error) {
	db = db.WithContext(ctx)
	var master, slave Server
	if err := db.Where("network_id = ? AND role = ?", networkID, ServerMaster).Take(&master).Error; err != nil {
		return nil, fmt.Errorf("network %d has no master: %w", networkID, notFound(err))
	}
	if err := db.Where("network_id = ? AND id = ?", networkID, slaveID).Take(&slave).Error; err != nil {
		return nil, fmt.Errorf("server %d of network %d: %w", slaveID, networkID, notFound(err))
	}
	if slave.ID == master.ID {
		return nil, Invalid("slave_id", "server %d is the network's master", slaveID)
	}
	addr := master.ReplicationAddr
	if addr == "" {
		addr = net.JoinHostPort(master.ReplicationAddress(), defaultReplicationPort)
	}
	p := &ReplicationPlan{MasterID: master.ID, MasterAddr: addr, MasterPool: master.Pool, SlavePool: slave.Pool,
		BytesPerSecond: slave.ReplicationBandwidth}
	switch kind {
	case ReplicateVolume:
		var v Volume
		if err := db.Where("network_id = ?", networkID).Take(&v, objectID).Error; err != nil {
			return nil, fmt.Errorf("volume %d: %w", objectID, notFound(err))
		}
		p.Datasets = []ReplicationDataset{{Kind: kind, ObjectID: v.ID, Dataset: fmt.Sprintf("iscsi/volumes/%d", v.ID), Snapshot: snapshot}}
	case ReplicateGroup:
		var g Group
		if err := db.Where("network_id = ?", networkID).Take(&g, objectID).Error; err != nil {
			return nil, fmt.Errorf("group %d: %w", objectID, notFound(err))
		}
		var vers []GroupVersion
		if err := db.Where("group_id = ? AND state = ? AND guid <> ''", g.ID, StateReady).Order("number").Find(&vers).Error; err != nil {
			return nil, err
		}
		want := -1
		for i, v := range vers {
			if snapshot == "" || fmt.Sprintf("v%d", v.Number) == snapshot {
				want = i
			}
		}
		if want < 0 {
			return nil, fmt.Errorf("group %d has no ready version %q: %w", g.ID, snapshot, ErrNotFound)
		}
		originSnap := fmt.Sprintf("group-%d", g.ID)
		p.Datasets = []ReplicationDataset{
			{Kind: ReplicateVolume, ObjectID: g.VolumeID, Dataset: fmt.Sprintf("iscsi/volumes/%d", g.VolumeID), Snapshot: originSnap},
			{Kind: kind, ObjectID: g.ID, Dataset: fmt.Sprintf("iscsi/groups/%d", g.ID), Snapshot: fmt.Sprintf("v%d", vers[want].Number),
				GUID: vers[want].GUID, Origin: fmt.Sprintf("iscsi/volumes/%d@%s", g.VolumeID, originSnap)},
		}
		for _, v := range vers[:want+1] {
			p.Versions = append(p.Versions, ReplicationVersion{ID: v.ID, Number: v.Number, GUID: v.GUID})
		}
	default:
		return nil, Invalid("kind", "must be %q or %q", ReplicateVolume, ReplicateGroup)
	}
	return p, nil
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
