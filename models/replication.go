package models

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
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
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&VersionCopy{VersionID: v.ID, ServerID: in.ServerID, GUID: in.GUID, ReceivedAt: at}).Error; err != nil {
			return err
		}
		return settlePending(tx, &v)
	})
}

// settlePending moves the assignment of the group waiting for version v (its pending
// version) once every server of the network holds v.
func settlePending(tx *gorm.DB, v *GroupVersion) error {
	var g Group
	if err := tx.Where("id = ? AND pending_version_id = ?", v.GroupID, v.ID).Limit(1).Find(&g).Error; err != nil || g.ID == 0 {
		return err
	}
	missing, err := serversLacking(tx, g.NetworkID, v.ID)
	if err != nil || len(missing) > 0 {
		return err
	}
	return tx.Model(&Group{}).Where("id = ? AND pending_version_id = ?", g.ID, v.ID).
		Updates(map[string]any{"assigned_version_id": v.ID, "pending_version_id": nil}).Error
}

// serversLacking lists the servers of a network that do not hold version versionID yet:
// every server but the master (which published it) without a verified copy.
func serversLacking(tx *gorm.DB, networkID, versionID uint) ([]uint, error) {
	var ids []uint
	err := tx.Model(&Server{}).Where("network_id = ?", networkID).
		Where("id NOT IN (?)", tx.Model(&Network{}).Select("COALESCE(master_server_id, 0)").Where("id = ?", networkID)).
		Where("id NOT IN (?)", tx.Model(&VersionCopy{}).Select("server_id").Where("version_id = ?", versionID)).
		Order("id").Pluck("id", &ids).Error
	return ids, err
}

// VolumeCopy records that a slave holds a volume's dataset up to a snapshot whose guid
// matched the master's (the transfer verifies it before recording).
type VolumeCopy struct {
	VolumeID   uint      `gorm:"primaryKey" json:"volume_id"`
	ServerID   uint      `gorm:"primaryKey;index" json:"server_id"`
	Snapshot   string    `gorm:"size:200;not null;default:''" json:"snapshot"`
	GUID       string    `gorm:"size:40;not null" json:"guid"`
	ReceivedAt time.Time `json:"received_at"`
}

// VolumeCopyInput is a slave's verified copy of a volume: the newest snapshot it holds
// and that snapshot's guid, equal to the master's.
type VolumeCopyInput struct {
	ServerID uint
	VolumeID uint
	Snapshot string
	GUID     string
	At       time.Time // zero: now
}

// RecordVolumeCopy records (or moves forward) a slave's verified copy of a volume. The
// caller compared the guid with the master's snapshot; the panel has no guid of its own
// for a volume's snapshots. Repeating it changes nothing.
func RecordVolumeCopy(ctx context.Context, db *gorm.DB, in VolumeCopyInput) error {
	if in.GUID == "" {
		return fmt.Errorf("volume %d on server %d: no guid: %w", in.VolumeID, in.ServerID, ErrGUIDMismatch)
	}
	at := in.At
	if at.IsZero() {
		at = time.Now()
	}
	return db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "volume_id"}, {Name: "server_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"snapshot", "guid", "received_at"}),
	}).Create(&VolumeCopy{VolumeID: in.VolumeID, ServerID: in.ServerID, Snapshot: in.Snapshot, GUID: in.GUID, ReceivedAt: at}).Error
}

// volumeCopyMigration adds the volume_copies table.
func volumeCopyMigration() *gormigrate.Migration {
	return createTableMigration("202611300203_volume_copies", &volumeCopyTable{})
}

// volumeCopyTable is the volume_copies table as migration 202611300203 makes it (frozen).
type volumeCopyTable struct {
	VolumeID   uint   `gorm:"primaryKey"`
	ServerID   uint   `gorm:"primaryKey;index:idx_volume_copies_server_id"`
	Snapshot   string `gorm:"size:200;not null;default:''"`
	GUID       string `gorm:"size:40;not null"`
	ReceivedAt time.Time
}

func (volumeCopyTable) TableName() string { return "volume_copies" }

// ReplicationRequest asks for datasets of a network's master to be brought to its slaves.
type ReplicationRequest struct {
	NetworkID uint   // with Kind "": the network (0: SlaveID's)
	Kind      string // "volume", "group", or "" for every ready volume and published group
	ObjectID  uint
	SlaveID   uint   // 0: every slave of the network
	Snapshot  string // the newest snapshot wanted ("v3"); "" the newest
}

// ReplicationJoinWindow is how long an unfinished replication operation stands for its
// (slave, dataset): within it a new request adds nothing; after it, a new operation is
// recorded (and joins the run if it is still going).
const ReplicationJoinWindow = time.Hour

// QueueReplication records a replicate-volume, replicate-group or replicate-vdisk
// operation for each (slave, dataset) asked for (a vdisk's "slaves" are the network's
// servers but the one it lives on) and hands it to the engine (the workflow id is per slave and
// dataset: a transfer under way is joined, never doubled). A pair whose operation is still
// queued or running (recorded within ReplicationJoinWindow) gets no second one. Slaves that never reported (no agent yet) are
// skipped: their bootstrap catches up. Safe to repeat.
func (s *Store) QueueReplication(ctx context.Context, in ReplicationRequest) ([]Operation, error) {
	var ops []*Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		nid := in.NetworkID
		var datasets []replicaDataset
		switch in.Kind {
		case ReplicateVolume, ReplicateGroup, ReplicateVDisk, ReplicateCTemplate:
			d, err := loadDataset(tx, in.Kind, in.ObjectID)
			if err != nil || d == nil {
				return err
			}
			nid, datasets = d.networkID, []replicaDataset{*d}
		case "":
			if nid == 0 && in.SlaveID != 0 {
				// A slave's catch-up: everything its network holds.
				if err := tx.Model(&Server{}).Where("id = ?", in.SlaveID).Pluck("network_id", &nid).Error; err != nil {
					return err
				}
			}
			var err error
			if datasets, err = networkDatasets(tx, nid); err != nil {
				return err
			}
			vds, err := vdiskBackups(tx, nid)
			if err != nil {
				return err
			}
			datasets = append(datasets, vds...)
			cts, err := ctemplateDatasets(tx, nid)
			if err != nil {
				return err
			}
			datasets = append(datasets, cts...)
		default:
			return Invalid("kind", "is %q: a replication is of a volume, a group, a vdisk or a ctemplate", in.Kind)
		}
		var n Network
		if err := tx.Take(&n, nid).Error; err != nil {
			return notFoundOr(err, "network")
		}
		if n.MasterServerID == nil {
			return nil
		}
		q := tx.Model(&Server{}).Where("network_id = ? AND stats_at IS NOT NULL", nid)
		if in.SlaveID != 0 {
			q = q.Where("id = ?", in.SlaveID)
		}
		var slaves []uint
		if err := q.Order("id").Pluck("id", &slaves).Error; err != nil {
			return err
		}
		for _, slave := range slaves {
			for _, d := range datasets {
				if slave == cmp.Or(d.source, *n.MasterServerID) {
					continue // the dataset's own server
				}
				kind := replicateOps[d.kind]
				var under int64
				// The recorded input starts with the server: {"server_id":<slave>,...}. An
				// older unfinished one may belong to a run that ended without a word (a
				// terminated workflow): a new operation then joins or restarts the run.
				if err := tx.Model(&Operation{}).Where("kind = ? AND object_id = ? AND state IN ? AND input LIKE ? AND created_at > ?", kind, d.id,
					[]string{OpQueued, OpRunning}, fmt.Sprintf(`{"server_id":%d,%%`, slave), time.Now().Add(-ReplicationJoinWindow)).Count(&under).Error; err != nil {
					return err
				}
				if under > 0 {
					continue
				}
				snap := in.Snapshot
				if in.Kind == "" {
					snap = ""
				}
				op, err := newOperation(tx, nid, kind, d.id, OperationInput{ServerID: slave, Snapshot: snap})
				if err != nil {
					return err
				}
				ops = append(ops, op)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Operation, 0, len(ops))
	for _, op := range ops {
		s.launch(ctx, op)
		out = append(out, *op)
	}
	return out, nil
}

// replicaDataset is a volume or a group of a network's master that slaves copy, or a
// vdisk that the other servers back up.
type replicaDataset struct {
	kind      string
	id        uint
	networkID uint
	label     string
	source    uint // the server it is copied from: 0 the master; a vdisk's own server
}

// replicateOps is the operation kind of replicating each kind of dataset.
var replicateOps = map[string]string{ReplicateVolume: OpReplicateVolume, ReplicateGroup: OpReplicateGroup, ReplicateVDisk: OpReplicateVDisk,
	ReplicateCTemplate: OpReplicateCTemplate}

// loadDataset is a ready volume, or a ready group with a published version; nil when it
// is not (yet, or any more) something to replicate.
func loadDataset(tx *gorm.DB, kind string, id uint) (*replicaDataset, error) {
	if kind == ReplicateCTemplate {
		return loadCTemplateDataset(tx, id)
	}
	if kind == ReplicateVDisk {
		var v VDisk
		if err := tx.Take(&v, id).Error; err != nil {
			return nil, notFoundOr(err, "vdisk")
		}
		if v.State != StateReady || v.ServerID == nil {
			return nil, nil
		}
		return &replicaDataset{ReplicateVDisk, v.ID, v.NetworkID, fmt.Sprintf("vdisk %d (%q)", v.ID, v.Name), *v.ServerID}, nil
	}
	if kind == "volume" {
		var v Volume
		if err := tx.Take(&v, id).Error; err != nil {
			return nil, notFoundOr(err, "volume")
		}
		if v.State != StateReady {
			return nil, nil
		}
		return &replicaDataset{"volume", v.ID, v.NetworkID, fmt.Sprintf("volume %d (%q)", v.ID, v.Alias), 0}, nil
	}
	var g Group
	if err := tx.Take(&g, id).Error; err != nil {
		return nil, notFoundOr(err, "group")
	}
	if g.State != StateReady {
		return nil, nil
	}
	return &replicaDataset{"group", g.ID, g.NetworkID, fmt.Sprintf("group %d (%q)", g.ID, g.Name), 0}, nil
}

// networkDatasets is everything a network's slaves hold: its ready volumes and its ready
// groups with a published version.
func networkDatasets(tx *gorm.DB, networkID uint) ([]replicaDataset, error) {
	var vols []Volume
	if err := tx.Where("network_id = ? AND state = ?", networkID, StateReady).Order("id").Find(&vols).Error; err != nil {
		return nil, err
	}
	var groups []Group
	if err := tx.Where("network_id = ? AND state = ? AND id IN (?)", networkID, StateReady,
		tx.Model(&GroupVersion{}).Select("group_id").Where("state = ?", StateReady)).Order("id").Find(&groups).Error; err != nil {
		return nil, err
	}
	out := make([]replicaDataset, 0, len(vols)+len(groups))
	for _, v := range vols {
		out = append(out, replicaDataset{"volume", v.ID, networkID, fmt.Sprintf("volume %d (%q)", v.ID, v.Alias), 0})
	}
	for _, g := range groups {
		out = append(out, replicaDataset{"group", g.ID, networkID, fmt.Sprintf("group %d (%q)", g.ID, g.Name), 0})
	}
	return out, nil
}

// vdiskBackups is a network's ready vdisks, each backed up from the server it lives on
// to the network's other servers (kept apart from networkDatasets: a promote does not
// wait for backups).
func vdiskBackups(tx *gorm.DB, networkID uint) ([]replicaDataset, error) {
	var vds []VDisk
	if err := tx.Where("network_id = ? AND state = ? AND server_id IS NOT NULL", networkID, StateReady).Order("id").Find(&vds).Error; err != nil {
		return nil, err
	}
	out := make([]replicaDataset, 0, len(vds))
	for _, v := range vds {
		out = append(out, replicaDataset{ReplicateVDisk, v.ID, networkID, fmt.Sprintf("vdisk %d (%q)", v.ID, v.Name), *v.ServerID})
	}
	return out, nil
}

// ReplicaTarget is one slave's copy of a dataset of the master (of a vdisk: one server's
// backup of it, from the server it lives on, named Master here): the pools the reconcile
// compares by guid.
type ReplicaTarget struct {
	NetworkID  uint
	Kind       string // "volume", "group", "vdisk" or "ctemplate"
	ObjectID   uint
	MasterID   uint
	MasterPool string
	SlaveID    uint
	SlavePool  string
}

// ReplicaTargets lists, for every network with a master, each (slave, dataset) pair its
// slaves should hold (slaves that have reported at least once).
func ReplicaTargets(ctx context.Context, db *gorm.DB) ([]ReplicaTarget, error) {
	db = db.WithContext(ctx)
	var nets []Network
	if err := db.Where("master_server_id IS NOT NULL").Order("id").Find(&nets).Error; err != nil {
		return nil, err
	}
	var out []ReplicaTarget
	for _, n := range nets {
		var servers []Server
		if err := db.Where("network_id = ? AND stats_at IS NOT NULL", n.ID).Order("id").Find(&servers).Error; err != nil {
			return nil, err
		}
		var master *Server
		for i := range servers {
			if servers[i].ID == *n.MasterServerID {
				master = &servers[i]
			}
		}
		if master == nil || len(servers) < 2 {
			continue
		}
		ds, err := networkDatasets(db, n.ID)
		if err != nil {
			return nil, err
		}
		vds, err := vdiskBackups(db, n.ID)
		if err != nil {
			return nil, err
		}
		cts, err := ctemplateDatasets(db, n.ID)
		if err != nil {
			return nil, err
		}
		vds = append(vds, cts...)
		byID := map[uint]*Server{}
		for i := range servers {
			byID[servers[i].ID] = &servers[i]
		}
		all := append(ds, vds...)
		for _, srv := range servers {
			for _, d := range all {
				src := master
				if d.source != 0 {
					src = byID[d.source]
				}
				if src == nil || srv.ID == src.ID {
					continue // its own server, or one that never reported
				}
				out = append(out, ReplicaTarget{NetworkID: n.ID, Kind: d.kind, ObjectID: d.id, MasterID: src.ID, MasterPool: src.Pool,
					SlaveID: srv.ID, SlavePool: srv.Pool})
			}
		}
	}
	return out, nil
}

// SlavesOf lists the slaves of the network holding a volume or group (kind, id), with
// their pools: where a delete on the master moves the copies to the erator too. Of a
// vdisk: every server of its network but the one it lives on (its backups); of a
// ctemplate, every server but its own.
func SlavesOf(ctx context.Context, db *gorm.DB, kind string, id uint) ([]Server, error) {
	db = db.WithContext(ctx)
	var nid uint
	var err error
	if kind == ReplicateVDisk {
		// A vdisk's copies are on every server but the one it lives on.
		var v VDisk
		if err := db.Take(&v, id).Error; err != nil {
			return nil, notFoundOr(err, "vdisk")
		}
		return otherServers(db, v.NetworkID, v.ServerID)
	}
	if kind == ReplicateCTemplate {
		return ctemplateCopyServers(db, id)
	}
	if kind == "volume" {
		err = db.Model(&Volume{}).Where("id = ?", id).Pluck("network_id", &nid).Error
	} else {
		err = db.Model(&Group{}).Where("id = ?", id).Pluck("network_id", &nid).Error
	}
	if err != nil || nid == 0 {
		return nil, err
	}
	var slaves []Server
	err = db.Where("network_id = ? AND id NOT IN (?)", nid, db.Model(&Network{}).Select("COALESCE(master_server_id, 0)").Where("id = ?", nid)).
		Order("id").Find(&slaves).Error
	return slaves, err
}

// lacking describes what server serverID of network nid does not hold yet of what the
// network uses: each ready volume without a verified copy on it, and each ready version
// of a live group without one.
func lacking(tx *gorm.DB, nid, serverID uint) ([]string, error) {
	var out []string
	var vols []Volume
	if err := tx.Where("network_id = ? AND state = ? AND id NOT IN (?)", nid, StateReady,
		tx.Model(&VolumeCopy{}).Select("volume_id").Where("server_id = ?", serverID)).Order("id").Find(&vols).Error; err != nil {
		return nil, err
	}
	for _, v := range vols {
		out = append(out, fmt.Sprintf("volume %d (%q)", v.ID, v.Alias))
	}
	var rows []struct {
		GroupID uint
		Name    string
		Number  int
	}
	if err := tx.Model(&GroupVersion{}).Select("group_versions.group_id, groups.name, group_versions.number").
		Joins("JOIN groups ON groups.id = group_versions.group_id").
		Where("groups.network_id = ? AND groups.state IN ? AND group_versions.state = ?", nid, []string{StateReady, StatePending}, StateReady).
		Where("group_versions.id NOT IN (?)", tx.Model(&VersionCopy{}).Select("version_id").Where("server_id = ?", serverID)).
		Order("group_versions.group_id, group_versions.number").Scan(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("group %d (%q) v%d", r.GroupID, r.Name, r.Number))
	}
	return out, nil
}

// refusePromote is the conflict of promoting a server that lacks some of the network's data.
func refusePromote(srv *Server, missing []string) error {
	const most = 10
	list := missing
	more := ""
	if len(list) > most {
		list, more = list[:most], fmt.Sprintf(" and %d more", len(missing)-most)
	}
	return Conflict("", "server %q cannot become the master: it does not hold a verified copy of %s%s; wait until replication has brought them (see each group's compliance view)",
		srv.Name, strings.Join(list, ", "), more)
}

// PromoteServer queues making a slave its network's master (the master becomes a slave).
// It refuses (409, naming them) while the server lacks a verified copy of any volume or
// version the network uses. Promoting the master is a conflict; a promote under way is
// returned as it is.
func (s *Store) PromoteServer(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var srv *Server
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if srv, err = getScoped[Server](ctx, tx, a.scopeNetworkOwned, id, "server"); err != nil {
			return err
		}
		n, err := a.lockNetwork(tx, srv.NetworkID, "")
		if err != nil {
			return err
		}
		var under Operation
		if err := tx.Where("kind = ? AND object_id = ? AND state IN ?", OpServerPromote, srv.ID, []string{OpQueued, OpRunning}).
			Order("id DESC").Limit(1).Find(&under).Error; err != nil {
			return err
		}
		if under.ID != 0 {
			op = &under
			return nil
		}
		if n.MasterServerID != nil && *n.MasterServerID == srv.ID {
			return Conflict("", "server %q is already the master of its network", srv.Name)
		}
		missing, err := lacking(tx, n.ID, srv.ID)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return refusePromote(srv, missing)
		}
		if op, err = newOperation(tx, n.ID, OpServerPromote, srv.ID, OperationInput{}); err != nil {
			return err
		}
		return audit(tx, a, &n.ID, "promote", "server", srv.ID, srv.Name)
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: srv, Operation: op}, nil
}

// SwitchMaster makes server serverID its network's master and the master a slave, in one
// transaction and without touching a dataset: the old master is recorded as holding
// every version and volume it held as master. It re-checks what PromoteServer checked (a
// delete or publish may have come between) and returns the ConflictError naming what is
// missing. Repeating it once done changes nothing.
func SwitchMaster(ctx context.Context, db *gorm.DB, serverID uint) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var srv Server
		if err := tx.Take(&srv, serverID).Error; err != nil {
			return notFoundOr(err, "server")
		}
		var n Network
		if err := forUpdate(tx.Model(&Network{})).Where("id = ?", srv.NetworkID).Take(&n).Error; err != nil {
			return notFoundOr(err, "network")
		}
		if n.MasterServerID != nil && *n.MasterServerID == srv.ID {
			return nil
		}
		missing, err := lacking(tx, n.ID, srv.ID)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return refusePromote(&srv, missing)
		}
		now := time.Now()
		if old := n.MasterServerID; old != nil {
			// The old master holds what it published and created.
			var vs []GroupVersion
			if err := tx.Where("state = ? AND group_id IN (?)", StateReady, tx.Model(&Group{}).Select("id").Where("network_id = ?", n.ID)).
				Find(&vs).Error; err != nil {
				return err
			}
			for _, v := range vs {
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
					Create(&VersionCopy{VersionID: v.ID, ServerID: *old, GUID: v.GUID, ReceivedAt: v.CreatedAt}).Error; err != nil {
					return err
				}
			}
			var vcs []VolumeCopy
			if err := tx.Where("server_id = ?", srv.ID).Find(&vcs).Error; err != nil {
				return err
			}
			for _, c := range vcs {
				c.ServerID, c.ReceivedAt = *old, now
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&c).Error; err != nil {
					return err
				}
			}
			if err := tx.Model(&Server{}).Where("id = ?", *old).Update("role", ServerSlave).Error; err != nil {
				return err
			}
		}
		if err := tx.Model(&Server{}).Where("id = ?", srv.ID).Update("role", ServerMaster).Error; err != nil {
			return err
		}
		if err := tx.Model(&Network{}).Where("id = ?", n.ID).Update("master_server_id", srv.ID).Error; err != nil {
			return err
		}
		return audit(tx, nil, &n.ID, "switch-master", "server", srv.ID, srv.Name)
	})
}

// replicationMigration adds where each agent serves replication.
func replicationMigration() *gormigrate.Migration {
	return addColumnsMigration("202611300101_replication_addr", &replicationMigrationServer{}, "ReplicationAddr")
}

// replicationMigrationServer is the servers table's new columns as migration 202611300101
// makes them (frozen: Server may change later, this migration must not).
type replicationMigrationServer struct {
	ReplicationAddr string `gorm:"size:200;not null;default:''"`
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

// replicationEndpoint is the host:port other agents pull the server's datasets from: the
// one its agent advertised, else its Replication IP on the default port.
func (s *Server) replicationEndpoint() string {
	if s.ReplicationAddr != "" {
		return s.ReplicationAddr
	}
	return net.JoinHostPort(s.ReplicationAddress(), defaultReplicationPort)
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

// Replicated dataset kinds (workflows.ReplicateVolume, ReplicateGroup, ReplicateVDisk).
const (
	ReplicateVolume = "volume"
	ReplicateGroup  = "group"
	// ReplicateVDisk: a vdisk's backup, from the server it lives on (master or not).
	ReplicateVDisk = "vdisk"
	// ReplicateCTemplate: a ctemplate's versions, from its server (the master it was
	// made on) to the network's other servers, where containers clone them.
	ReplicateCTemplate = "ctemplate"
)

// defaultReplicationPort is wire.DefaultReplicationPort (models does not import the wire).
const defaultReplicationPort = "8082"

// PlanReplication reads the network's master, the slave and the dataset chain for
// bringing object (kind, id) up to snapshot ("" the newest) to slave. ErrNotFound when
// one of them is gone; a validation error when the slave is the master.
func PlanReplication(ctx context.Context, db *gorm.DB, networkID, slaveID uint, kind string, objectID uint, snapshot string) (*ReplicationPlan, error) {
	db = db.WithContext(ctx)
	var master, slave Server
	src := db.Where("network_id = ? AND role = ?", networkID, ServerMaster)
	var vd VDisk
	var ct CTemplate
	if kind == ReplicateCTemplate {
		// A ctemplate is copied from the server it was made on, which plays the master here.
		if err := db.Where("network_id = ? AND state = ? AND version > 0 AND server_id IS NOT NULL", networkID, StateReady).Take(&ct, objectID).Error; err != nil {
			return nil, fmt.Errorf("ctemplate %d: %w", objectID, notFound(err))
		}
		src = db.Where("network_id = ? AND id = ?", networkID, *ct.ServerID)
	}
	if kind == ReplicateVDisk {
		// A vdisk is backed up from the server it lives on, which plays the master here.
		if err := db.Where("network_id = ? AND state = ? AND server_id IS NOT NULL", networkID, StateReady).Take(&vd, objectID).Error; err != nil {
			return nil, fmt.Errorf("vdisk %d: %w", objectID, notFound(err))
		}
		src = db.Where("network_id = ? AND id = ?", networkID, *vd.ServerID)
	}
	if err := src.Take(&master).Error; err != nil {
		return nil, fmt.Errorf("network %d has no master: %w", networkID, notFound(err))
	}
	if err := db.Where("network_id = ? AND id = ?", networkID, slaveID).Take(&slave).Error; err != nil {
		return nil, fmt.Errorf("server %d of network %d: %w", slaveID, networkID, notFound(err))
	}
	if slave.ID == master.ID {
		return nil, Invalid("slave_id", "server %d is the network's master (of a vdisk: the server it lives on)", slaveID)
	}
	p := &ReplicationPlan{MasterID: master.ID, MasterAddr: master.replicationEndpoint(), MasterPool: master.Pool, SlavePool: slave.Pool,
		BytesPerSecond: slave.BandwidthLimit}
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
	case ReplicateVDisk:
		p.Datasets = []ReplicationDataset{{Kind: kind, ObjectID: vd.ID, Dataset: fmt.Sprintf("vdisks/%d", vd.ID), Snapshot: snapshot}}
	case ReplicateCTemplate:
		p.Datasets = []ReplicationDataset{ctemplateReplica(&ct, snapshot)}
	default:
		return nil, Invalid("kind", "must be %q, %q, %q or %q", ReplicateVolume, ReplicateGroup, ReplicateVDisk, ReplicateCTemplate)
	}
	return p, nil
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// SnapshotGUID is a snapshot (the part after "@") and its guid.
type SnapshotGUID struct {
	Name string
	GUID string
}

// RecordVerified records what a comparison by guid found a slave to hold (the
// reconcile): snapshots present on both the master and the slave with the same guid.
// For a group, each such "v<N>" is a verified copy of version N (RecordVersionCopy checks
// the guid against the version's); for a volume, the newest such snapshot is its copy.
// Safe to repeat.
func RecordVerified(ctx context.Context, db *gorm.DB, serverID uint, kind string, objectID uint, both []SnapshotGUID) error {
	if kind == ReplicateVDisk {
		return nil // a backup is no copy a promote or a version waits for
	}
	if kind == ReplicateCTemplate {
		return recordCTemplateCopies(ctx, db, serverID, objectID, both)
	}
	if kind == ReplicateVolume {
		if len(both) == 0 {
			return nil
		}
		last := both[len(both)-1]
		return RecordVolumeCopy(ctx, db, VolumeCopyInput{ServerID: serverID, VolumeID: objectID, Snapshot: last.Name, GUID: last.GUID})
	}
	for _, sn := range both {
		n, err := strconv.Atoi(strings.TrimPrefix(sn.Name, "v"))
		if err != nil || !strings.HasPrefix(sn.Name, "v") {
			continue // not a version (a hold's or a device's snapshot)
		}
		var v GroupVersion
		if err := db.WithContext(ctx).Where("group_id = ? AND number = ? AND state = ?", objectID, n, StateReady).Limit(1).Find(&v).Error; err != nil {
			return err
		}
		if v.ID == 0 {
			continue
		}
		err = RecordVersionCopy(ctx, db, VersionCopyInput{ServerID: serverID, VersionID: v.ID, GUID: sn.GUID})
		if err != nil && !errors.Is(err, ErrGUIDMismatch) {
			return err
		}
	}
	return nil
}

// transferProgressMigration adds a transfer's bytes, estimate and rate to operations.
func transferProgressMigration() *gormigrate.Migration {
	return addColumnsMigration("202611300301_operation_transfer", &operationTransfer{}, "Bytes", "BytesTotal", "Rate")
}

// operationTransfer is the operations table's new columns as migration 202611300301 makes
// them (frozen).
type operationTransfer struct {
	Bytes      int64 `gorm:"not null;default:0"`
	BytesTotal int64 `gorm:"not null;default:0"`
	Rate       int64 `gorm:"not null;default:0"`
}

func (operationTransfer) TableName() string { return "operations" }

// TransferProgress is a running transfer's progress on its operation (the replication's
// watcher reads it from the transfer's heartbeats).
type TransferProgress struct {
	WorkflowProgress
	Bytes      int64 // received so far
	BytesTotal int64 // the estimate of everything
	Rate       int64 // bytes per second, lately
}

// RecordTransferProgress writes a transfer's bytes, percent and rate on its running
// operation. It never moves the percent back: a watcher's late write (the workflow went
// on to its next step, at a higher percent) leaves the row as it is. Safe to repeat.
func RecordTransferProgress(ctx context.Context, db *gorm.DB, p TransferProgress) error {
	pct := min(max(p.Percent, 0), 99)
	return opRows(db.WithContext(ctx), p.OperationID, p.WorkflowID, p.RunID).Where("percent <= ?", pct).Updates(map[string]any{
		"state": OpRunning, "step": trunc(p.Step, 200), "percent": pct, "message": trunc(p.Message, 1000),
		"bytes": p.Bytes, "bytes_total": p.BytesTotal, "rate": p.Rate,
	}).Error
}

// PeersOf lists the other servers of server serverID's network, with their pools (after a
// promote: the slaves, the old master among them).
func PeersOf(ctx context.Context, db *gorm.DB, serverID uint) ([]Server, error) {
	db = db.WithContext(ctx)
	var peers []Server
	err := db.Where("id <> ? AND network_id IN (?)", serverID, db.Model(&Server{}).Select("network_id").Where("id = ?", serverID)).
		Order("id").Find(&peers).Error
	return peers, err
}
