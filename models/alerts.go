package models

import (
	"context"
	"fmt"
	"strings"
)

// Alert codes, in the order the guide resolves them.
const (
	AlertNoNetwork           = "no_network"
	AlertNoTunnel            = "no_tunnel"
	AlertNoServer            = "no_server"
	AlertNoMaster            = "no_master"
	AlertMasterUnreachable   = "master_unreachable"
	AlertPoolUnhealthy       = "pool_unhealthy"
	AlertNoVolume            = "no_volume"
	AlertNoGroup             = "no_group"
	AlertNoDefaultGroup      = "no_default_group"
	AlertGroupWithoutVersion = "group_without_version"
	AlertSMTPNotConfigured   = "smtp_not_configured"
)

// Alert is one problem that keeps a network (or the panel) from being operational, with the
// dashboard page that fixes it.
type Alert struct {
	Code      string `json:"code"`
	NetworkID *uint  `json:"network_id"`
	Network   string `json:"network,omitempty"`
	Message   string `json:"message"`
	Link      string `json:"link"`
}

// Alerts computes, from the current state, the alerts the actor should see: for every
// network it can see, what the guide still asks for (tunnel, server, master, a healthy
// master pool, volume, group, default group, a published version of each group), plus
// "no network yet" and, for super-admins, "SMTP not configured". Nothing is stored: the
// alerts disappear as soon as the state that caused them changes.
func (s *Store) Alerts(ctx context.Context, a *Actor) ([]Alert, error) {
	db := s.DB.WithContext(ctx)
	alerts := []Alert{}
	var nets []Network
	if err := a.scopeNetworks(db.Model(&Network{})).Order("id").Find(&nets).Error; err != nil {
		return nil, fmt.Errorf("alerts: networks: %w", err)
	}
	if len(nets) == 0 {
		alerts = append(alerts, Alert{Code: AlertNoNetwork, Message: "No network yet: before a server or any device can be configured, you must have a network.", Link: "/networks/new"})
	}
	ids := make([]uint, len(nets))
	for i, n := range nets {
		ids[i] = n.ID
	}
	var (
		tunnels  []Tunnel
		servers  []Server
		volumes  []Volume
		groups   []Group
		versions []GroupVersion
	)
	if len(ids) > 0 {
		live := []string{StatePending, StateReady}
		for _, q := range []struct {
			dst   any
			model any
			where string
			args  []any
		}{
			{&tunnels, &Tunnel{}, "network_id IN ?", []any{ids}},
			{&servers, &Server{}, "network_id IN ?", []any{ids}},
			{&volumes, &Volume{}, "network_id IN ? AND state IN ?", []any{ids, live}},
			{&groups, &Group{}, "network_id IN ? AND state IN ?", []any{ids, live}},
		} {
			if err := db.Model(q.model).Where(q.where, q.args...).Order("id").Find(q.dst).Error; err != nil {
				return nil, fmt.Errorf("alerts: %w", err)
			}
		}
		gids := make([]uint, len(groups))
		for i, g := range groups {
			gids[i] = g.ID
		}
		if len(gids) > 0 {
			if err := db.Where("group_id IN ? AND state = ?", gids, StateReady).Find(&versions).Error; err != nil {
				return nil, fmt.Errorf("alerts: versions: %w", err)
			}
		}
	}
	count := func(nid uint, of func(int) uint, n int) int {
		c := 0
		for i := 0; i < n; i++ {
			if of(i) == nid {
				c++
			}
		}
		return c
	}
	hasVersion := map[uint]bool{}
	for _, v := range versions {
		hasVersion[v.GroupID] = true
	}
	for _, n := range nets {
		nid := n.ID
		add := func(code, link, format string, args ...any) {
			alerts = append(alerts, Alert{Code: code, NetworkID: &nid, Network: n.Name, Message: fmt.Sprintf(format, args...), Link: link})
		}
		edit := fmt.Sprintf("/networks/%d/edit", nid)
		if n.TunnelID == nil {
			if count(nid, func(i int) uint { return tunnels[i].NetworkID }, len(tunnels)) == 0 {
				add(AlertNoTunnel, fmt.Sprintf("/tunnels/new?network_id=%d", nid), "Network %q has no tunnel server: add one so the panel can reach its servers.", n.Name)
			} else {
				add(AlertNoTunnel, edit, "Network %q has no tunnel server selected: choose one in the network's settings.", n.Name)
			}
		}
		nServers := count(nid, func(i int) uint { return servers[i].NetworkID }, len(servers))
		switch {
		case nServers == 0:
			add(AlertNoServer, fmt.Sprintf("/servers/new?network_id=%d", nid), "Network %q has no server: register its master server.", n.Name)
		case n.MasterServerID == nil:
			add(AlertNoMaster, edit, "Network %q has no master server: select one in the network's settings.", n.Name)
		default:
			for _, srv := range servers {
				if srv.ID != *n.MasterServerID {
					continue
				}
				link := fmt.Sprintf("/servers/%d", srv.ID)
				switch {
				case !srv.Reachable():
					add(AlertMasterUnreachable, link, "The master server %q of network %q is not reachable (%s): run install.sh on it and check its tunnel port.", srv.Name, n.Name, srv.Status)
				case srv.PoolHealth != "" && srv.PoolHealth != "ONLINE":
					add(AlertPoolUnhealthy, link, "The master server %q reports pool %q as %s: make the pool healthy.", srv.Name, srv.Pool, srv.PoolHealth)
				}
			}
		}
		if count(nid, func(i int) uint { return volumes[i].NetworkID }, len(volumes)) == 0 {
			add(AlertNoVolume, fmt.Sprintf("/volumes/new?network_id=%d", nid), "Network %q has no volume: create one to install an OS on.", n.Name)
		}
		if count(nid, func(i int) uint { return groups[i].NetworkID }, len(groups)) == 0 {
			add(AlertNoGroup, fmt.Sprintf("/groups/new?network_id=%d", nid), "Network %q has no group: clone a volume into a group.", n.Name)
		}
		if n.DefaultGroupID == nil {
			add(AlertNoDefaultGroup, edit, "Network %q has no default group: assign one so netbooting devices can register.", n.Name)
		}
		for _, g := range groups {
			if g.NetworkID == nid && !hasVersion[g.ID] {
				add(AlertGroupWithoutVersion, fmt.Sprintf("/groups/%d", g.ID), "Group %q of network %q has no published version: devices cannot boot it yet.", g.Name, n.Name)
			}
		}
	}
	if a.SuperAdmin() {
		st, err := loadSettings(db)
		if err != nil {
			return nil, err
		}
		if !st.SMTPConfigured() {
			alerts = append(alerts, Alert{Code: AlertSMTPNotConfigured, Message: "SMTP is not configured: the panel cannot notify users of account access or unreachable servers.", Link: "/settings"})
		}
	}
	return alerts, nil
}

// Reachable reports whether the panel's last look at the server got through its tunnel
// (a status of "Panel to server OK", possibly followed by a note about the pool).
func (s *Server) Reachable() bool { return strings.HasPrefix(s.Status, StatusPanelOK) }
