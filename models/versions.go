package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// GroupVersion is a published snapshot of a group head, <pool>/iscsi/groups/<id>@v<N>.
type GroupVersion struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	GroupID   uint      `gorm:"not null;uniqueIndex:idx_group_version" json:"group_id"`
	Number    int       `gorm:"not null;uniqueIndex:idx_group_version" json:"number"`
	GUID      string    `gorm:"size:40;not null;default:''" json:"guid"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	Note      string    `gorm:"size:500;not null;default:''" json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// VersionCopy records that a server holds a group version (its received guid matches the master's).
type VersionCopy struct {
	VersionID  uint      `gorm:"primaryKey" json:"version_id"`
	ServerID   uint      `gorm:"primaryKey;index" json:"server_id"`
	GUID       string    `gorm:"size:40;not null" json:"guid"`
	ReceivedAt time.Time `json:"received_at"`
}

// ListVersions lists a visible group's versions.
func (s *Store) ListVersions(ctx context.Context, a *Actor, groupID uint) ([]GroupVersion, error) {
	if _, err := GetOwned[Group](ctx, s, a, groupID, "group"); err != nil {
		return nil, err
	}
	var vs []GroupVersion
	err := s.DB.WithContext(ctx).Where("group_id = ?", groupID).Order("number").Find(&vs).Error
	return vs, err
}

// AssignedVersion is the version a group assigns: the one pinned by AssignedVersionID, or,
// when none is pinned, the newest ready version (so a publish assigns its version).
func AssignedVersion(g *Group, ready []GroupVersion) *GroupVersion {
	var newest *GroupVersion
	for i := range ready {
		v := &ready[i]
		if g.AssignedVersionID != nil && v.ID == *g.AssignedVersionID {
			return v
		}
		if newest == nil || v.Number > newest.Number {
			newest = v
		}
	}
	if g.AssignedVersionID != nil {
		// The pinned version is not ready (pending, failed): nothing is assigned yet.
		return nil
	}
	return newest
}

// Assignable is the part of a group's ready versions its assignment may pick: all of
// them, except for a group that follows its newest version and assigns only what every
// server holds (AssignWhenReplicated), which follows the newest version that every one of
// the network's servers holds (holders: version id -> servers, the master included).
func Assignable(g *Group, ready []GroupVersion, holders map[uint][]uint, servers int) []GroupVersion {
	if !g.AssignWhenReplicated || g.AssignedVersionID != nil {
		return ready
	}
	var held []GroupVersion
	for _, v := range ready {
		if len(holders[v.ID]) >= servers {
			held = append(held, v)
		}
	}
	return held
}

// VersionByNumber finds version n of a group.
func VersionByNumber(ctx context.Context, db *gorm.DB, groupID uint, n int) (*GroupVersion, error) {
	var v GroupVersion
	if err := db.WithContext(ctx).Where("group_id = ? AND number = ?", groupID, n).Take(&v).Error; err != nil {
		return nil, notFoundOr(err, "version")
	}
	return &v, nil
}

// Compliance is one device's standing against its strict group's assigned version.
type Compliance struct {
	DeviceID  uint `json:"device_id"`
	GroupID   uint `json:"group_id"`
	Locked    bool `json:"locked"`
	Assigned  int  `json:"assigned"`
	Clone     int  `json:"clone"`
	Booted    int  `json:"booted"`
	Compliant bool `json:"compliant"`
	// ServerID is the server the device's clone is on and it last booted from; Server its
	// name (filled in by GroupComplianceView).
	ServerID   *uint      `json:"server_id"`
	Server     string     `json:"server,omitempty"`
	LastBootAt *time.Time `json:"last_boot_at"`
}

// GroupCompliance lists, for a visible group, each device's clone and booted version
// against the assigned one (non-compliant: a strict group's device on another version).
func (s *Store) GroupCompliance(ctx context.Context, a *Actor, groupID uint) ([]Compliance, error) {
	g, err := getScoped[Group](ctx, s.DB, a.scopeNetworkOwned, groupID, "group")
	if err != nil {
		return nil, err
	}
	var versions []GroupVersion
	if err := s.DB.WithContext(ctx).Where("group_id = ?", g.ID).Find(&versions).Error; err != nil {
		return nil, err
	}
	num := map[uint]int{}
	var ready []GroupVersion
	for _, v := range versions {
		num[v.ID] = v.Number
		if v.State == StateReady {
			ready = append(ready, v)
		}
	}
	assigned := 0
	if v := AssignedVersion(g, ready); v != nil {
		assigned = v.Number
	}
	var devs []Device
	if err := s.DB.WithContext(ctx).Where("group_id = ?", g.ID).Order("id").Find(&devs).Error; err != nil {
		return nil, err
	}
	out := make([]Compliance, 0, len(devs))
	for _, d := range devs {
		c := Compliance{DeviceID: d.ID, GroupID: g.ID, Locked: d.Locked, Assigned: assigned, ServerID: d.ServerID, LastBootAt: d.LastBootAt}
		if d.CloneVersionID != nil {
			c.Clone = num[*d.CloneVersionID]
		}
		if d.BootedVersionID != nil {
			c.Booted = num[*d.BootedVersionID]
		}
		c.Compliant = !g.StrictVersioning || assigned == 0 || c.Clone == assigned
		out = append(out, c)
	}
	return out, nil
}

// PublishInput is the body of a group publish. Version, when given, makes the request
// safe to repeat: publishing a version that exists returns its operation.
type PublishInput struct {
	Note    *string `field:"note"`
	Version *int    `field:"version,number"`
	// Rollout, when given, rolls the version out in waves (rollouts.go): canaries first.
	Rollout *RolloutInput `field:"rollout"`
}

// PublishedVersion is a published version with its rollout (nil: assigned at once).
type PublishedVersion struct {
	GroupVersion
	Rollout *Rollout `json:"rollout,omitempty"`
}

// PublishGroup records the group's next version (pending) and queues its snapshot
// <pool>/iscsi/groups/<id>@v<N>.
func (s *Store) PublishGroup(ctx context.Context, a *Actor, groupID uint, in *PublishInput) (*Created, error) {
	var ver *GroupVersion
	var op, rop *Operation
	var ro *Rollout
	note := ""
	if in.Note != nil {
		var err error
		if note, err = checkName("note", *in.Note, 500); err != nil {
			return nil, err
		}
	}
	if in.Rollout != nil {
		var err error
		if ro, err = newRollout(in.Rollout); err != nil {
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
		if err := checkNotMaintained(tx, "", "group", g.ID, g.Maintenance, g.MaintenanceDeviceID); err != nil {
			return err
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
				var rs []Rollout
				if err := tx.Where("version_id = ?", existing.ID).Limit(1).Find(&rs).Error; err != nil {
					return err
				}
				if ro = nil; len(rs) == 1 {
					ro = &rs[0]
					ro.decode()
				}
				// The version id follows the server and pool (inputs recorded before them start with it).
				return tx.Where("object_type = ? AND object_id = ? AND kind = ? AND input LIKE ?", "group", g.ID, OpGroupPublish,
					fmt.Sprintf(`%%"version_id":%d,%%`, existing.ID)).Order("id DESC").Take(&op).Error
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
		if op, err = newOperation(tx, g.NetworkID, OpGroupPublish, g.ID, OperationInput{VersionID: ver.ID, Number: next}); err != nil {
			return err
		}
		if ro != nil {
			if err := beginRollout(tx, a, g, ver, ro); err != nil {
				return err
			}
			if rop, err = newOperation(tx, g.NetworkID, OpGroupRollout, g.ID, OperationInput{VersionID: ver.ID, Number: next, RolloutID: ro.ID}); err != nil {
				return err
			}
			ro.OperationID = rop.ID
			if err := tx.Model(ro).Update("operation_id", rop.ID).Error; err != nil {
				return err
			}
			ro.decode()
		}
		return audit(tx, a, &g.NetworkID, "publish", "group", g.ID, fmt.Sprintf("v%d", next))
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	s.launch(ctx, rop)
	if ro != nil {
		return &Created{Object: &PublishedVersion{GroupVersion: *ver, Rollout: ro}, Operation: op}, nil
	}
	return &Created{Object: ver, Operation: op}, nil
}
