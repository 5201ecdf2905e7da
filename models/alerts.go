package models

import (
	"context"
	"encoding/json"
	"fmt"
	"gorm.io/gorm"
	"time"
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
	AlertTunnelDown         = HealthTunnel
	AlertServerUnreachable  = HealthServer
	AlertServerFlapping     = "server_flapping"
	AlertSlaveUnreachable   = "slave_unreachable"
	AlertSlavePoolFull      = "slave_pool_full"
	AlertReplicationFailing = "replication_failing"
	// A rollout's canaries failed its thresholds and it rolled back (until a newer
	// version is published or the group is assigned another version).
	AlertRolloutRolledBack = "rollout_rolled_back"
	// A container the operator wants running failed or ended (stored by the health
	// check, see ContainerHealth); a vdisk's server is unreachable (computed from the
	// server's stored health): its device cannot reach its data.
	AlertContainerFailed        = HealthContainer
	AlertVDiskServerUnreachable = "vdisk_server_unreachable"
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
	var downServers []uint
	for _, h := range health {
		healthOf[h.NetworkID] = append(healthOf[h.NetworkID], h)
		if h.Class == HealthServer && h.State == HealthDown {
			downServers = append(downServers, h.ObjectID)
		}
	}
	// A container's stored state outlives the container (and the operator's stop): only
	// those still meant to run count.
	wanted := map[uint]bool{}
	var vdisksDown []VDisk
	if len(ids) > 0 {
		var running []uint
		if err := db.Model(&Container{}).Where("network_id IN ? AND state = ? AND stopped = ?", ids, StateReady, false).Pluck("id", &running).Error; err != nil {
			return nil, fmt.Errorf("alerts: containers: %w", err)
		}
		for _, id := range running {
			wanted[id] = true
		}
	}
	if len(downServers) > 0 {
		if err := db.Where("network_id IN ? AND server_id IN ? AND state IN ?", ids, downServers, []string{StatePending, StateReady}).Order("id").Find(&vdisksDown).Error; err != nil {
			return nil, fmt.Errorf("alerts: vdisks: %w", err)
		}
	}
	vdisksOf := map[uint][]VDisk{}
	for _, v := range vdisksDown {
		vdisksOf[v.NetworkID] = append(vdisksOf[v.NetworkID], v)
	}
	serverName := map[uint]string{}
	for _, h := range health {
		if h.Class == HealthServer {
			serverName[h.ObjectID] = h.Name
		}
	}
	repl, err := loadReplicationHealth(db, ids, time.Now())
	if err != nil {
		return nil, err
	}
	rolledBack, err := rolledBackRollouts(db, ids)
	if err != nil {
		return nil, err
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
			case h.Class == HealthContainer:
				if h.State == HealthDown && wanted[h.ObjectID] {
					add(AlertContainerFailed, h.link(), "The container %q of network %q is not running: %s. Read its journal, then start it (or stop it if it is meant to be down).", h.Name, n.Name, h.LastError)
				}
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
		for _, v := range vdisksOf[nid] {
			add(AlertVDiskServerUnreachable, fmt.Sprintf("/vdisks/%d", v.ID), "The vdisk %q of network %q lives on server %q, which is unreachable: its device cannot use its data until the server is back.",
				v.Name, n.Name, serverName[*v.ServerID])
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
		for _, al := range repl.alerts(n) {
			add(al.Code, al.Link, "%s", al.Message)
		}
		for _, r := range rolledBack[nid] {
			add(AlertRolloutRolledBack, fmt.Sprintf("/groups/%d", r.GroupID), "The rollout of group %d's v%d to network %q rolled back: the group assigns v%d again. %s",
				r.GroupID, r.Number, n.Name, r.Previous, r.Report)
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

// Bounds of the replication alerts.
const (
	// StaleStats: a slave whose last stats are older is unreachable (the stats schedule
	// polls every minute or so).
	StaleStats = 10 * time.Minute
	// PoolFullPercent: a slave's pool with less free space than this cannot take the
	// next version.
	PoolFullPercent = 5
	// FailingTransfers: this many failed transfers in a row of the same dataset to the
	// same slave is an alert (one is a retry that will likely pass).
	FailingTransfers = 3
)

// replicationHealth is what the replication alerts read of some networks: their slaves
// and the recent replication operations.
type replicationHealth struct {
	now    time.Time
	slaves map[uint][]Server
	// failing counts, per network, each (slave, kind, object)'s failures since its last success.
	failing map[uint][]failingTransfer
}

type failingTransfer struct {
	slave          Server
	kind           string
	object, failed uint
	lastError      string
	// vdisk and from: a vdisk's backup (to any other server, the master included) and
	// the server the vdisk lives on.
	vdisk *VDisk
	from  string
}

func loadReplicationHealth(db *gorm.DB, ids []uint, now time.Time) (*replicationHealth, error) {
	h := &replicationHealth{now: now, slaves: map[uint][]Server{}, failing: map[uint][]failingTransfer{}}
	if len(ids) == 0 {
		return h, nil
	}
	var slaves []Server
	if err := db.Where("network_id IN ? AND id NOT IN (?)", ids,
		db.Model(&Network{}).Select("COALESCE(master_server_id, 0)").Where("id IN ?", ids)).Order("id").Find(&slaves).Error; err != nil {
		return nil, fmt.Errorf("alerts: slaves: %w", err)
	}
	byID := map[uint]Server{}
	for _, s := range slaves {
		h.slaves[s.NetworkID] = append(h.slaves[s.NetworkID], s)
		byID[s.ID] = s
	}
	// A vdisk is backed up to every other server of its network, the master included.
	var all []Server
	if err := db.Where("network_id IN ?", ids).Order("id").Find(&all).Error; err != nil {
		return nil, fmt.Errorf("alerts: servers: %w", err)
	}
	anyByID := map[uint]Server{}
	for _, s := range all {
		anyByID[s.ID] = s
	}
	vdisks := map[uint]*VDisk{}
	// The latest replication operations, newest first: enough to see a run of failures.
	var ops []Operation
	if err := db.Where("network_id IN ? AND kind IN ? AND state IN ?", ids, []string{OpReplicateVolume, OpReplicateGroup, OpReplicateVDisk, OpReplicateCTemplate},
		[]string{OpSucceeded, OpFailed}).Order("id DESC").Limit(1000).Find(&ops).Error; err != nil {
		return nil, fmt.Errorf("alerts: replication operations: %w", err)
	}
	type key struct {
		slave  uint
		kind   string
		object uint
	}
	settled := map[key]bool{}
	at := map[key]int{}
	for _, op := range ops {
		var in OperationInput
		if json.Unmarshal([]byte(op.Input), &in) != nil || op.NetworkID == nil {
			continue
		}
		k := key{in.ServerID, op.Kind, op.ObjectID}
		if settled[k] {
			continue
		}
		if op.State == OpSucceeded {
			settled[k] = true
			continue
		}
		srv, ok := byID[in.ServerID]
		var f failingTransfer
		if op.Kind == OpReplicateVDisk {
			v, err := backedUpVDisk(db, vdisks, op.ObjectID)
			if err != nil {
				return nil, err
			}
			srv, ok = anyByID[in.ServerID]
			if v == nil || !ok || v.ServerID == nil || *v.ServerID == in.ServerID {
				continue // deleted, or its backups moved on (it lives on that server now)
			}
			f.vdisk, f.from = v, anyByID[*v.ServerID].Name
		}
		if !ok {
			continue // no longer a slave
		}
		i, seen := at[k]
		if !seen {
			i = len(h.failing[*op.NetworkID])
			at[k] = i
			f.slave, f.kind, f.object, f.lastError = srv, op.ObjectType, op.ObjectID, op.Error
			h.failing[*op.NetworkID] = append(h.failing[*op.NetworkID], f)
		}
		h.failing[*op.NetworkID][i].failed++
	}
	return h, nil
}

// alerts are network n's replication alerts: slaves unreachable or with a full pool, and
// transfers that keep failing.
func (h *replicationHealth) alerts(n Network) []Alert {
	if n.MasterServerID == nil {
		return nil // no master, no slaves: the no_master alert says what to do
	}
	var out []Alert
	for _, s := range h.slaves[n.ID] {
		link := fmt.Sprintf("/servers/%d", s.ID)
		switch {
		case s.StatsAt == nil:
			out = append(out, Alert{Code: AlertSlaveUnreachable, Link: link, Message: fmt.Sprintf(
				"The slave server %q of network %q has never reported: run install.sh on it; it receives the network's volumes and versions once its agent has started.", s.Name, n.Name)})
		case !s.Reachable() || h.now.Sub(*s.StatsAt) > StaleStats:
			out = append(out, Alert{Code: AlertSlaveUnreachable, Link: link, Message: fmt.Sprintf(
				"The slave server %q of network %q has not reported since %s: check its agent and its network; it receives no new version meanwhile, and devices booting from it are redirected or wait.",
				s.Name, n.Name, s.StatsAt.UTC().Format(time.RFC3339))})
		case s.PoolHealth != "" && s.PoolHealth != "ONLINE":
			out = append(out, Alert{Code: AlertPoolUnhealthy, Link: link, Message: fmt.Sprintf(
				"The slave server %q reports pool %q as %s: make the pool healthy.", s.Name, s.Pool, s.PoolHealth)})
		}
		if s.PoolSize > 0 && s.PoolFree*100 < s.PoolSize*PoolFullPercent {
			out = append(out, Alert{Code: AlertSlavePoolFull, Link: link, Message: fmt.Sprintf(
				"The pool %q of slave server %q is full (%d MiB free of %d MiB): grow the pool or purge its erator; new versions cannot reach it.",
				s.Pool, s.Name, s.PoolFree>>20, s.PoolSize>>20)})
		}
	}
	for _, f := range h.failing[n.ID] {
		if f.failed < FailingTransfers {
			continue
		}
		if f.vdisk != nil {
			out = append(out, Alert{Code: AlertReplicationFailing, Link: fmt.Sprintf("/vdisks/%d", f.object), Message: fmt.Sprintf(
				"Backing up vdisk %q (%d) from server %q to server %q has failed %d times in a row (last: %s): check both agents, the pool of %q and the replication IP of %q; the reconcile retries it.",
				f.vdisk.Name, f.object, f.from, f.slave.Name, f.failed, f.lastError, f.slave.Name, f.from)})
			continue
		}
		out = append(out, Alert{Code: AlertReplicationFailing, Link: fmt.Sprintf("/%ss/%d", f.kind, f.object), Message: fmt.Sprintf(
			"Replicating %s %d to slave server %q has failed %d times in a row (last: %s): check the slave's agent, its pool and the master's replication IP; the reconcile retries it.",
			f.kind, f.object, f.slave.Name, f.failed, f.lastError)})
	}
	return out
}

// backedUpVDisk reads vdisk id once per alert listing (cache); nil when it is deleted.
func backedUpVDisk(db *gorm.DB, cache map[uint]*VDisk, id uint) (*VDisk, error) {
	if v, ok := cache[id]; ok {
		return v, nil
	}
	var v VDisk
	err := db.Where("id = ? AND state <> ?", id, StateDeleted).Limit(1).Find(&v).Error
	if err != nil {
		return nil, fmt.Errorf("alerts: vdisk %d: %w", id, err)
	}
	if v.ID == 0 {
		cache[id] = nil
		return nil, nil
	}
	cache[id] = &v
	return &v, nil
}

// rolledBackRollouts are, per network, the rollouts that rolled back and still stand:
// their version is the group's newest and the group assigns the version it went back to.
func rolledBackRollouts(db *gorm.DB, ids []uint) (map[uint][]Rollout, error) {
	out := map[uint][]Rollout{}
	if len(ids) == 0 {
		return out, nil
	}
	var rs []Rollout
	if err := db.Where("network_id IN ? AND state = ?", ids, RolloutRolledBack).Order("id").Find(&rs).Error; err != nil {
		return nil, fmt.Errorf("alerts: rollouts: %w", err)
	}
	for _, r := range rs {
		var newer int64
		if err := db.Model(&GroupVersion{}).Where("group_id = ? AND number > ?", r.GroupID, r.Number).Count(&newer).Error; err != nil {
			return nil, fmt.Errorf("alerts: rollouts: %w", err)
		}
		var g Group
		if err := db.Take(&g, r.GroupID).Error; err != nil || newer > 0 || g.AssignedVersionID == nil || *g.AssignedVersionID != r.PreviousID {
			continue
		}
		out[r.NetworkID] = append(out[r.NetworkID], r)
	}
	return out, nil
}
