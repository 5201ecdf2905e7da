package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"gorm.io/gorm"
)

// Operation kinds of the storage workflows beyond the ones the store records on create,
// update and delete.
const (
	OpServerBootstrap = "server-bootstrap"
	OpEratorPurge     = "erator-purge"
	OpVolumeRestore   = "volume-restore"
	OpGroupRestore    = "group-restore"
)

// StatusPanelOK is the server status the guide asks to check after install.
const StatusPanelOK = "Panel to server OK"

// PoolMissing is the pool health recorded when the agent finds no pool of the server's name.
const PoolMissing = wire.PoolMissing

// ---- progress, written by the panel worker's activities ----

// WorkflowProgress is a step of a running operation, as its workflow reports it. Rows are matched by OperationID and also by
// (WorkflowID, RunID), so a repeated request that joined the same workflow shows the
// same progress.
type WorkflowProgress struct {
	OperationID uint
	WorkflowID  string
	RunID       string
	Step        string
	Percent     int
	Message     string
}

func opRows(tx *gorm.DB, id uint, wid, rid string) *gorm.DB {
	q := tx.Model(&Operation{}).Where("state NOT IN ?", []string{OpSucceeded, OpFailed})
	if wid != "" && rid != "" {
		return q.Where("id = ? OR (workflow_id = ? AND run_id = ?)", id, wid, rid)
	}
	return q.Where("id = ?", id)
}

// RecordProgress (the workflow engine's ReportProgress) marks an operation running at a step. A finished operation is left as it
// is, so a late or repeated progress write never undoes a result.
func RecordProgress(ctx context.Context, db *gorm.DB, p WorkflowProgress) error {
	pct := min(max(p.Percent, 0), 99)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if p.WorkflowID != "" {
			// The workflow can report before the engine has written its ids on the row.
			if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", p.OperationID).
				Updates(map[string]any{"workflow_id": p.WorkflowID, "run_id": p.RunID}).Error; err != nil {
				return err
			}
		}
		return opRows(tx, p.OperationID, p.WorkflowID, p.RunID).Updates(map[string]any{
			"state": OpRunning, "step": trunc(p.Step, 200), "percent": pct, "message": trunc(p.Message, 1000),
		}).Error
	})
}

// Outcome ends an operation and applies its result to the object, in one transaction.
type Outcome struct {
	WorkflowProgress
	Failed bool
	Error  string // why it failed, for people
	// Results of particular kinds.
	VolumeSizeGiB int64  // volume-resize: the size now
	VersionID     uint   // group-publish: the version row
	GUID          string // group-publish: the snapshot's guid
	Stats         *StatsReport
}

// FinishOperation records an operation's end and its effect on the object: a volume or
// group becomes ready, failed or deleted, a version records its guid, a server its stats.
// Repeating it with the same outcome changes nothing.
func FinishOperation(ctx context.Context, db *gorm.DB, o Outcome) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var op Operation
		if err := tx.Take(&op, o.OperationID).Error; err != nil {
			return fmt.Errorf("operation %d: %w", o.OperationID, err)
		}
		if err := applyOutcome(tx, &op, &o); err != nil {
			return err
		}
		now := time.Now()
		upd := map[string]any{"finished_at": now, "message": trunc(o.Message, 1000)}
		if o.Failed {
			upd["state"], upd["step"], upd["error"] = OpFailed, trunc(o.Step, 200), trunc(o.Error, 1000)
		} else {
			upd["state"], upd["step"], upd["percent"], upd["error"] = OpSucceeded, "done", 100, ""
		}
		if o.WorkflowID != "" {
			if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", op.ID).
				Updates(map[string]any{"workflow_id": o.WorkflowID, "run_id": o.RunID}).Error; err != nil {
				return err
			}
		}
		return opRows(tx, op.ID, o.WorkflowID, o.RunID).Updates(upd).Error
	})
}

func applyOutcome(tx *gorm.DB, op *Operation, o *Outcome) error {
	setState := func(model any, state string) error {
		return tx.Model(model).Where("id = ?", op.ObjectID).Update("state", state).Error
	}
	// A create or restore only settles a pending object: a delete that started meanwhile
	// (and cancelled it) has the last word.
	settle := func(model any, state string) error {
		return tx.Model(model).Where("id = ? AND state = ?", op.ObjectID, StatePending).Update("state", state).Error
	}
	ok := !o.Failed
	switch op.Kind {
	case OpVolumeCreate:
		return settle(&Volume{}, pick(ok, StateReady, StateFailed))
	case OpVolumeRestore:
		// A failed restore leaves the volume where it was: in the erator.
		return settle(&Volume{}, pick(ok, StateReady, StateDeleted))
	case OpVolumeResize:
		if ok && o.VolumeSizeGiB > 0 {
			return tx.Model(&Volume{}).Where("id = ?", op.ObjectID).Update("size_gib", o.VolumeSizeGiB).Error
		}
	case OpVolumeDelete:
		return setState(&Volume{}, pick(ok, StateDeleted, StateFailed))
	case OpGroupCreate:
		return settle(&Group{}, pick(ok, StateReady, StateFailed))
	case OpGroupRestore:
		return settle(&Group{}, pick(ok, StateReady, StateDeleted))
	case OpGroupDelete:
		return setState(&Group{}, pick(ok, StateDeleted, StateFailed))
	case OpGroupPublish:
		if o.VersionID == 0 {
			return nil
		}
		upd := map[string]any{"state": pick(ok, StateReady, StateFailed)}
		if ok {
			upd["guid"] = o.GUID
		}
		return tx.Model(&GroupVersion{}).Where("id = ? AND group_id = ?", o.VersionID, op.ObjectID).Updates(upd).Error
	case OpServerBootstrap:
		if o.Stats != nil {
			return recordStats(tx, op.ObjectID, o.Stats)
		}
	}
	return nil
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// ---- server stats, from the agent's heartbeat and the bootstrap workflow ----

// StatsReport is what an agent reports about its pool (a wire message).
type StatsReport = wire.StatsReport

// RecordServerStats stores a server's latest stats and marks it reachable
// ("Panel to server OK").
func RecordServerStats(ctx context.Context, db *gorm.DB, serverID uint, r *StatsReport) error {
	return recordStats(db.WithContext(ctx), serverID, r)
}

func recordStats(tx *gorm.DB, serverID uint, r *StatsReport) error {
	detail := r.Detail
	if len(detail) == 0 || !json.Valid(detail) {
		detail = json.RawMessage("{}")
	}
	status := StatusPanelOK
	switch r.PoolHealth {
	case "ONLINE":
	case PoolMissing:
		status += "; pool missing"
	default:
		status += "; pool " + strings.ToLower(r.PoolHealth)
	}
	now := time.Now()
	res := tx.Model(&Server{}).Where("id = ?", serverID).Updates(map[string]any{
		"status": status, "pool_health": trunc(r.PoolHealth, 40), "pool_size": r.PoolSize, "pool_free": r.PoolFree,
		"stats": string(detail), "stats_at": now,
	})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return NotFound("server")
	}
	return nil
}

// volumeRoom checks a volume size against the master's last reported pool: a size the
// pool can never hold is refused (422); one that overcommits thin provisioning is
// accepted with a warning. Before the agent has reported, the workflow checks on the
// server itself (and fails the operation with the same words).
func volumeRoom(tx *gorm.DB, n *Network, sizeGiB, previousGiB int64) (string, error) {
	if n.MasterServerID == nil {
		return "", nil
	}
	var m Server
	if err := tx.Take(&m, *n.MasterServerID).Error; err != nil || m.StatsAt == nil || m.PoolSize <= 0 {
		return "", nil
	}
	const gib = 1 << 30
	size := sizeGiB * gib
	if size > m.PoolSize {
		return "", Invalid("vol_size", "%d GiB is more than the master's pool %s can ever hold (%.1f GiB usable)",
			sizeGiB, m.Pool, float64(m.PoolSize)/gib)
	}
	var st struct {
		Provisioned int64 `json:"provisioned"`
	}
	_ = json.Unmarshal([]byte(m.Stats), &st)
	if p := st.Provisioned - previousGiB*gib + size; p > m.PoolSize {
		return fmt.Sprintf("thin provisioning overcommits pool %s: its volumes may grow to %.1f GiB, it holds %.1f GiB",
			m.Pool, float64(p)/gib, float64(m.PoolSize)/gib), nil
	}
	return "", nil
}

// ---- agents ----

// ErrBadServerKey is a server key that names no server.
var ErrBadServerKey = errors.New("unknown server key")

// ServerByKey finds the server a key was issued for (install.sh -k); ErrBadServerKey when none.
func ServerByKey(ctx context.Context, db *gorm.DB, key string) (*Server, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, ErrBadServerKey
	}
	var srv Server
	err := db.WithContext(ctx).Where("key_hash = ?", HashSecret(key)).Take(&srv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrBadServerKey
	}
	if err != nil {
		return nil, fmt.Errorf("server lookup: %w", err)
	}
	return &srv, nil
}

// RegisterAgent records an agent's start for its server (its address, when it gave one)
// and queues the server's bootstrap operation.
func (s *Store) RegisterAgent(ctx context.Context, srv *Server, agentAddr string) (*Operation, error) {
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&Server{}).Where("id = ?", srv.ID).Updates(map[string]any{
			"agent_addr": trunc(agentAddr, 200), "status": "Agent connected; bootstrapping",
		}).Error; err != nil {
			return err
		}
		var err error
		op, err = newOperation(tx, srv.NetworkID, OpServerBootstrap, "server", srv.ID, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return op, nil
}

// ---- group versions ----

// PublishInput is the body of a group publish. Version, when given, makes the request
// safe to repeat: publishing a version that exists returns its operation.
type PublishInput struct {
	Note    *string `field:"note"`
	Version *int    `field:"version,number"`
}

// PublishVersion is the input an engine reads from a publish operation.
type PublishVersion struct {
	VersionID uint `json:"version_id"`
	Number    int  `json:"number"`
}

// PublishGroup records the group's next version (pending) and queues its snapshot
// <pool>/iscsi/groups/<id>@v<N>.
func (s *Store) PublishGroup(ctx context.Context, a *Actor, groupID uint, in *PublishInput) (*Created, error) {
	var ver *GroupVersion
	var op *Operation
	note := ""
	if in.Note != nil {
		var err error
		if note, err = checkName("note", *in.Note, 500); err != nil {
			return nil, err
		}
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		g, err := getScoped[Group](ctx, tx, a.scopeNetworkOwned, groupID, "group")
		if err != nil {
			return err
		}
		n, err := a.lockNetwork(tx, g.NetworkID, "network_id")
		if err != nil {
			return err
		}
		if g.State != StateReady {
			return Conflict("", "group %d is %s: it can be published once it is ready", g.ID, g.State)
		}
		var last GroupVersion
		next := 1
		if err := tx.Where("group_id = ?", g.ID).Order("number DESC").Limit(1).Find(&last).Error; err != nil {
			return err
		}
		if last.ID != 0 {
			next = last.Number + 1
		}
		if in.Version != nil && *in.Version != next {
			var existing GroupVersion
			if *in.Version < next && tx.Where("group_id = ? AND number = ?", g.ID, *in.Version).Take(&existing).Error == nil {
				ver = &existing
				return tx.Where("object_type = ? AND object_id = ? AND kind = ? AND input LIKE ?", "group", g.ID, OpGroupPublish,
					fmt.Sprintf(`{"version_id":%d,%%`, existing.ID)).Order("id DESC").Take(&op).Error
			}
			return Conflict("version", "the next version of group %d is v%d, not v%d", g.ID, next, *in.Version)
		}
		if err := preflight(tx, n); err != nil {
			return err
		}
		ver = &GroupVersion{GroupID: g.ID, Number: next, State: StatePending, Note: note}
		if err := tx.Create(ver).Error; err != nil {
			return err
		}
		if op, err = newOperation(tx, g.NetworkID, OpGroupPublish, "group", g.ID, PublishVersion{VersionID: ver.ID, Number: next}); err != nil {
			return err
		}
		return audit(tx, a, &g.NetworkID, "publish", "group", g.ID, fmt.Sprintf("v%d", next))
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: ver, Operation: op}, nil
}

// ---- erator ----

// EratorItem is one entry of a server's erator, as its agent last reported it.
type EratorItem struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	ID     uint   `json:"id"`
	Unix   int64  `json:"unix"`
	Used   uint64 `json:"used"`
	Origin string `json:"origin,omitempty"`
}

// Erator lists a visible server's erator from its last stats.
func (s *Store) Erator(ctx context.Context, a *Actor, serverKey string) ([]EratorItem, error) {
	srv, err := s.FindServer(ctx, a, serverKey)
	if err != nil {
		return nil, err
	}
	var st struct {
		Erator []EratorItem `json:"erator"`
	}
	if srv.Stats != "" {
		_ = json.Unmarshal([]byte(srv.Stats), &st)
	}
	if st.Erator == nil {
		st.Erator = []EratorItem{}
	}
	return st.Erator, nil
}

// PurgeInput is the body of an erator purge: entries deleted longer ago than OlderThan
// (seconds, or a Go duration such as "24h"; 0 purges everything) are destroyed.
type PurgeInput struct {
	OlderThan *string `field:"older_than,age"`
}

// PurgeRequest is the input an engine reads from a purge operation.
type PurgeRequest struct {
	Before int64 `json:"before"` // unix seconds
}

// PurgeErator queues the purge of a server's erator. Only a client's admins may purge.
func (s *Store) PurgeErator(ctx context.Context, a *Actor, serverKey string, in *PurgeInput) (*Created, error) {
	age := time.Duration(0)
	if in.OlderThan != nil && strings.TrimSpace(*in.OlderThan) != "" {
		v := strings.TrimSpace(*in.OlderThan)
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseInt(v, 10, 64)
			if serr != nil || secs > int64(100*365*24*time.Hour/time.Second) {
				return nil, Invalid("older_than", "must be seconds or a duration such as 24h, got %q", v)
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 {
			return nil, Invalid("older_than", "must not be negative")
		}
		age = d
	}
	srv, err := s.FindServer(ctx, a, serverKey)
	if err != nil {
		return nil, err
	}
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, srv.NetworkID, "")
		if err != nil {
			return err
		}
		if !a.CanAdminClient(n.ClientID) {
			return Forbidden("only the client's admins may purge the erator")
		}
		op, err = newOperation(tx, srv.NetworkID, OpEratorPurge, "server", srv.ID, PurgeRequest{Before: time.Now().Add(-age).Unix()})
		if err != nil {
			return err
		}
		return audit(tx, a, &srv.NetworkID, "purge", "server", srv.ID, age.String())
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: srv, Operation: op}, nil
}

// RestoreVolume queues putting a deleted volume back from the erator.
func (s *Store) RestoreVolume(ctx context.Context, a *Actor, id uint) (*Created, error) {
	return restore[Volume](ctx, s, a, id, "volume", OpVolumeRestore)
}

// RestoreGroup queues putting a deleted group back from the erator.
func (s *Store) RestoreGroup(ctx context.Context, a *Actor, id uint) (*Created, error) {
	return restore[Group](ctx, s, a, id, "group", OpGroupRestore)
}

func restore[T any](ctx context.Context, s *Store, a *Actor, id uint, what, kind string) (*Created, error) {
	var obj *T
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if obj, err = getScoped[T](ctx, tx, a.scopeNetworkOwned, id, what); err != nil {
			return err
		}
		var row struct {
			NetworkID uint
			State     string
		}
		if err := tx.Model(new(T)).Select("network_id, state").Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		n, err := a.lockNetwork(tx, row.NetworkID, "")
		if err != nil {
			return err
		}
		if err := preflight(tx, n); err != nil {
			return err
		}
		// Only a deleted object can come back, and only once: two restores racing find
		// one of them updating no row.
		res := tx.Model(new(T)).Where("id = ? AND state = ?", id, StateDeleted).Update("state", StatePending)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return Conflict("", "%s %d is %s, not deleted: there is nothing to restore", what, id, row.State)
		}
		if op, err = newOperation(tx, row.NetworkID, kind, what, id, nil); err != nil {
			return err
		}
		return audit(tx, a, &row.NetworkID, "restore", what, id, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	if fresh, err := getScoped[T](ctx, s.DB, a.scopeNetworkOwned, id, what); err == nil {
		obj = fresh
	}
	return &Created{Object: obj, Operation: op}, nil
}

// SettleRepeat ends a repeated operation whose workflow already ran (failed when errText
// is set), without applying the outcome to the object a second time.
func SettleRepeat(ctx context.Context, db *gorm.DB, opID uint, message, errText string) error {
	upd := map[string]any{"message": trunc(message, 1000), "state": OpSucceeded, "step": "done", "percent": 100, "finished_at": time.Now()}
	if errText != "" {
		upd["state"], upd["error"], upd["percent"] = OpFailed, trunc(errText, 1000), 0
	}
	return opRows(db.WithContext(ctx), opID, "", "").Updates(upd).Error
}

// QueuedOperations lists operations no engine has taken yet (oldest first), for a panel
// to start at boot.
func QueuedOperations(ctx context.Context, db *gorm.DB, limit int) ([]Operation, error) {
	var ops []Operation
	err := db.WithContext(ctx).Where("state = ? AND workflow_id = ''", OpQueued).Order("id").Limit(limit).Find(&ops).Error
	return ops, err
}

// AttachUpdate records the entity workflow run that carries an operation as one of its
// updates (a device's restore runs in device-<id>). Unlike AttachWorkflow it never takes
// over another operation's end: one run carries many operations, each ending on its own.
// The update may have reported first (naming the workflow, not the run); the run is then
// added. Safe to repeat.
func AttachUpdate(ctx context.Context, db *gorm.DB, opID uint, workflowID, runID string) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", opID).
			Updates(map[string]any{"workflow_id": workflowID, "run_id": runID, "message": ""})
		if res.Error != nil || res.RowsAffected > 0 {
			return res.Error
		}
		return tx.Model(&Operation{}).Where("id = ? AND workflow_id = ? AND run_id = ''", opID, workflowID).
			Update("run_id", runID).Error
	})
}

// AttachWorkflow records which workflow run carries an operation. An operation that
// joined a run which has already reported its end (a repeat arriving in the last moment
// of the run) takes that end over, since the run will not report again.
func AttachWorkflow(ctx context.Context, db *gorm.DB, opID uint, workflowID, runID string) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Operation{}).Where("id = ? AND workflow_id = ''", opID).
			Updates(map[string]any{"workflow_id": workflowID, "run_id": runID, "message": ""}).Error; err != nil {
			return err
		}
		var done Operation
		err := tx.Where("workflow_id = ? AND run_id = ? AND id <> ? AND state IN ?", workflowID, runID, opID,
			[]string{OpSucceeded, OpFailed}).Order("id").Limit(1).Find(&done).Error
		if err != nil || done.ID == 0 {
			return err
		}
		return opRows(tx, opID, "", "").Updates(map[string]any{"state": done.State, "step": done.Step, "percent": done.Percent,
			"message": done.Message, "error": done.Error, "finished_at": done.FinishedAt}).Error
	})
}
