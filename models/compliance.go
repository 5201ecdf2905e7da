package models

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ComplianceView is a group's standing across its network (GET
// /groups/<id>/compliance.json): per ready version, which servers hold it and since when,
// and the transfers still bringing it to the others; per device, its assigned, clone and
// booted version and the server it last booted from.
type ComplianceView struct {
	GroupID              uint                `json:"group_id"`
	AssignWhenReplicated bool                `json:"assign_when_replicated"`
	Assigned             int                 `json:"assigned"` // 0: none
	Pending              int                 `json:"pending"`  // 0: none
	Versions             []VersionCompliance `json:"versions"`
	Devices              []Compliance        `json:"devices"`
}

// VersionCompliance is one version and where it is.
type VersionCompliance struct {
	Number    int              `json:"number"`
	VersionID uint             `json:"version_id"`
	GUID      string           `json:"guid"`
	Holders   []VersionHolder  `json:"holders"`
	Receiving []VersionReceive `json:"receiving"`
	// Missing are the servers that neither hold nor receive it.
	Missing []VersionHolder `json:"missing"`
}

// VersionHolder is a server holding a version since Since (the master: since it published it).
type VersionHolder struct {
	ServerID uint       `json:"server_id"`
	Server   string     `json:"server"`
	Role     string     `json:"role"`
	Since    *time.Time `json:"since,omitempty"`
}

// VersionReceive is a server still receiving a version: its replication operation's
// progress, and the lag (seconds since the version was published).
type VersionReceive struct {
	ServerID    uint   `json:"server_id"`
	Server      string `json:"server"`
	OperationID uint   `json:"operation_id"`
	State       string `json:"state"`
	Step        string `json:"step"`
	Percent     int    `json:"percent"`
	Message     string `json:"message"`
	LagSeconds  int64  `json:"lag_seconds"`
}

// GroupComplianceView builds a visible group's ComplianceView.
func (s *Store) GroupComplianceView(ctx context.Context, a *Actor, groupID uint) (*ComplianceView, error) {
	devs, err := s.GroupCompliance(ctx, a, groupID)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	var g Group
	if err := db.Take(&g, groupID).Error; err != nil {
		return nil, notFoundOr(err, "group")
	}
	nb, err := LoadNetworkBoot(ctx, db, g.NetworkID)
	if err != nil {
		return nil, err
	}
	gb := nb.Groups[g.ID]
	view := &ComplianceView{GroupID: g.ID, AssignWhenReplicated: g.AssignWhenReplicated, Devices: devs}
	if gb.Assigned != nil {
		view.Assigned = gb.Assigned.Number
	}
	if g.PendingVersionID != nil {
		view.Pending = nb.Versions[*g.PendingVersionID].Number
	}
	servers := map[uint]Server{}
	for _, srv := range nb.Servers {
		servers[srv.ID] = srv
	}
	for i := range view.Devices {
		d := &view.Devices[i]
		if d.ServerID != nil {
			d.Server = servers[*d.ServerID].Name
		}
		// The assignment as boots see it (a group waiting for every server follows the
		// newest version they all hold).
		d.Assigned = view.Assigned
		d.Compliant = !g.StrictVersioning || d.Assigned == 0 || d.Clone == d.Assigned
	}
	var copies []VersionCopy
	if err := db.Where("version_id IN (?)", db.Model(&GroupVersion{}).Select("id").Where("group_id = ?", g.ID)).Find(&copies).Error; err != nil {
		return nil, fmt.Errorf("compliance: copies: %w", err)
	}
	since := map[[2]uint]time.Time{}
	for _, c := range copies {
		since[[2]uint{c.VersionID, c.ServerID}] = c.ReceivedAt
	}
	// The group's replication operations under way, newest first: the first per server is
	// the transfer it is receiving.
	var ops []Operation
	if err := db.Where("kind = ? AND object_id = ? AND state IN ?", OpReplicateGroup, g.ID, []string{OpQueued, OpRunning}).
		Order("id DESC").Find(&ops).Error; err != nil {
		return nil, fmt.Errorf("compliance: operations: %w", err)
	}
	running := map[uint]Operation{}
	for _, op := range ops {
		var in OperationInput
		if json.Unmarshal([]byte(op.Input), &in) != nil {
			continue
		}
		if _, ok := running[in.ServerID]; !ok {
			running[in.ServerID] = op
		}
	}
	now := time.Now()
	for _, v := range gb.Versions {
		vc := VersionCompliance{Number: v.Number, VersionID: v.ID, GUID: v.GUID, Holders: []VersionHolder{}, Receiving: []VersionReceive{}, Missing: []VersionHolder{}}
		held := map[uint]bool{}
		for _, sid := range gb.Holders[v.ID] {
			held[sid] = true
			srv := servers[sid]
			h := VersionHolder{ServerID: sid, Server: srv.Name, Role: srv.Role}
			if t, ok := since[[2]uint{v.ID, sid}]; ok {
				h.Since = &t
			} else {
				created := v.CreatedAt
				h.Since = &created
			}
			vc.Holders = append(vc.Holders, h)
		}
		for _, srv := range nb.Servers {
			if held[srv.ID] {
				continue
			}
			if op, ok := running[srv.ID]; ok {
				vc.Receiving = append(vc.Receiving, VersionReceive{ServerID: srv.ID, Server: srv.Name, OperationID: op.ID, State: op.State,
					Step: op.Step, Percent: op.Percent, Message: op.Message, LagSeconds: int64(now.Sub(v.CreatedAt).Seconds())})
				continue
			}
			vc.Missing = append(vc.Missing, VersionHolder{ServerID: srv.ID, Server: srv.Name, Role: srv.Role})
		}
		view.Versions = append(view.Versions, vc)
	}
	if view.Versions == nil {
		view.Versions = []VersionCompliance{}
	}
	return view, nil
}
