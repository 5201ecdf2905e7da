package models

import (
	"context"
	"fmt"
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
	// The health check's alerts (stored, see health.go): a tunnel down, a server other
	// than the master unreachable, a server flapping.
	AlertTunnelDown        = HealthTunnel
	AlertServerUnreachable = HealthServer
	AlertServerFlapping    = "server_flapping"
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
	// Per network: how many tunnels, servers, volumes and groups it has, its master, and
	// its groups without a ready version; a few grouped queries whatever the number of networks.
	var (
		tunnels, servers, volumes = map[uint]int{}, map[uint]int{}, map[uint]int{}
		masters                   = map[uint]Server{}
		groups                    []Group
		versioned                 []uint
	)
	if len(ids) > 0 {
		live := []string{StatePending, StateReady}
		for _, q := range []struct {
			into  map[uint]int
			model any
			where string
			args  []any
		}{
			{tunnels, &Tunnel{}, "network_id IN ?", []any{ids}},
			{servers, &Server{}, "network_id IN ?", []any{ids}},
			{volumes, &Volume{}, "network_id IN ? AND state IN ?", []any{ids, live}},
		} {
			var rows []struct {
				NetworkID uint
				N         int
			}
			if err := db.Model(q.model).Select("network_id, count(*) AS n").Where(q.where, q.args...).Group("network_id").Scan(&rows).Error; err != nil {
				return nil, fmt.Errorf("alerts: %w", err)
			}
			for _, r := range rows {
				q.into[r.NetworkID] = r.N
			}
		}
		var ms []Server
		if err := db.Where("id IN (?)", db.Model(&Network{}).Select("master_server_id").Where("id IN ?", ids)).Find(&ms).Error; err != nil {
			return nil, fmt.Errorf("alerts: masters: %w", err)
		}
		for _, m := range ms {
			masters[m.ID] = m
		}
		if err := db.Where("network_id IN ? AND state IN ?", ids, live).Order("id").Find(&groups).Error; err != nil {
			return nil, fmt.Errorf("alerts: groups: %w", err)
		}
		if err := db.Model(&GroupVersion{}).Distinct("group_id").Where("state = ? AND group_id IN (?)", StateReady,
			db.Model(&Group{}).Select("id").Where("network_id IN ?", ids)).Pluck("group_id", &versioned).Error; err != nil {
			return nil, fmt.Errorf("alerts: versions: %w", err)
		}
	}
	health, err := OpenHealthAlerts(ctx, db, ids)
	if err != nil {
		return nil, fmt.Errorf("alerts: health: %w", err)
	}
	healthOf := map[uint][]HealthState{}
	for _, h := range health {
		healthOf[h.NetworkID] = append(healthOf[h.NetworkID], h)
	}
	hasVersion := map[uint]bool{}
	for _, g := range versioned {
		hasVersion[g] = true
	}
	groupsOf := map[uint][]Group{}
	for _, g := range groups {
		groupsOf[g.NetworkID] = append(groupsOf[g.NetworkID], g)
	}
	for _, n := range nets {
		nid := n.ID
		add := func(code, link, format string, args ...any) {
			alerts = append(alerts, Alert{Code: code, NetworkID: &nid, Network: n.Name, Message: fmt.Sprintf(format, args...), Link: link})
		}
		edit := fmt.Sprintf("/networks/%d/edit", nid)
		if n.TunnelID == nil {
			if tunnels[nid] == 0 {
				add(AlertNoTunnel, fmt.Sprintf("/tunnels/new?network_id=%d", nid), "Network %q has no tunnel server: add one so the panel can reach its servers.", n.Name)
			} else {
				add(AlertNoTunnel, edit, "Network %q has no tunnel server selected: choose one in the network's settings.", n.Name)
			}
		}
		for _, h := range healthOf[nid] {
			switch {
			case h.Class == HealthTunnel && h.State == HealthDown:
				add(AlertTunnelDown, h.link(), "The tunnel server %q of network %q is down: the panel cannot reach its servers. Start `clusterducks tunnel` on it.", h.Name, n.Name)
			case h.Flapping:
				add(AlertServerFlapping, h.link(), "The server %q of network %q is flapping (up and down): check its network and agent.", h.Name, n.Name)
			case n.MasterServerID != nil && *n.MasterServerID == h.ObjectID:
				// The master's own alert below says it.
			case h.State == HealthDown:
				add(AlertServerUnreachable, h.link(), "The server %q of network %q is unreachable through its tunnel: check its agent and tunnel port.", h.Name, n.Name)
			}
		}
		switch {
		case servers[nid] == 0:
			add(AlertNoServer, fmt.Sprintf("/servers/new?network_id=%d", nid), "Network %q has no server: register its master server.", n.Name)
		case n.MasterServerID == nil:
			add(AlertNoMaster, edit, "Network %q has no master server: select one in the network's settings.", n.Name)
		default:
			srv := masters[*n.MasterServerID]
			link := fmt.Sprintf("/servers/%d", srv.ID)
			switch {
			case !srv.Reachable():
				add(AlertMasterUnreachable, link, "The master server %q of network %q is not reachable (%s): run install.sh on it and check its tunnel port.", srv.Name, n.Name, srv.Status)
			case srv.PoolHealth != "" && srv.PoolHealth != "ONLINE":
				add(AlertPoolUnhealthy, link, "The master server %q reports pool %q as %s: make the pool healthy.", srv.Name, srv.Pool, srv.PoolHealth)
			}
		}
		if volumes[nid] == 0 {
			add(AlertNoVolume, fmt.Sprintf("/volumes/new?network_id=%d", nid), "Network %q has no volume: create one to install an OS on.", n.Name)
		}
		if len(groupsOf[nid]) == 0 {
			add(AlertNoGroup, fmt.Sprintf("/groups/new?network_id=%d", nid), "Network %q has no group: clone a volume into a group.", n.Name)
		}
		if n.DefaultGroupID == nil {
			add(AlertNoDefaultGroup, edit, "Network %q has no default group: assign one so netbooting devices can register.", n.Name)
		}
		for _, g := range groupsOf[nid] {
			if !hasVersion[g.ID] {
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
