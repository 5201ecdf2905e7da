package models

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CTemplate is a container root file system template under iscsi/ctemplates, on the
// network's master; each uploaded root file system is a version (snapshot @v<N>).
type CTemplate struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Name      string `gorm:"size:200;not null" json:"name"`
	// ServerID is where its dataset <pool>/iscsi/ctemplates/<id> lives: the network's
	// master when it was made.
	ServerID *uint `json:"server_id"`
	// Version is the newest version (0: nothing uploaded yet); SHA256 that version's tarball's.
	Version int    `gorm:"not null;default:0" json:"version"`
	SHA256  string `gorm:"column:sha256;size:64;not null;default:''" json:"sha256"`
	// Debootstrap is the suite its versions are built from on its server (debootstrap
	// from the server's own apt sources); "": they are uploaded.
	Debootstrap string    `gorm:"size:40;not null;default:''" json:"debootstrap"`
	State       string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Container is a clone of a ctemplate version run on a storage server as a
// systemd-nspawn machine, with its limits.
type Container struct {
	ID               uint   `gorm:"primaryKey" json:"id"`
	NetworkID        uint   `gorm:"not null;index" json:"network_id"`
	Name             string `gorm:"size:200;not null" json:"name"`
	CTemplateID      uint   `gorm:"column:ctemplate_id;not null" json:"ctemplate_id"`
	CTemplateVersion int    `gorm:"column:ctemplate_version;not null;default:0" json:"ctemplate_version"`
	ServerID         *uint  `json:"server_id"`
	MemoryMB         int    `gorm:"column:memory_mb;not null;default:0" json:"memory_mb"`
	CPUQuotaPercent  int    `gorm:"column:cpu_quota_percent;not null;default:0" json:"cpu_quota_percent"`
	TasksMax         int    `gorm:"column:tasks_max;not null;default:0" json:"tasks_max"`
	DiskQuotaGiB     int    `gorm:"column:disk_quota_gib;not null;default:0" json:"disk_quota_gib"`
	Autostart        bool   `gorm:"not null;default:false" json:"autostart"`
	// Command runs as the container's init through /bin/sh -c; "" boots its own init (-b).
	Command string `gorm:"size:1000;not null;default:''" json:"command"`
	// Stopped: the last action asked for was stop or kill, so its machine not running is
	// no failure (the health check's container_failed alert).
	Stopped   bool      `gorm:"not null;default:false" json:"stopped"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Container limits; 0 means none (the server's).
const (
	MaxContainerMemoryMB = 1 << 20 // 1 TiB
	MaxContainerTasks    = 1 << 22
	MaxContainerCPU      = 100 * 1024 // percent of one CPU: 1024 CPUs
	// MaxCTemplateBytes bounds an uploaded root file system tarball.
	MaxCTemplateBytes int64 = 8 << 30
)

// ContainerActions are what POST containers/<id>/<action>.json does to a running machine.
var ContainerActions = []string{"start", "stop", "restart", "kill"}

// CTemplateInput is the body of a ctemplate create or update.
type CTemplateInput struct {
	NetworkID *uint   `field:"network_id,network"`
	Name      *string `field:"name"`
	// Debootstrap (create only) builds version 1 on the server from this suite instead
	// of waiting for an upload.
	Debootstrap *string `field:"debootstrap,suite"`
}

// ContainerInput is the body of a container create or update.
type ContainerInput struct {
	NetworkID        *uint   `field:"network_id,network"`
	Name             *string `field:"name"`
	CTemplateID      *uint   `field:"ctemplate_id,ctemplate"`
	CTemplateVersion *int    `field:"ctemplate_version,version"`
	ServerID         *uint   `field:"server_id,server"`
	MemoryMB         *int    `field:"memory_mb"`
	CPUQuotaPercent  *int    `field:"cpu_quota_percent"`
	TasksMax         *int    `field:"tasks_max"`
	DiskQuotaGiB     *int    `field:"disk_quota_gib"`
	Autostart        *bool   `field:"autostart"`
	Command          *string `field:"command"`
}

// CreateCTemplate records a ctemplate on the network's master; its first version comes
// with the first root file system upload (UploadCTemplate).
func (s *Store) CreateCTemplate(ctx context.Context, a *Actor, in *CTemplateInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	t := &CTemplate{NetworkID: nid, State: StatePending}
	if t.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	if in.Debootstrap != nil {
		t.Debootstrap = strings.TrimSpace(*in.Debootstrap)
		if !wire.ValidSuite(t.Debootstrap) {
			return nil, Invalid("debootstrap", "must be the suite to build from (bookworm, trixie, noble, ...): lower-case letters, digits, dots and dashes")
		}
	}
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		if err := preflight(tx, n); err != nil {
			return err
		}
		t.ServerID = n.MasterServerID
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		if t.Debootstrap != "" {
			if op, err = newOperation(tx, nid, OpCTemplateBuild, t.ID, OperationInput{Number: 1, Suite: t.Debootstrap}); err != nil {
				return err
			}
		}
		return audit(tx, a, &nid, "create", "ctemplate", t.ID, t.Name)
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: t, Operation: op}, nil
}

// UpdateCTemplate renames a ctemplate; its versions come from uploads.
func (s *Store) UpdateCTemplate(ctx context.Context, a *Actor, id uint, in *CTemplateInput) (*CTemplate, error) {
	var t *CTemplate
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = getScoped[CTemplate](ctx, tx, a.scopeNetworkOwned, id, "ctemplate"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != t.NetworkID {
			return Invalid("network_id", "a ctemplate cannot move to another network")
		}
		if in.Debootstrap != nil && strings.TrimSpace(*in.Debootstrap) != t.Debootstrap {
			return Invalid("debootstrap", "is chosen when the ctemplate is created")
		}
		if in.Name != nil {
			if t.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if err := tx.Model(t).Update("name", t.Name).Error; err != nil {
			return err
		}
		return audit(tx, a, &t.NetworkID, "update", "ctemplate", t.ID, "")
	})
	return t, err
}

// DeleteCTemplate queues a ctemplate's move into its server's erator; refused while a
// container (not deleted) is a clone of it.
func (s *Store) DeleteCTemplate(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var t *CTemplate
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = getScoped[CTemplate](ctx, tx, a.scopeNetworkOwned, id, "ctemplate"); err != nil {
			return err
		}
		if err := forUpdate(tx).Take(t, t.ID).Error; err != nil {
			return err
		}
		if t.State == StateDeleted {
			return Conflict("", "ctemplate %d is deleted already", t.ID)
		}
		var c Container
		err = tx.Where("ctemplate_id = ? AND state <> ?", t.ID, StateDeleted).Take(&c).Error
		if err == nil {
			return Conflict("", "container %d is a clone of ctemplate %d: delete it first", c.ID, t.ID)
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		op, err = queueDelete(tx, a, t, &t.State, t.NetworkID, t.ID, "ctemplate", OpCTemplateDelete, t.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: t, Operation: op}, nil
}

// CTemplateUpload is where an upload of ctemplate Template's next version goes: its
// server's agent, through the network's tunnel.
type CTemplateUpload struct {
	Template *CTemplate
	Server   Server
	Tunnel   Tunnel
	Version  int // the version the upload makes
}

// CheckSHA256 validates a hex sha256 (field sha256).
func CheckSHA256(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
		return "", Invalid("sha256", "must be the tarball's SHA-256, 64 hex digits")
	}
	return v, nil
}

// BeginCTemplateUpload checks that the caller may upload a new version of ctemplate id and
// says where it goes. Nothing is recorded: the version exists once its agent has checked
// the checksum and taken the snapshot (FinishCTemplateUpload).
func (s *Store) BeginCTemplateUpload(ctx context.Context, a *Actor, id uint) (*CTemplateUpload, error) {
	t, err := getScoped[CTemplate](ctx, s.DB.WithContext(ctx), a.scopeNetworkOwned, id, "ctemplate")
	if err != nil {
		return nil, err
	}
	if t.State != StatePending && t.State != StateReady {
		return nil, Conflict("", "ctemplate %d is %s", t.ID, t.State)
	}
	if err := objectBusy(s.DB.WithContext(ctx), "ctemplate", t.ID, ""); err != nil {
		return nil, err // a build makes the next version meanwhile
	}
	up := &CTemplateUpload{Template: t, Version: t.Version + 1}
	if err := agentRoute(s.DB.WithContext(ctx), "ctemplate", t.ID, t.NetworkID, t.ServerID, &up.Server, &up.Tunnel); err != nil {
		return nil, err
	}
	return up, nil
}

// agentRoute loads the server an object (what, id) of network networkID lives on and the
// network's tunnel: the panel reaches that server's agent through the tunnel's port.
func agentRoute(db *gorm.DB, what string, id, networkID uint, serverID *uint, srv *Server, t *Tunnel) error {
	if serverID == nil {
		return Conflict("", "%s %d has no server", what, id)
	}
	if err := db.Take(srv, *serverID).Error; err != nil {
		return fmt.Errorf("server %d: %w", *serverID, err)
	}
	var n Network
	if err := db.Take(&n, networkID).Error; err != nil {
		return fmt.Errorf("network %d: %w", networkID, err)
	}
	if n.TunnelID == nil || srv.TunnelPort == 0 {
		return Conflict("network_id", "network %d reaches server %q through no tunnel: select a tunnel and give the server a tunnel port", n.ID, srv.Name)
	}
	if err := db.Take(t, *n.TunnelID).Error; err != nil {
		return fmt.Errorf("tunnel %d: %w", *n.TunnelID, err)
	}
	return nil
}

// FinishCTemplateUpload records version (with its tarball's sha256) as ctemplate id's
// newest and queues its replication to the network's other servers; a version older than
// the one recorded changes nothing.
func (s *Store) FinishCTemplateUpload(ctx context.Context, a *Actor, id uint, version int, sum string) error {
	published := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&CTemplate{}).Where("id = ? AND version < ? AND state IN ?", id, version, []string{StatePending, StateReady}).
			Updates(map[string]any{"version": version, "sha256": sum, "state": StateReady})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		published = true
		var t CTemplate
		if err := tx.Take(&t, id).Error; err != nil {
			return err
		}
		return audit(tx, a, &t.NetworkID, "upload", "ctemplate", id, fmt.Sprintf("v%d sha256 %s", version, sum))
	})
	if err != nil || !published {
		return err
	}
	s.PublishCTemplate(ctx, id, version)
	return nil
}

// PublishCTemplate queues the replication of ctemplate id's version to every other server
// of its network, as a group's publish does. A failure is logged, never returned: the
// version is made, and the reconcile brings it where this missed.
func (s *Store) PublishCTemplate(ctx context.Context, id uint, version int) {
	if _, err := s.QueueReplication(ctx, ReplicationRequest{Kind: ReplicateCTemplate, ObjectID: id, Snapshot: fmt.Sprintf("v%d", version)}); err != nil {
		slog.WarnContext(ctx, "ctemplate replication not queued; the reconcile will", "ctemplate", id, "version", version, "error", err)
	}
}

func checkRange(field string, v *int, max int, what string) error {
	if v != nil && (*v < 0 || *v > max) {
		return Invalid(field, "must be %s between 0 (none) and %d", what, max)
	}
	return nil
}

// containerSpec validates a container's limits and command into c.
func containerSpec(in *ContainerInput, c *Container) error {
	for _, l := range []struct {
		field string
		v     *int
		max   int
		what  string
		dst   *int
	}{
		{"memory_mb", in.MemoryMB, MaxContainerMemoryMB, "a memory limit in MiB", &c.MemoryMB},
		{"cpu_quota_percent", in.CPUQuotaPercent, MaxContainerCPU, "a CPU quota in percent of one CPU", &c.CPUQuotaPercent},
		{"tasks_max", in.TasksMax, MaxContainerTasks, "a number of tasks", &c.TasksMax},
		{"disk_quota_gib", in.DiskQuotaGiB, MaxVolumeGiB, "a disk quota in GiB", &c.DiskQuotaGiB},
	} {
		if err := checkRange(l.field, l.v, l.max, l.what); err != nil {
			return err
		}
		*l.dst = ptrOr(l.v, 0)
	}
	if in.Command != nil {
		cmd := strings.TrimSpace(*in.Command)
		if len(cmd) > 1000 || strings.ContainsAny(cmd, "\n\r\x00") {
			return Invalid("command", "must be one line of at most 1000 characters")
		}
		c.Command = cmd
	}
	c.Autostart = ptrOr(in.Autostart, false)
	return nil
}

// CreateContainer records a container and queues its creation: a clone of its ctemplate's
// version (0: the newest) on its server, run as a systemd-nspawn machine with its limits,
// within the network's MaxContainers. The server (default: the ctemplate's own) must hold
// the version: the ctemplate's server, or one with a verified copy (409 otherwise).
func (s *Store) CreateContainer(ctx context.Context, a *Actor, in *ContainerInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	c := &Container{NetworkID: nid, State: StatePending}
	if c.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	if in.CTemplateID == nil || *in.CTemplateID == 0 {
		return nil, Invalid("ctemplate_id", "is required (the ctemplate the container is a clone of)")
	}
	if err := containerSpec(in, c); err != nil {
		return nil, err
	}
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		var t CTemplate
		err = tx.Where("id = ? AND network_id = ?", *in.CTemplateID, nid).Take(&t).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Invalid("ctemplate_id", "ctemplate %d is not in network %d", *in.CTemplateID, nid)
		}
		if err != nil {
			return err
		}
		if t.State != StateReady || t.Version == 0 || t.ServerID == nil {
			return Conflict("ctemplate_id", "ctemplate %d is %s with no version yet: upload its root file system first", t.ID, t.State)
		}
		c.CTemplateID, c.CTemplateVersion = t.ID, ptrOr(in.CTemplateVersion, 0)
		if c.CTemplateVersion == 0 {
			c.CTemplateVersion = t.Version
		}
		if c.CTemplateVersion < 0 || c.CTemplateVersion > t.Version {
			return Invalid("ctemplate_version", "ctemplate %d has versions 1 to %d", t.ID, t.Version)
		}
		c.ServerID = t.ServerID
		if in.ServerID != nil && *in.ServerID != 0 {
			if err := refInNetwork(tx, &Server{}, in.ServerID, nid, "server_id", "server"); err != nil {
				return err
			}
			if err := holdsCTemplate(tx, &t, c.CTemplateVersion, *in.ServerID, "server_id"); err != nil {
				return err
			}
			c.ServerID = in.ServerID
		}
		op, err = insertQueued(tx, a, n, queued{row: c, id: func() uint { return c.ID }, label: c.Name, object: "container",
			kind: OpContainerCreate, max: n.MaxContainers, what: "containers", limit: "max_containers"})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: c, Operation: op}, nil
}

// containerBusy refuses a change while another change of the container is queued or
// running: its changes share one workflow id (container-<id>), one at a time.
func containerBusy(tx *gorm.DB, id uint, field string) error {
	return objectBusy(tx, "container", id, field)
}

// objectBusy refuses a change of an object (object type, id) while an operation of it is
// queued or running.
func objectBusy(tx *gorm.DB, object string, id uint, field string) error {
	var op Operation
	err := tx.Where("object_type = ? AND object_id = ? AND state IN ?", object, id, []string{OpQueued, OpRunning}).Order("id").Take(&op).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for operations of %s %d: %w", object, id, err)
	}
	return Conflict(field, "%s %d has a %s under way (operation %d, %s): try again once it has ended", object, id, op.Kind, op.ID, op.State)
}

// applyCTemplateBuild records the version a build made, or a first build's failure.
func applyCTemplateBuild(tx *gorm.DB, op *Operation, ok bool) error {
	if !ok {
		// A ctemplate with versions keeps them; one without is failed.
		return tx.Model(&CTemplate{}).Where("id = ? AND version = 0 AND state = ?", op.ObjectID, StatePending).Update("state", StateFailed).Error
	}
	var in OperationInput
	if err := json.Unmarshal([]byte(op.Input), &in); err != nil {
		return fmt.Errorf("operation %d's input: %w", op.ID, err)
	}
	return tx.Model(&CTemplate{}).Where("id = ? AND version < ? AND state IN ?", op.ObjectID, in.Number, []string{StatePending, StateReady}).
		Updates(map[string]any{"version": in.Number, "sha256": "", "state": StateReady}).Error
}

// UpdateContainer renames a container. Its template, server and limits are fixed at
// create (a new container applies new ones).
func (s *Store) UpdateContainer(ctx context.Context, a *Actor, id uint, in *ContainerInput) (*Container, error) {
	var c *Container
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = getScoped[Container](ctx, tx, a.scopeNetworkOwned, id, "container"); err != nil {
			return err
		}
		for _, f := range []struct {
			field string
			set   bool
		}{
			{"network_id", in.NetworkID != nil && *in.NetworkID != c.NetworkID},
			{"ctemplate_id", in.CTemplateID != nil && *in.CTemplateID != c.CTemplateID},
			{"ctemplate_version", in.CTemplateVersion != nil && *in.CTemplateVersion != c.CTemplateVersion},
			{"server_id", in.ServerID != nil && ptrOr(in.ServerID, 0) != ptrOr(c.ServerID, 0)},
			{"memory_mb", in.MemoryMB != nil && *in.MemoryMB != c.MemoryMB},
			{"cpu_quota_percent", in.CPUQuotaPercent != nil && *in.CPUQuotaPercent != c.CPUQuotaPercent},
			{"tasks_max", in.TasksMax != nil && *in.TasksMax != c.TasksMax},
			{"disk_quota_gib", in.DiskQuotaGiB != nil && *in.DiskQuotaGiB != c.DiskQuotaGiB},
			{"autostart", in.Autostart != nil && *in.Autostart != c.Autostart},
			{"command", in.Command != nil && strings.TrimSpace(*in.Command) != c.Command},
		} {
			if f.set {
				return Invalid(f.field, "cannot change once the container exists: create a new container")
			}
		}
		if in.Name != nil {
			if c.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if err := tx.Model(c).Update("name", c.Name).Error; err != nil {
			return err
		}
		return audit(tx, a, &c.NetworkID, "update", "container", c.ID, "")
	})
	return c, err
}

// ContainerAction queues start, stop, restart or kill of a ready container.
func (s *Store) ContainerAction(ctx context.Context, a *Actor, id uint, action string) (*Created, error) {
	if !slices.Contains(ContainerActions, action) {
		return nil, Invalid("action", "must be one of %s", strings.Join(ContainerActions, ", "))
	}
	var c *Container
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = getScoped[Container](ctx, tx, a.scopeNetworkOwned, id, "container"); err != nil {
			return err
		}
		if err := forUpdate(tx).Take(c, c.ID).Error; err != nil {
			return err
		}
		if c.State != StateReady {
			return Conflict("", "container %d is %s: it can %s once it is ready", c.ID, c.State, action)
		}
		if err := containerBusy(tx, c.ID, ""); err != nil {
			return err
		}
		if op, err = newOperation(tx, c.NetworkID, OpContainerAction, c.ID, OperationInput{Action: action}); err != nil {
			return err
		}
		// What the operator wants from now on, whatever the action's outcome: the health
		// check compares the machine with it.
		c.Stopped = action == "stop" || action == "kill"
		if err := tx.Model(c).Update("stopped", c.Stopped).Error; err != nil {
			return err
		}
		return audit(tx, a, &c.NetworkID, action, "container", c.ID, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: c, Operation: op}, nil
}

// DeleteContainer queues a container's deletion: its machine stopped and its unit
// removed, its clone renamed into its server's erator.
func (s *Store) DeleteContainer(ctx context.Context, a *Actor, id uint) (*Created, error) {
	var c *Container
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = getScoped[Container](ctx, tx, a.scopeNetworkOwned, id, "container"); err != nil {
			return err
		}
		if err := forUpdate(tx).Take(c, c.ID).Error; err != nil {
			return err
		}
		if c.State == StateDeleted {
			return Conflict("", "container %d is deleted already", c.ID)
		}
		if c.State != StateDeleting {
			if err := containerBusy(tx, c.ID, ""); err != nil {
				return err
			}
		}
		op, err = queueDelete(tx, a, c, &c.State, c.NetworkID, c.ID, "container", OpContainerDelete, c.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: c, Operation: op}, nil
}

// ContainerRebaseInput is the body of a rebase: the ctemplate version to move to (0 or
// absent: the newest).
type ContainerRebaseInput struct {
	CTemplateVersion *int `field:"ctemplate_version,version"`
}

// RebaseContainer queues the move of a ready container onto a newer version of its
// ctemplate: a new clone of that version with the same unit and limits, started; the old
// clone goes into the erator (the container's data on its root goes with it). A rebase
// starts the container, so it counts as running from now on.
func (s *Store) RebaseContainer(ctx context.Context, a *Actor, id uint, in *ContainerRebaseInput) (*Created, error) {
	var c *Container
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = getScoped[Container](ctx, tx, a.scopeNetworkOwned, id, "container"); err != nil {
			return err
		}
		if err := forUpdate(tx).Take(c, c.ID).Error; err != nil {
			return err
		}
		if c.State != StateReady {
			return Conflict("", "container %d is %s: it can be rebased once it is ready", c.ID, c.State)
		}
		if err := containerBusy(tx, c.ID, ""); err != nil {
			return err
		}
		var t CTemplate
		if err := tx.Take(&t, c.CTemplateID).Error; err != nil {
			return fmt.Errorf("ctemplate %d: %w", c.CTemplateID, err)
		}
		if t.State != StateReady {
			return Conflict("ctemplate_version", "ctemplate %d is %s", t.ID, t.State)
		}
		to := ptrOr(in.CTemplateVersion, 0)
		if to == 0 {
			to = t.Version
		}
		if to < 0 || to > t.Version {
			return Invalid("ctemplate_version", "ctemplate %d has versions 1 to %d", t.ID, t.Version)
		}
		if to <= c.CTemplateVersion {
			return Invalid("ctemplate_version", "must be newer than the container's v%d (ctemplate %d's newest is v%d)", c.CTemplateVersion, t.ID, t.Version)
		}
		if c.ServerID != nil {
			if err := holdsCTemplate(tx, &t, to, *c.ServerID, "ctemplate_version"); err != nil {
				return err
			}
		}
		spec := &ContainerSpec{CTemplateID: c.CTemplateID, Version: to, MemoryMB: c.MemoryMB, CPUQuotaPercent: c.CPUQuotaPercent,
			TasksMax: c.TasksMax, DiskQuotaGiB: c.DiskQuotaGiB, Autostart: c.Autostart, Command: c.Command}
		if op, err = newOperation(tx, c.NetworkID, OpContainerRebase, c.ID, OperationInput{Container: spec, FromVersion: c.CTemplateVersion}); err != nil {
			return err
		}
		c.Stopped = false
		if err := tx.Model(c).Update("stopped", false).Error; err != nil {
			return err
		}
		return audit(tx, a, &c.NetworkID, "rebase", "container", c.ID, fmt.Sprintf("v%d to v%d", c.CTemplateVersion, to))
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: c, Operation: op}, nil
}

// applyContainerRebase records the version a rebase moved its container to.
func applyContainerRebase(tx *gorm.DB, op *Operation) error {
	var in OperationInput
	if err := json.Unmarshal([]byte(op.Input), &in); err != nil {
		return fmt.Errorf("operation %d's input: %w", op.ID, err)
	}
	if in.Container == nil {
		return fmt.Errorf("operation %d's input names no version", op.ID)
	}
	return tx.Model(&Container{}).Where("id = ?", op.ObjectID).Update("ctemplate_version", in.Container.Version).Error
}

// ContainerPlace is where a container runs: its server, that server's tunnel port and
// its network's tunnel (the panel asks the agent there for its status).
type ContainerPlace struct {
	Container *Container
	Server    Server
	Tunnel    Tunnel
}

// PlaceContainer finds container id (as the caller may see it) and the way to its agent.
func (s *Store) PlaceContainer(ctx context.Context, a *Actor, id uint) (*ContainerPlace, error) {
	db := s.DB.WithContext(ctx)
	c, err := getScoped[Container](ctx, db, a.scopeNetworkOwned, id, "container")
	if err != nil {
		return nil, err
	}
	p := &ContainerPlace{Container: c}
	if err := agentRoute(db, "container", c.ID, c.NetworkID, c.ServerID, &p.Server, &p.Tunnel); err != nil {
		return nil, err
	}
	return p, nil
}

// ContainerSpec is what a container-create workflow makes, recorded with its operation.
type ContainerSpec struct {
	CTemplateID     uint   `json:"ctemplate_id"`
	Version         int    `json:"version"`
	MemoryMB        int    `json:"memory_mb,omitempty"`
	CPUQuotaPercent int    `json:"cpu_quota_percent,omitempty"`
	TasksMax        int    `json:"tasks_max,omitempty"`
	DiskQuotaGiB    int    `json:"disk_quota_gib,omitempty"`
	Autostart       bool   `json:"autostart,omitempty"`
	Command         string `json:"command,omitempty"`
}

// containerInput completes a container operation's input: its server, and for a create
// what it makes.
func containerInput(tx *gorm.DB, op *Operation, in *OperationInput) error {
	var c Container
	if err := tx.Take(&c, op.ObjectID).Error; err != nil {
		return fmt.Errorf("container %d: %w", op.ObjectID, err)
	}
	if c.ServerID == nil {
		return fmt.Errorf("container %d has no server: %w", c.ID, errNoServer)
	}
	in.ServerID = *c.ServerID
	if (op.Kind == OpContainerCreate || op.Kind == OpContainerRebase) && in.Container == nil {
		in.Container = &ContainerSpec{CTemplateID: c.CTemplateID, Version: c.CTemplateVersion, MemoryMB: c.MemoryMB,
			CPUQuotaPercent: c.CPUQuotaPercent, TasksMax: c.TasksMax, DiskQuotaGiB: c.DiskQuotaGiB, Autostart: c.Autostart, Command: c.Command}
	}
	return nil
}

// containersMigration adds the network's MaxContainers, a ctemplate's server and
// versions, and a container's version, limits and command.
func containersMigration() *gormigrate.Migration {
	parts := []*gormigrate.Migration{
		addColumnsMigration("202612010430_ctemplates", &networkContainers{}, "MaxContainers"),
		addColumnsMigration("202612010430_ctemplates", &ctemplateVersions{}, "ServerID", "Version", "SHA256"),
		addColumnsMigration("202612010430_ctemplates", &containerLimits{}, "CTemplateVersion", "MemoryMB", "CPUQuotaPercent", "TasksMax", "DiskQuotaGiB", "Autostart", "Command"),
	}
	return migrationOfParts("202612010430_ctemplates", parts)
}

// migrationOfParts is one migration id whose steps are parts, run in order and rolled
// back in reverse.
func migrationOfParts(id string, parts []*gormigrate.Migration) *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: id,
		Migrate: func(tx *gorm.DB) error {
			for _, p := range parts {
				if err := p.Migrate(tx); err != nil {
					return err
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			for i := len(parts) - 1; i >= 0; i-- {
				if err := parts[i].Rollback(tx); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// networkContainers, ctemplateVersions and containerLimits are the tables as migration
// 202612010430 knows them (frozen).
type networkContainers struct {
	MaxContainers int `gorm:"column:max_containers;not null;default:0"`
}

func (networkContainers) TableName() string { return "networks" }

type ctemplateVersions struct {
	ServerID *uint
	Version  int    `gorm:"not null;default:0"`
	SHA256   string `gorm:"column:sha256;size:64;not null;default:''"`
}

func (ctemplateVersions) TableName() string { return "c_templates" }

type containerLimits struct {
	CTemplateVersion int    `gorm:"column:ctemplate_version;not null;default:0"`
	MemoryMB         int    `gorm:"column:memory_mb;not null;default:0"`
	CPUQuotaPercent  int    `gorm:"column:cpu_quota_percent;not null;default:0"`
	TasksMax         int    `gorm:"column:tasks_max;not null;default:0"`
	DiskQuotaGiB     int    `gorm:"column:disk_quota_gib;not null;default:0"`
	Autostart        bool   `gorm:"not null;default:false"`
	Command          string `gorm:"size:1000;not null;default:''"`
}

func (containerLimits) TableName() string { return "containers" }

// containerStoppedMigration adds a container's Stopped (what the operator last asked for)
// and a ctemplate's Debootstrap suite.
func containerStoppedMigration() *gormigrate.Migration {
	parts := []*gormigrate.Migration{
		addColumnsMigration("202612010530_container_stopped", &containerStopped{}, "Stopped"),
		addColumnsMigration("202612010530_container_stopped", &ctemplateDebootstrap{}, "Debootstrap"),
	}
	return migrationOfParts("202612010530_container_stopped", parts)
}

// ctemplateDebootstrap is the table as migration 202612010530 knows it (frozen).
type ctemplateDebootstrap struct {
	Debootstrap string `gorm:"size:40;not null;default:''"`
}

func (ctemplateDebootstrap) TableName() string { return "c_templates" }

// containerStopped is the table as migration 202612010530 knows it (frozen).
type containerStopped struct {
	Stopped bool `gorm:"not null;default:false"`
}

func (containerStopped) TableName() string { return "containers" }

// ContainerHealth judges the ready containers of one server from the container units its
// agent reported (units nil: the agent could not tell; nothing is judged). A container
// whose operator did not stop it is failed when its unit failed, ended, or is missing;
// a stopped one is fine whatever its unit says (a kill leaves it failed).
func ContainerHealth(cs []Container, units []wire.ContainerUnit) []HealthResult {
	if units == nil {
		return nil
	}
	byID := map[uint]wire.ContainerUnit{}
	for _, u := range units {
		byID[u.ID] = u
	}
	var out []HealthResult
	for _, c := range cs {
		if c.State != StateReady {
			continue
		}
		r := HealthResult{Class: HealthContainer, NetworkID: c.NetworkID, ObjectID: c.ID, Name: c.Name, OK: true}
		u, ok := byID[c.ID]
		switch {
		case c.Stopped:
		case !ok:
			r.OK, r.Error = false, "its unit is missing on its server"
		case u.ActiveState == "failed":
			r.OK, r.Error = false, fmt.Sprintf("its unit failed (%s)", cmp.Or(u.Result, u.SubState))
		case u.ActiveState == "inactive" || u.ActiveState == "deactivating":
			r.OK, r.Error = false, fmt.Sprintf("its unit ended (%s, %s) and nobody stopped it", u.SubState, cmp.Or(u.Result, "success"))
		}
		out = append(out, r)
	}
	return out
}

// CTemplateCopy records that a server other than the ctemplate's own holds version Version
// of it (its snapshot @v<N>), with the guid it holds, equal to the ctemplate server's: a
// container may be made of that version on that server.
type CTemplateCopy struct {
	CTemplateID uint      `gorm:"column:ctemplate_id;primaryKey" json:"ctemplate_id"`
	ServerID    uint      `gorm:"primaryKey;index" json:"server_id"`
	Version     int       `gorm:"primaryKey;autoIncrement:false" json:"version"`
	GUID        string    `gorm:"size:40;not null" json:"guid"`
	ReceivedAt  time.Time `json:"received_at"`
}

func (CTemplateCopy) TableName() string { return "ctemplate_copies" }

// ctemplateCopyMigration adds the ctemplate_copies table.
func ctemplateCopyMigration() *gormigrate.Migration {
	return createTableMigration("202612010601_ctemplate_copies", &ctemplateCopyTable{})
}

// ctemplateCopyTable is the ctemplate_copies table as migration 202612010601 makes it (frozen).
type ctemplateCopyTable struct {
	CTemplateID uint   `gorm:"column:ctemplate_id;primaryKey"`
	ServerID    uint   `gorm:"primaryKey;index:idx_ctemplate_copies_server_id"`
	Version     int    `gorm:"primaryKey;autoIncrement:false"`
	GUID        string `gorm:"size:40;not null"`
	ReceivedAt  time.Time
}

func (ctemplateCopyTable) TableName() string { return "ctemplate_copies" }

// CTemplateCopyInput is a server's verified copy of a ctemplate version: the guid it holds
// for @v<Version>, which the caller found equal to the ctemplate server's.
type CTemplateCopyInput struct {
	ServerID    uint
	CTemplateID uint
	Version     int
	GUID        string
	At          time.Time // zero: now
}

// RecordCTemplateCopy records that a server holds a ctemplate version. The caller compared
// the guid with the one on the ctemplate's server (the panel keeps none of its own); an
// empty guid, or a version the ctemplate does not have, is refused. Repeating it changes
// nothing but the guid and time.
func RecordCTemplateCopy(ctx context.Context, db *gorm.DB, in CTemplateCopyInput) error {
	if in.GUID == "" {
		return fmt.Errorf("ctemplate %d v%d on server %d: no guid: %w", in.CTemplateID, in.Version, in.ServerID, ErrGUIDMismatch)
	}
	db = db.WithContext(ctx)
	var t CTemplate
	if err := db.Take(&t, in.CTemplateID).Error; err != nil {
		return fmt.Errorf("ctemplate %d: %w", in.CTemplateID, notFound(err))
	}
	if in.Version < 1 || in.Version > t.Version {
		return fmt.Errorf("ctemplate %d has versions 1 to %d, not %d: %w", t.ID, t.Version, in.Version, ErrNotFound)
	}
	at := in.At
	if at.IsZero() {
		at = time.Now()
	}
	return db.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ctemplate_id"}, {Name: "server_id"}, {Name: "version"}},
		DoUpdates: clause.AssignmentColumns([]string{"guid", "received_at"}),
	}).Create(&CTemplateCopy{CTemplateID: t.ID, ServerID: in.ServerID, Version: in.Version, GUID: in.GUID, ReceivedAt: at}).Error
}

// recordCTemplateCopies records each version snapshot ("v<N>") of both (snapshots a
// comparison by guid found on the ctemplate's server and on serverID alike) as a copy.
func recordCTemplateCopies(ctx context.Context, db *gorm.DB, serverID, id uint, both []SnapshotGUID) error {
	for _, sn := range both {
		n, err := strconv.Atoi(strings.TrimPrefix(sn.Name, "v"))
		if err != nil || !strings.HasPrefix(sn.Name, "v") {
			continue // a hold's snapshot, not a version
		}
		err = RecordCTemplateCopy(ctx, db, CTemplateCopyInput{ServerID: serverID, CTemplateID: id, Version: n, GUID: sn.GUID})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// ctemplateReplicaDataset is ready ctemplate t as replication sees it: copied from its
// server to the network's other servers.
func ctemplateReplicaDataset(t *CTemplate) replicaDataset {
	return replicaDataset{ReplicateCTemplate, t.ID, t.NetworkID, fmt.Sprintf("ctemplate %d (%q)", t.ID, t.Name), *t.ServerID}
}

// loadCTemplateDataset is a ready ctemplate with a version, copied from its server; nil
// when it is not (yet, or any more) something to replicate.
func loadCTemplateDataset(tx *gorm.DB, id uint) (*replicaDataset, error) {
	var t CTemplate
	if err := tx.Take(&t, id).Error; err != nil {
		return nil, notFoundOr(err, "ctemplate")
	}
	if t.State != StateReady || t.Version == 0 || t.ServerID == nil {
		return nil, nil
	}
	d := ctemplateReplicaDataset(&t)
	return &d, nil
}

// ctemplateDatasets is a network's ready ctemplates with a version, each copied from its
// server to the network's other servers.
func ctemplateDatasets(tx *gorm.DB, networkID uint) ([]replicaDataset, error) {
	var ts []CTemplate
	if err := tx.Where("network_id = ? AND state = ? AND version > 0 AND server_id IS NOT NULL", networkID, StateReady).
		Order("id").Find(&ts).Error; err != nil {
		return nil, err
	}
	out := make([]replicaDataset, 0, len(ts))
	for _, t := range ts {
		out = append(out, ctemplateReplicaDataset(&t))
	}
	return out, nil
}

// ctemplateCopyServers is every server of a ctemplate's network but its own: where its
// copies are.
func ctemplateCopyServers(db *gorm.DB, id uint) ([]Server, error) {
	var t CTemplate
	if err := db.Take(&t, id).Error; err != nil {
		return nil, notFoundOr(err, "ctemplate")
	}
	return otherServers(db, t.NetworkID, t.ServerID)
}

// otherServers is every server of a network but serverID (nil: every server), in id
// order: where the copies of a dataset that lives on serverID are.
func otherServers(db *gorm.DB, networkID uint, serverID *uint) ([]Server, error) {
	var others []Server
	err := db.Where("network_id = ? AND id <> ?", networkID, ptrOr(serverID, 0)).Order("id").Find(&others).Error
	return others, err
}

// ctemplateReplica is the dataset a replication of ctemplate t brings up to snapshot ("":
// its newest recorded version, never one the panel does not know yet).
func ctemplateReplica(t *CTemplate, snapshot string) ReplicationDataset {
	if snapshot == "" {
		snapshot = fmt.Sprintf("v%d", t.Version)
	}
	return ReplicationDataset{Kind: ReplicateCTemplate, ObjectID: t.ID, Dataset: fmt.Sprintf("iscsi/ctemplates/%d", t.ID), Snapshot: snapshot}
}

// holdsCTemplate refuses (409, field) a container of ctemplate t's version on server
// serverID unless that server is the ctemplate's own or holds a verified copy of the version.
func holdsCTemplate(tx *gorm.DB, t *CTemplate, version int, serverID uint, field string) error {
	if t.ServerID != nil && *t.ServerID == serverID {
		return nil
	}
	var n int64
	if err := tx.Model(&CTemplateCopy{}).Where("ctemplate_id = ? AND server_id = ? AND version = ?", t.ID, serverID, version).
		Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	return Conflict(field, "server %d does not hold a verified copy of ctemplate %d v%d yet: wait until replication has brought it there (or use server %d, the ctemplate's own)",
		serverID, t.ID, version, ptrOr(t.ServerID, 0))
}
