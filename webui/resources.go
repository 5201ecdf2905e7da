package webui

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
)

func limitField(name, label string, v int, disabled bool) field {
	return field{Name: name, Label: label, Type: "number", Value: itoa(v), Disabled: disabled, Inputmode: "numeric", Help: "0 = unlimited"}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func stateBadge(s string) cell {
	return cell{Text: s, Badge: s}
}

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// refOptions lists the objects of one network for a select, with a "none" entry.
func refOptions[T any](r *rc, nid uint, none string, label func(*T) string, id func(*T) uint) []option {
	opts := []option{{Value: "", Label: none}}
	items, _, err := models.ListOwned[T](r.ctx, r.s, r.a, all, nid)
	if err != nil {
		return opts
	}
	for i := range items {
		opts = append(opts, option{Value: utoa(id(&items[i])), Label: label(&items[i])})
	}
	return opts
}

func resources() []*resource {
	return []*resource{clientsRes(), usersRes(), networksRes(), tunnelsRes(), serversRes(), volumesRes(), groupsRes(), devicesRes(), menusRes(), vdisksRes(), ctemplatesRes(), containersRes()}
}

func clientsRes() *resource {
	k := &kind[models.Client]{
		meta: meta{Name: "clients", Title: "Clients", Singular: "Client", Icon: "building", Submit: "Save",
			Help: "Clients are the highest level of ownership: users and networks belong to a client."},
		canCreate: func(a *models.Actor) bool { return a.SuperAdmin() },
		canChange: func(r *rc, _ *models.Client) bool { return r.a.SuperAdmin() },
		columns:   []string{"Name", "Max networks"},
		list:      storeList((*models.Store).ListClients), get: storeGet((*models.Store).GetClient),
		id:    func(x *models.Client) uint { return x.ID },
		label: func(x *models.Client) string { return x.Name },
		row: func(r *rc, c *models.Client) []cell {
			return []cell{{Text: c.Name, Link: fmt.Sprintf("/clients/%d", c.ID)}, {Text: limitText(c.MaxNetworks)}}
		},
		fields: func(r *rc, o *models.Client) []field {
			c := cmp.Or(o, &models.Client{})
			return []field{
				{Name: "name", Label: "Name", Type: "text", Value: c.Name, Required: true},
				limitField("max_networks", "Max networks", c.MaxNetworks, false),
			}
		},
		create: storeCreate((*models.Store).CreateClient),
		update: storeSave((*models.Store).UpdateClient),
		del:    storeRemove((*models.Store).DeleteClient),
		details: func(r *rc, c *models.Client) []detail {
			return []detail{{Label: "Name", Value: c.Name}, {Label: "Max networks", Value: limitText(c.MaxNetworks)}, {Label: "Created", Value: ago(&c.CreatedAt)}}
		},
	}
	return k.resource()
}

func limitText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return itoa(n)
}

func (r *rc) clientOptions() []option {
	cs, _, err := r.s.ListClients(r.ctx, r.a, all)
	opts := []option{}
	if err != nil {
		return opts
	}
	for _, c := range cs {
		opts = append(opts, option{Value: utoa(c.ID), Label: c.Name})
	}
	return opts
}

func (r *rc) clientName(id uint) string {
	if c, err := r.s.GetClient(r.ctx, r.a, id); err == nil {
		return c.Name
	}
	return "#" + utoa(id)
}

func usersRes() *resource {
	k := &kind[models.User]{
		meta:      meta{Name: "users", Title: "Users", Singular: "User", Icon: "user", Submit: "Add"},
		canCreate: func(a *models.Actor) bool { return a.SuperAdmin() || a.Role == models.RoleAdmin },
		canChange: func(r *rc, u *models.User) bool { return r.a.CanChangeUser(u) },
		columns:   []string{"E-mail", "Name", "Role", "Client"},
		list:      storeList((*models.Store).ListUsers), get: storeGet((*models.Store).GetUser),
		id:    func(x *models.User) uint { return x.ID },
		label: func(x *models.User) string { return x.Email },
		row: func(r *rc, u *models.User) []cell {
			return []cell{{Text: u.Email, Link: fmt.Sprintf("/users/%d", u.ID)}, {Text: u.Name}, {Text: u.Role}, {Text: r.clientName(u.ClientID), Link: fmt.Sprintf("/clients/%d", u.ClientID)}}
		},
		fields: func(r *rc, o *models.User) []field {
			u := cmp.Or(o, &models.User{Role: models.RoleUser, ClientID: r.a.ClientID})
			creating := o == nil
			roles := []option{{Value: models.RoleUser, Label: "user"}, {Value: models.RoleAdmin, Label: "admin"}}
			if r.a.SuperAdmin() {
				roles = append(roles, option{Value: models.RoleSuperAdmin, Label: "superadmin"})
			}
			pw := field{Name: "password", Label: "Password", Type: "password", Required: creating, Autocomplete: "new-password", Help: "At least 10 characters."}
			if !creating {
				pw.Required, pw.OmitEmpty, pw.Help = false, true, "Leave empty to keep the current password."
			}
			fs := []field{
				{Name: "email", Label: "E-mail", Type: "email", Value: u.Email, Required: true, Autocomplete: "off"},
				{Name: "name", Label: "Name", Type: "text", Value: u.Name, OmitEmpty: true},
				pw,
			}
			if !creating && u.ID == r.a.ID {
				// Changing one's own password needs the current one, as on the account page.
				fs = append(fs, field{Name: "current_password", Label: "Current password", Type: "password", OmitEmpty: true, Autocomplete: "current-password", Help: "Needed to change your password."})
			}
			return append(fs,
				field{Name: "role", Label: "Role", Type: "select", Value: u.Role, Options: roles, Disabled: !creating && (u.ID == r.a.ID || !r.a.CanAdminClient(u.ClientID))},
				field{Name: "client_id", Label: "Client", Type: "select", Value: utoa(u.ClientID), Options: r.clientOptions(), Disabled: !creating || !r.a.SuperAdmin()},
			)
		},
		create: storeCreate((*models.Store).CreateUser),
		update: storeSave((*models.Store).UpdateUser),
		del:    storeRemove((*models.Store).DeleteUser),
		details: func(r *rc, u *models.User) []detail {
			return []detail{{Label: "E-mail", Value: u.Email}, {Label: "Name", Value: u.Name}, {Label: "Role", Value: u.Role},
				{Label: "Client", Value: r.clientName(u.ClientID), Link: fmt.Sprintf("/clients/%d", u.ClientID)}}
		},
	}
	return k.resource()
}

func (r *rc) objName(kind string, id *uint) cell {
	if id == nil {
		return cell{Text: "—"}
	}
	var name string
	switch kind {
	case "tunnels", "servers", "groups", "menus", "volumes", "devices", "vdisks", "ctemplates": // the objects of a network
		if o, err := resourceNamed(kind).get(r, *id); err == nil {
			name = o.label
		}
	}
	if name == "" {
		name = "#" + utoa(*id)
	}
	return cell{Text: name, Link: fmt.Sprintf("/%s/%d", kind, *id)}
}

func networksRes() *resource {
	k := &kind[models.Network]{
		meta: meta{Name: "networks", Title: "Networks", Singular: "Network", Icon: "network", Submit: "Add",
			Help: "Before a server or any devices can be configured, you must have a network. Use the pilot icon to delegate a network to a user of another client."},
		columns: []string{"Name", "Client", "Tunnel server", "Master server", "Default group"},
		list:    storeList((*models.Store).ListNetworks), get: storeGet((*models.Store).GetNetwork),
		id:    func(x *models.Network) uint { return x.ID },
		label: func(x *models.Network) string { return x.Name },
		row: func(r *rc, n *models.Network) []cell {
			return []cell{{Text: n.Name, Link: fmt.Sprintf("/networks/%d", n.ID)}, {Text: r.clientName(n.ClientID)},
				r.objName("tunnels", n.TunnelID), r.objName("servers", n.MasterServerID), r.objName("groups", n.DefaultGroupID)}
		},
		actions: func(r *rc, n *models.Network) []action {
			if !r.a.CanAdminClient(n.ClientID) {
				return nil
			}
			return []action{{Label: "Delegate " + n.Name + " (pilot)", Icon: "pilot", Href: fmt.Sprintf("/networks/%d/delegations", n.ID)}}
		},
		fields: func(r *rc, n *models.Network) []field {
			if n == nil {
				cid := r.a.ClientID
				return []field{
					{Name: "name", Label: "Name", Type: "text", Required: true},
					limitField("max_servers", "Max servers", 0, false),
					limitField("max_devices", "Max devices", 0, false),
					limitField("max_volumes", "Max volumes", 0, false),
					limitField("max_groups", "Max groups", 0, false),
					{Name: "client_id", Label: "Client", Type: "select", Value: utoa(cid), Options: r.clientOptions(), Required: true},
				}
			}
			admin := r.a.CanAdminClient(n.ClientID)
			return []field{
				{Name: "name", Label: "Name", Type: "text", Value: n.Name, Required: true},
				limitField("max_servers", "Max servers", n.MaxServers, !admin),
				limitField("max_devices", "Max devices", n.MaxDevices, !admin),
				limitField("max_volumes", "Max volumes", n.MaxVolumes, !admin),
				limitField("max_groups", "Max groups", n.MaxGroups, !admin),
				{Name: "client_id", Label: "Client", Type: "select", Value: utoa(n.ClientID), Options: r.clientOptions(), Disabled: !r.a.SuperAdmin()},
				{Name: "tunnel_id", Label: "Tunnel server", Type: "select", Value: ptrString(n.TunnelID),
					Options: refOptions(r, n.ID, "— none —", func(t *models.Tunnel) string { return t.Alias + " (" + t.IP + ")" }, func(t *models.Tunnel) uint { return t.ID })},
				{Name: "master_server_id", Label: "Master server", Type: "select", Value: ptrString(n.MasterServerID),
					Options: refOptions(r, n.ID, "— none —", func(s *models.Server) string { return s.Name }, func(s *models.Server) uint { return s.ID })},
				{Name: "default_group_id", Label: "Default group", Type: "select", Value: ptrString(n.DefaultGroupID), Help: "Netbooting devices register and join this group.",
					Options: refOptions(r, n.ID, "— none —", func(g *models.Group) string { return g.Name }, func(g *models.Group) uint { return g.ID })},
				{Name: "default_menu_id", Label: "Default menu", Type: "select", Value: ptrString(n.DefaultMenuID),
					Options: refOptions(r, n.ID, "— none —", func(m *models.Menu) string { return m.Name }, func(m *models.Menu) uint { return m.ID })},
			}
		},
		create: storeCreate((*models.Store).CreateNetwork),
		update: storeSave((*models.Store).UpdateNetwork),
		del:    storeRemove((*models.Store).DeleteNetwork),
		details: func(r *rc, n *models.Network) []detail {
			t, m, g := r.objName("tunnels", n.TunnelID), r.objName("servers", n.MasterServerID), r.objName("groups", n.DefaultGroupID)
			return []detail{{Label: "Name", Value: n.Name}, {Label: "Client", Value: r.clientName(n.ClientID)},
				{Label: "Tunnel server", Value: t.Text, Link: t.Link}, {Label: "Master server", Value: m.Text, Link: m.Link},
				{Label: "Default group", Value: g.Text, Link: g.Link},
				{Label: "Limits", Value: fmt.Sprintf("servers %s, devices %s, volumes %s, groups %s", limitText(n.MaxServers), limitText(n.MaxDevices), limitText(n.MaxVolumes), limitText(n.MaxGroups))}}
		},
		sections: func(r *rc, n *models.Network) []section {
			s := section{Title: "Alerts", Columns: []string{"Problem", "Fix"}}
			alerts, err := r.s.Alerts(r.ctx, r.a)
			if err == nil {
				for _, al := range alerts {
					if al.NetworkID != nil && *al.NetworkID == n.ID {
						s.Rows = append(s.Rows, []cell{{Text: al.Message}, {Text: "Fix", Link: al.Link}})
					}
				}
			}
			if len(s.Rows) == 0 {
				s.Note = "This network is operational: no alerts."
			}
			links := section{Title: "In this network", Columns: []string{"Page"}}
			for _, k := range []string{"tunnels", "servers", "volumes", "groups", "devices", "menus"} {
				links.Rows = append(links.Rows, []cell{{Text: strings.ToUpper(k[:1]) + k[1:], Link: fmt.Sprintf("/%s?network_id=%d", k, n.ID)}})
			}
			return []section{s, links}
		},
	}
	return k.resource()
}

func tunnelsRes() *resource {
	list, get := owned[models.Tunnel]("tunnel")
	k := &kind[models.Tunnel]{
		meta: meta{Name: "tunnels", Title: "Tunnel Servers", Singular: "Tunnel Server", Icon: "tunnel", Submit: "Add", Filter: true,
			Help: "Tunnel servers proxy the panel's commands to the network's servers. IP is a routable address that the panel must reach."},
		columns: []string{"Alias", "IP", "Network", "Selected", "Status", "Connected agents", "Checked"},
		list:    list, get: get,
		id:    func(x *models.Tunnel) uint { return x.ID },
		label: func(x *models.Tunnel) string { return x.Alias },
		row: func(r *rc, t *models.Tunnel) []cell {
			n := r.networks()[t.NetworkID]
			return []cell{{Text: t.Alias, Link: fmt.Sprintf("/tunnels/%d", t.ID)}, {Text: t.IP}, r.netCell(t.NetworkID),
				{Text: yesNo(n.TunnelID != nil && *n.TunnelID == t.ID)}, tunnelStatus(t), {Text: r.agentNames(t)}, {Text: ago(t.CheckedAt)}}
		},
		fields: func(r *rc, o *models.Tunnel) []field {
			t := cmp.Or(o, &models.Tunnel{})
			return []field{
				r.networkField(t.NetworkID, o == nil),
				{Name: "alias", Label: "Alias", Type: "text", Value: t.Alias, Required: true, Help: "A human-readable name; it can be whatever you want."},
				{Name: "ip", Label: "IP", Type: "text", Value: t.IP, Required: true, Inputmode: "decimal", Placeholder: "203.0.113.10", Help: "A routable address that the panel's web server reaches."},
			}
		},
		create: storeCreate((*models.Store).CreateTunnel),
		update: storeSave((*models.Store).UpdateTunnel),
		del:    storeRemove((*models.Store).DeleteTunnel),
		details: func(r *rc, t *models.Tunnel) []detail {
			return []detail{{Label: "Alias", Value: t.Alias}, {Label: "IP", Value: t.IP}, {Label: "Network", Value: r.netName(t.NetworkID), Link: fmt.Sprintf("/networks/%d", t.NetworkID)},
				{Label: "Status", Value: t.Status, Badge: tunnelStatus(t).Badge}, {Label: "Connected agents", Value: r.agentNames(t)},
				{Label: "Agents dial", Value: orDash(t.AgentEndpoint())}, {Label: "Checked", Value: ago(t.CheckedAt)}}
		},
	}
	return k.resource()
}

// serverStatus is the server's status, with the time of the panel's last round trip
// through the tunnel when it got through.
func serverStatus(s *models.Server) cell {
	if s.Reachable() {
		return cell{Text: s.Status + " (" + ago(s.StatsAt) + ")", Badge: "ok"}
	}
	return cell{Text: s.Status, Badge: "bad"}
}

// tunnelStatus is a tunnel's status, good while the last health check found it running.
func tunnelStatus(t *models.Tunnel) cell {
	b := "bad"
	if strings.HasPrefix(t.Status, "Running") {
		b = "ok"
	}
	return cell{Text: t.Status, Badge: b}
}

// agentNames names the servers whose agents had a session with t at its last check.
func (r *rc) agentNames(t *models.Tunnel) string {
	ids := t.ConnectedAgents()
	if len(ids) == 0 {
		return "—"
	}
	var names []string
	if err := r.s.DB.WithContext(r.ctx).Model(&models.Server{}).Where("id IN ?", ids).Order("name").Pluck("name", &names).Error; err != nil {
		return fmt.Sprintf("%d", len(ids))
	}
	return strings.Join(names, ", ")
}

func serversRes() *resource {
	list, get := owned[models.Server]("server")
	k := &kind[models.Server]{
		meta: meta{Name: "servers", Title: "Servers", Singular: "Server", Icon: "server", Submit: "Add", Filter: true,
			Help: "The first server of a network is its master. After adding a server, run install.sh -h <panel> -k <server key> -n <bridge> on it."},
		columns: []string{"Name", "Network", "Role", "iSCSI IP", "Replication IP", "Pool", "Tunnel port", "Status"},
		list:    list, get: get,
		id:    func(x *models.Server) uint { return x.ID },
		label: func(x *models.Server) string { return x.Name },
		row: func(r *rc, s *models.Server) []cell {
			return []cell{{Text: s.Name, Link: fmt.Sprintf("/servers/%d", s.ID)}, r.netCell(s.NetworkID), {Text: s.Role}, {Text: s.IP},
				{Text: s.ReplicationAddress()}, {Text: s.Pool}, {Text: itoa(s.TunnelPort)}, serverStatus(s)}
		},
		actions: func(r *rc, s *models.Server) []action {
			return []action{{Label: "New key for " + s.Name, Icon: "key", Post: fmt.Sprintf("/servers/%d/key", s.ID), Confirm: "Issue a new server key? The old key stops working."}}
		},
		fields: func(r *rc, o *models.Server) []field {
			s := cmp.Or(o, &models.Server{})
			return []field{
				r.networkField(s.NetworkID, o == nil),
				{Name: "name", Label: "Name", Type: "text", Value: s.Name, Required: true, Help: "For aesthetics only; it need not be a resolvable host name."},
				{Name: "ip", Label: "iSCSI IP", Type: "text", Value: s.IP, Required: true, Inputmode: "decimal", Help: "Used between devices and storage nodes; devices must reach it."},
				{Name: "replication_ip", Label: "Replication IP", Type: "text", Value: s.ReplicationIP, Inputmode: "decimal", Help: "Slave servers must reach it. If left blank, the iSCSI IP is used."},
				{Name: "pool", Label: "ZFS Pool Name", Type: "text", Value: s.Pool, Required: true, Help: "A manually created ZFS pool; the filesystems are created on it automatically."},
				{Name: "tunnel_port", Label: "Tunnel Port", Type: "number", Value: itoa(s.TunnelPort), Inputmode: "numeric", Help: "A port forward opened on the network's tunnel server."},
				{Name: "bandwidth_limit", Label: "Replication bandwidth limit", Type: "number", Value: itoa64(s.BandwidthLimit), Inputmode: "numeric",
					Help: "Bytes per second this server pulls from the master at most; 0 for unlimited."},
				{Name: "boot_max_provisions", Label: "New disks at once", Type: "number", Value: itoa(s.BootMaxProvisions), Inputmode: "numeric",
					Help: fmt.Sprintf("Admission control: devices beyond are sent to another server holding their version, or told to retry shortly; 0 for the default (%d).", wire.DefaultMaxProvisions)},
				{Name: "boot_max_logins", Label: "Devices logging in at once", Type: "number", Value: itoa(s.BootMaxLogins), Inputmode: "numeric",
					Help: fmt.Sprintf("Admission control: devices beyond are told to retry shortly; 0 for the default (%d).", wire.DefaultMaxLogins)},
			}
		},
		forms: func(r *rc, s *models.Server) []*formView {
			if s.Role == models.ServerMaster {
				return nil
			}
			// Refused (with what is missing) while the server lacks a verified copy of a
			// volume or version the network uses; the master becomes a slave.
			return []*formView{{ID: "promoted-", Heading: "Slave of the network's master", Action: fmt.Sprintf("/servers/%d/promote", s.ID), Submit: "Make this server the master"}}
		},
		create: storeCreate((*models.Store).CreateServer),
		update: storeSave((*models.Store).UpdateServer),
		del:    storeRemove((*models.Store).DeleteServer),
		details: func(r *rc, s *models.Server) []detail {
			status := serverStatus(s)
			return []detail{{Label: "Name", Value: s.Name}, {Label: "Network", Value: r.netName(s.NetworkID), Link: fmt.Sprintf("/networks/%d", s.NetworkID)},
				{Label: "Role", Value: s.Role}, {Label: "iSCSI IP", Value: s.IP}, {Label: "Replication IP", Value: s.ReplicationAddress()},
				{Label: "ZFS Pool Name", Value: s.Pool}, {Label: "Tunnel Port", Value: itoa(s.TunnelPort)},
				{Label: "Replication bandwidth limit", Value: bandwidthText(s.BandwidthLimit)},
				{Label: "Admission bounds", Value: fmt.Sprintf("%s new disks, %s devices logging in at once",
					boundText(s.BootMaxProvisions, wire.DefaultMaxProvisions), boundText(s.BootMaxLogins, wire.DefaultMaxLogins))},
				{Label: "Status", Value: status.Text, Badge: status.Badge},
				{Label: "Pool health", Value: orDash(s.PoolHealth)}, {Label: "Pool size / free", Value: fmt.Sprintf("%s / %s", bytesText(s.PoolSize), bytesText(s.PoolFree))},
				{Label: "Stats reported", Value: ago(s.StatsAt)},
				{Label: "Install", Pre: true, Value: fmt.Sprintf("install.sh -h %q -k server.key -n br0\n# server.key holds the key shown when the server was added (or a new one: the key icon)", r.c.Hostname())}}
		},
		sections: func(r *rc, s *models.Server) []section {
			return []section{chartsSection(r, s), statsSection(s)}
		},
	}
	return k.resource()
}

// boundText is an admission bound as the agent applies it (0: its default).
func boundText(n, def int) string {
	if n == 0 {
		return fmt.Sprintf("%d (default)", def)
	}
	return itoa(n)
}

func bandwidthText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return bytesText(n) + "/s"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func bytesText(n int64) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/wire.GiB)
}

func volumesRes() *resource {
	list, get := owned[models.Volume]("volume")
	k := &kind[models.Volume]{
		meta: meta{Name: "volumes", Title: "Volumes", Singular: "Volume", Icon: "volume", Object: "volume", Submit: "Add", Filter: true,
			Help: "Volumes are thin provisioned on the network's master pool. Start small and grow them later as needed."},
		columns: []string{"Alias", "Network", "Size (GiB)", "Maintenance", "State"},
		list:    list, get: get,
		id:    func(x *models.Volume) uint { return x.ID },
		label: func(x *models.Volume) string { return x.Alias },
		row: func(r *rc, v *models.Volume) []cell {
			return []cell{{Text: v.Alias, Link: fmt.Sprintf("/volumes/%d", v.ID)}, r.netCell(v.NetworkID), {Text: i64toa(v.SizeGiB)}, {Text: yesNo(v.Maintenance)}, stateBadge(v.State)}
		},
		fields: func(r *rc, o *models.Volume) []field {
			v := cmp.Or(o, &models.Volume{})
			size := ""
			if o != nil {
				size = i64toa(v.SizeGiB)
			}
			return []field{
				r.networkField(v.NetworkID, o == nil),
				{Name: "alias", Label: "Alias", Type: "text", Value: v.Alias, Required: true},
				{Name: "vol_size", Label: "Size (GiB)", Type: "number", Value: size, Required: true, Inputmode: "numeric", Help: "Thin provisioned; a volume can only grow."},
			}
		},
		create: storeCreate((*models.Store).CreateVolume),
		update: storeUpdate((*models.Store).UpdateVolume),
		del:    storeDelete((*models.Store).DeleteVolume),
		details: func(r *rc, v *models.Volume) []detail {
			maint := yesNo(v.Maintenance)
			if v.MaintenanceDeviceID != nil {
				maint += " (device " + r.objName("devices", v.MaintenanceDeviceID).Text + " boots the volume read-write)"
			}
			return []detail{{Label: "Alias", Value: v.Alias}, {Label: "Network", Value: r.netName(v.NetworkID), Link: fmt.Sprintf("/networks/%d", v.NetworkID)},
				{Label: "Size", Value: i64toa(v.SizeGiB) + " GiB"}, {Label: "Maintenance", Value: maint}, {Label: "State", Value: v.State, Badge: v.State}}
		},
		forms: func(r *rc, v *models.Volume) []*formView {
			if v.Maintenance {
				return []*formView{{ID: "maintenance-", Heading: "Maintenance", Action: fmt.Sprintf("/volumes/%d/maintenance/off", v.ID), Submit: "End maintenance"}}
			}
			if v.State != models.StateReady {
				return nil
			}
			devs := refOptions(r, v.NetworkID, "— choose a device —", func(d *models.Device) string { return orDash(d.Name) + " (" + d.MAC + ")" }, func(d *models.Device) uint { return d.ID })
			return []*formView{{ID: "maintenance-", Heading: "Maintenance", Action: fmt.Sprintf("/volumes/%d/maintenance", v.ID), Submit: "Start maintenance",
				Fields: []field{{Name: "device_id", Label: "Device that boots the volume read-write (to install the first OS)", Type: "select", Options: devs, Required: true}}}}
		},
	}
	return k.resource()
}

func vdisksRes() *resource {
	list, get := owned[models.VDisk]("vdisk")
	k := &kind[models.VDisk]{
		meta: meta{Name: "vdisks", Title: "VDisks", Singular: "VDisk", Icon: "volume", Object: "vdisk", Submit: "Add", Filter: true,
			Help: "A vdisk is a device's persistent data disk, its second disk (LUN 1): never reprovisioned, so data kept there survives new versions. Attach it to a device once it exists; it grows, never shrinks."},
		columns: []string{"Name", "Network", "Size (GiB)", "Device", "Server", "State"},
		list:    list, get: get,
		id:    func(x *models.VDisk) uint { return x.ID },
		label: func(x *models.VDisk) string { return x.Name },
		row: func(r *rc, v *models.VDisk) []cell {
			return []cell{{Text: v.Name, Link: fmt.Sprintf("/vdisks/%d", v.ID)}, r.netCell(v.NetworkID), {Text: i64toa(v.SizeGiB)},
				r.objName("devices", v.DeviceID), r.objName("servers", v.ServerID), stateBadge(v.State)}
		},
		fields: func(r *rc, o *models.VDisk) []field {
			v := cmp.Or(o, &models.VDisk{})
			size := ""
			if o != nil {
				size = i64toa(v.SizeGiB)
			}
			fs := []field{
				r.networkField(v.NetworkID, o == nil),
				{Name: "name", Label: "Name", Type: "text", Value: v.Name, Required: true},
				{Name: "size", Label: "Size (GiB)", Type: "number", Value: size, Required: true, Inputmode: "numeric", Help: "Sparse; a vdisk can only grow."},
			}
			if o != nil {
				devs := refOptions(r, v.NetworkID, "— detached —", func(d *models.Device) string { return orDash(d.Name) + " (" + d.MAC + ")" }, func(d *models.Device) uint { return d.ID })
				fs = append(fs, field{Name: "device_id", Label: "Device", Type: "select", Value: ptrString(v.DeviceID), Options: devs,
					Help: "Its target serves the vdisk as LUN 1. Moving it is refused while the device it leaves is booted."})
			}
			return fs
		},
		create: storeCreate((*models.Store).CreateVDisk),
		update: storeUpdate((*models.Store).UpdateVDisk),
		del:    storeDelete((*models.Store).DeleteVDisk),
		details: func(r *rc, v *models.VDisk) []detail {
			return []detail{{Label: "Name", Value: v.Name}, {Label: "Network", Value: r.netName(v.NetworkID), Link: fmt.Sprintf("/networks/%d", v.NetworkID)},
				{Label: "Size", Value: i64toa(v.SizeGiB) + " GiB"}, {Label: "Device", Value: r.objName("devices", v.DeviceID).Text},
				{Label: "Server", Value: r.objName("servers", v.ServerID).Text}, {Label: "State", Value: v.State, Badge: v.State}}
		},
	}
	return k.resource()
}

func ctemplatesRes() *resource {
	list, get := owned[models.CTemplate]("ctemplate")
	k := &kind[models.CTemplate]{
		meta: meta{Name: "ctemplates", Title: "Container templates", Singular: "Container template", Icon: "volume", Object: "ctemplate", Submit: "Add", Filter: true,
			Help: "A container template is a root file system on the network's master; each upload of a tarball (checked by its SHA-256) is a new version that containers are cloned from, replicated to the network's other servers."},
		columns: []string{"Name", "Network", "Version", "Server", "State"},
		list:    list, get: get,
		id:    func(x *models.CTemplate) uint { return x.ID },
		label: func(x *models.CTemplate) string { return x.Name },
		row: func(r *rc, t *models.CTemplate) []cell {
			return []cell{{Text: t.Name, Link: fmt.Sprintf("/ctemplates/%d", t.ID)}, r.netCell(t.NetworkID), {Text: itoa(t.Version)},
				r.objName("servers", t.ServerID), stateBadge(t.State)}
		},
		fields: func(r *rc, o *models.CTemplate) []field {
			t := cmp.Or(o, &models.CTemplate{})
			fs := []field{r.networkField(t.NetworkID, o == nil), {Name: "name", Label: "Name", Type: "text", Value: t.Name, Required: true}}
			if o != nil {
				return fs // built or uploaded: chosen once
			}
			return append(fs, field{Name: "debootstrap", Label: "Build with debootstrap (suite)", Type: "text", OmitEmpty: true,
				Help: "A suite such as bookworm: version 1 is built on the master by debootstrap from the server's own apt sources. Empty: upload the versions."})
		},
		create: storeCreate((*models.Store).CreateCTemplate),
		update: storeSave((*models.Store).UpdateCTemplate),
		del:    storeDelete((*models.Store).DeleteCTemplate),
		details: func(r *rc, t *models.CTemplate) []detail {
			return []detail{{Label: "Name", Value: t.Name}, {Label: "Network", Value: r.netName(t.NetworkID), Link: fmt.Sprintf("/networks/%d", t.NetworkID)},
				{Label: "Version", Value: itoa(t.Version)}, {Label: "SHA-256", Value: orDash(t.SHA256)},
				{Label: "Server", Value: r.objName("servers", t.ServerID).Text}, {Label: "State", Value: t.State, Badge: t.State}}
		},
		sections: func(r *rc, t *models.CTemplate) []section {
			return []section{{Title: "Upload a version", Note: fmt.Sprintf("Send a root file system tarball (tar or tar.gz) with its SHA-256: "+
				"curl -T rootfs.tar -H 'Authorization: Token token=\"…\"' '…/api/v0.9.2/ctemplates/%d/rootfs?sha256=$(sha256sum rootfs.tar | cut -c1-64)'. "+
				"It is streamed to the master, which keeps it as version %d only if the checksum matches.", t.ID, t.Version+1)}}
		},
	}
	return k.resource()
}

func containersRes() *resource {
	list, get := owned[models.Container]("container")
	k := &kind[models.Container]{
		meta: meta{Name: "containers", Title: "Containers", Singular: "Container", Icon: "device", Object: "container", Submit: "Add", Filter: true,
			Help: "A container is a clone of a container template's version, run on a storage server as a systemd-nspawn machine with its limits; autostart brings it up when the server boots."},
		columns: []string{"Name", "Network", "Template", "Version", "Server", "Memory (MiB)", "Autostart", "State"},
		list:    list, get: get,
		id:    func(x *models.Container) uint { return x.ID },
		label: func(x *models.Container) string { return x.Name },
		row: func(r *rc, c *models.Container) []cell {
			return []cell{{Text: c.Name, Link: fmt.Sprintf("/containers/%d", c.ID)}, r.netCell(c.NetworkID), r.objName("ctemplates", &c.CTemplateID),
				{Text: itoa(c.CTemplateVersion)}, r.objName("servers", c.ServerID), {Text: limitText(c.MemoryMB)}, {Text: btoa(c.Autostart)}, stateBadge(c.State)}
		},
		actions: func(r *rc, c *models.Container) []action {
			if c.State != models.StateReady {
				return nil
			}
			var out []action
			for _, a := range models.ContainerActions {
				act := action{Label: strings.ToUpper(a[:1]) + a[1:] + " " + c.Name, Icon: "operations", Post: fmt.Sprintf("/containers/%d/%s", c.ID, a)}
				if a == "kill" {
					act.Confirm = "Kill every process of " + c.Name + " at once?"
				}
				out = append(out, act)
			}
			return append(out, action{Label: "Rebase " + c.Name + " onto its template's newest version", Icon: "operations",
				Post: fmt.Sprintf("/containers/%d/rebase", c.ID), Confirm: "Replace the root file system of " + c.Name + " by a new clone of its template's newest version? The current one goes to the erator."})
		},
		fields: func(r *rc, o *models.Container) []field {
			c := cmp.Or(o, &models.Container{})
			fs := []field{r.networkField(c.NetworkID, o == nil), {Name: "name", Label: "Name", Type: "text", Value: c.Name, Required: true}}
			if o != nil {
				return fs // the rest is fixed once made
			}
			tpls := refOptions(r, 0, "", func(t *models.CTemplate) string { return fmt.Sprintf("%s (v%d)", t.Name, t.Version) }, func(t *models.CTemplate) uint { return t.ID })
			return append(fs,
				field{Name: "ctemplate_id", Label: "Template", Type: "select", Options: tpls, Required: true},
				field{Name: "ctemplate_version", Label: "Version", Type: "number", Inputmode: "numeric", Help: "Empty: the template's newest."},
				field{Name: "memory_mb", Label: "Memory limit (MiB)", Type: "number", Inputmode: "numeric", Help: "Empty: none."},
				field{Name: "cpu_quota_percent", Label: "CPU quota (% of one CPU)", Type: "number", Inputmode: "numeric"},
				field{Name: "tasks_max", Label: "Tasks limit", Type: "number", Inputmode: "numeric"},
				field{Name: "disk_quota_gib", Label: "Disk quota (GiB)", Type: "number", Inputmode: "numeric", Help: "The clone's ZFS refquota."},
				field{Name: "autostart", Label: "Autostart", Type: "checkbox", Value: "false", Help: "Start it when its server boots."},
				field{Name: "command", Label: "Command", Type: "text", Help: "Run through /bin/sh -c; empty boots the template's own init."},
			)
		},
		create: storeCreate((*models.Store).CreateContainer),
		update: storeSave((*models.Store).UpdateContainer),
		del:    storeDelete((*models.Store).DeleteContainer),
		details: func(r *rc, c *models.Container) []detail {
			return []detail{{Label: "Name", Value: c.Name}, {Label: "Network", Value: r.netName(c.NetworkID), Link: fmt.Sprintf("/networks/%d", c.NetworkID)},
				{Label: "Template", Value: r.objName("ctemplates", &c.CTemplateID).Text, Link: fmt.Sprintf("/ctemplates/%d", c.CTemplateID)},
				{Label: "Version", Value: itoa(c.CTemplateVersion)}, {Label: "Server", Value: r.objName("servers", c.ServerID).Text},
				{Label: "Memory limit", Value: limitText(c.MemoryMB) + " MiB"}, {Label: "CPU quota", Value: limitText(c.CPUQuotaPercent) + " %"},
				{Label: "Tasks limit", Value: limitText(c.TasksMax)}, {Label: "Disk quota", Value: limitText(c.DiskQuotaGiB) + " GiB"},
				{Label: "Autostart", Value: btoa(c.Autostart)}, {Label: "Command", Value: cmp.Or(c.Command, "(its own init)")},
				{Label: "Unit", Value: fmt.Sprintf("cd-container-%d.service", c.ID)},
				{Label: "Status", Value: "live from its server", Link: fmt.Sprintf("/api/v0.9.2/containers/%d/status.json", c.ID)},
				{Label: "State", Value: c.State, Badge: c.State}}
		},
	}
	return k.resource()
}

func (r *rc) versions(groupID uint) []models.GroupVersion {
	vs, err := r.s.ListVersions(r.ctx, r.a, groupID)
	if err != nil {
		return nil
	}
	return vs
}

// assigned is the version a group's devices boot: pinned, or the newest ready one.
func (r *rc) assigned(g *models.Group) string {
	var ready []models.GroupVersion
	for _, v := range r.versions(g.ID) {
		if v.State == models.StateReady {
			ready = append(ready, v)
		}
	}
	v := models.AssignedVersion(g, ready)
	switch {
	case v == nil:
		return "—"
	case g.AssignedVersionID != nil:
		return "v" + itoa(v.Number) + " (pinned)"
	}
	return "v" + itoa(v.Number) + " (newest)"
}

func versionNumber(vs []models.GroupVersion, id *uint) string {
	if id == nil {
		return "—"
	}
	for _, v := range vs {
		if v.ID == *id {
			return "v" + itoa(v.Number)
		}
	}
	return "#" + utoa(*id)
}

func groupsRes() *resource {
	list, get := owned[models.Group]("group")
	k := &kind[models.Group]{
		meta: meta{Name: "groups", Title: "Groups", Singular: "Group", Icon: "group", EditIcon: "properties", Object: "group", Submit: "Add", Filter: true,
			Help: "Groups are clones of volumes, where the OS is installed and maintained. Use the properties icon for Strict Versioning and Lazy Locks."},
		columns: []string{"Name", "Network", "Volume", "Strict Versioning", "Lazy Locks", "Assigned version", "Maintenance", "State"},
		list:    list, get: get,
		id:    func(x *models.Group) uint { return x.ID },
		label: func(x *models.Group) string { return x.Name },
		row: func(r *rc, g *models.Group) []cell {
			vid := g.VolumeID
			return []cell{{Text: g.Name, Link: fmt.Sprintf("/groups/%d", g.ID)}, r.netCell(g.NetworkID), r.objName("volumes", &vid),
				{Text: yesNo(g.StrictVersioning)}, {Text: yesNo(g.LazyLocks)}, {Text: r.assigned(g)},
				{Text: yesNo(g.Maintenance)}, stateBadge(g.State)}
		},
		fields: func(r *rc, g *models.Group) []field {
			if g == nil {
				return []field{
					r.networkField(0, true),
					{Name: "name", Label: "Name", Type: "text", Required: true},
					{Name: "volume_id", Label: "Volume", Type: "select", Required: true, Value: r.c.Query("volume_id"), Help: "The volume the group is cloned from (in the same network).",
						Options: r.volumeOptions()},
					{Name: "strict_versioning", Label: "Strict Versioning", Type: "checkbox", Value: "false", Help: strictVersioningHelp},
					{Name: "lazy_locks", Label: "Lazy Locks", Type: "checkbox", Value: "false", Help: lazyLocksHelp},
					assignWhenReplicated(false),
				}
			}
			return []field{
				{Name: "name", Label: "Name", Type: "text", Value: g.Name, Required: true},
				{Name: "strict_versioning", Label: "Strict Versioning", Type: "checkbox", Value: btoa(g.StrictVersioning), Help: strictVersioningHelp},
				{Name: "lazy_locks", Label: "Lazy Locks", Type: "checkbox", Value: btoa(g.LazyLocks), Help: lazyLocksHelp},
				assignWhenReplicated(g.AssignWhenReplicated),
			}
		},
		forms: func(r *rc, g *models.Group) []*formView {
			var forms []*formView
			if g.State == models.StateReady {
				forms = append(forms, &formView{ID: "published-", Heading: "Publish", Action: fmt.Sprintf("/groups/%d/publish", g.ID), Submit: "Publish the next version",
					Fields: []field{{Name: "note", Label: "Note", Type: "text", OmitEmpty: true, Help: "What changed in this version (optional)."}}})
			}
			vopts := []option{{Value: "0", Label: "Follow the newest version"}}
			for _, v := range r.versions(g.ID) {
				if v.State == models.StateReady {
					vopts = append(vopts, option{Value: itoa(v.Number), Label: strings.TrimSpace("v" + itoa(v.Number) + " " + v.Note)})
				}
			}
			cur := "0"
			if g.AssignedVersionID != nil {
				cur = strings.TrimPrefix(versionNumber(r.versions(g.ID), g.AssignedVersionID), "v")
			}
			forms = append(forms, &formView{ID: "assigned-", Heading: "Assigned version", Action: fmt.Sprintf("/groups/%d/assign", g.ID), Submit: "Assign",
				Fields: []field{{Name: "version", Label: "Version devices boot", Type: "select", Value: cur, Options: vopts,
					Help: "With Strict Versioning, devices boot this version only."}}})
			if g.Maintenance {
				forms = append(forms, &formView{ID: "maintenance-", Heading: "Maintenance", Action: fmt.Sprintf("/groups/%d/maintenance/off", g.ID), Submit: "End maintenance"})
			} else {
				devs := refOptions(r, g.NetworkID, "— choose a device —", func(d *models.Device) string { return orDash(d.Name) + " (" + d.MAC + ")" }, func(d *models.Device) uint { return d.ID })
				forms = append(forms, &formView{ID: "maintenance-", Heading: "Maintenance", Action: fmt.Sprintf("/groups/%d/maintenance", g.ID), Submit: "Start maintenance",
					Fields: []field{{Name: "device_id", Label: "Device that boots the group head read-write", Type: "select", Options: devs, Required: true}}})
			}
			return forms
		},
		create: storeCreate((*models.Store).CreateGroup),
		update: storeSave((*models.Store).UpdateGroup),
		del:    storeDelete((*models.Store).DeleteGroup),
		details: func(r *rc, g *models.Group) []detail {
			vid := g.VolumeID
			vol := r.objName("volumes", &vid)
			maint := yesNo(g.Maintenance)
			if g.MaintenanceDeviceID != nil {
				maint += " (device " + r.objName("devices", g.MaintenanceDeviceID).Text + " boots the group head read-write)"
			}
			return []detail{{Label: "Name", Value: g.Name}, {Label: "Network", Value: r.netName(g.NetworkID), Link: fmt.Sprintf("/networks/%d", g.NetworkID)},
				{Label: "Volume", Value: vol.Text, Link: vol.Link}, {Label: "Strict Versioning", Value: yesNo(g.StrictVersioning)},
				{Label: "Lazy Locks", Value: yesNo(g.LazyLocks)}, {Label: "Assigned version", Value: r.assigned(g)},
				{Label: "Assign only when every server holds it", Value: yesNo(g.AssignWhenReplicated)},
				{Label: "Pending version", Value: versionNumber(r.versions(g.ID), g.PendingVersionID)},
				{Label: "Maintenance", Value: maint}, {Label: "State", Value: g.State, Badge: g.State}}
		},
		sections: func(r *rc, g *models.Group) []section {
			s := section{Title: "Versions", Columns: []string{"Version", "State", "Note", "Created", "Boots", "Came up", "Time to up p50 / p95"},
				Note: "Publishing snapshots the group head as the next version, on the master and then on every server; its progress shows under Operations below. " +
					"Boots count each device's latest boot of the version; came up is the share of the decided ones (up, failed, unknown) that came up."}
			for _, v := range r.versions(g.ID) {
				s.Rows = append(s.Rows, append([]cell{{Text: "v" + itoa(v.Number)}, stateBadge(v.State), {Text: v.Note}, {Text: ago(&v.CreatedAt)}}, r.versionBootCells(&v)...))
			}
			if len(s.Rows) == 0 {
				s.Note = "No published version yet: devices cannot boot this group until one is published. " + s.Note
			}
			return append([]section{s}, r.complianceSections(g)...)
		},
	}
	return k.resource()
}

// versionBootCells are how devices came up on version v: boots, success rate, p50 / p95.
func (r *rc) versionBootCells(v *models.GroupVersion) []cell {
	vb, err := r.s.VersionBoots(r.ctx, r.a, v.ID, time.Time{})
	if err != nil {
		return []cell{{Text: "?"}, {Text: "?"}, {Text: "?"}}
	}
	if vb.Boots == 0 {
		return []cell{{Text: "0"}, {Text: "—"}, {Text: "—"}}
	}
	boots := itoa(vb.Boots)
	if vb.Pending > 0 {
		boots += " (" + itoa(vb.Pending) + " watched)"
	}
	rate, times := cell{Text: "—"}, "—"
	if decided := vb.Up + vb.Failed + vb.Unknown; decided > 0 {
		rate = cell{Text: itoa(int(vb.SuccessRate*100+0.5)) + "% (" + itoa(vb.Up) + " of " + itoa(decided) + ")", Badge: "ok"}
		if vb.Up < decided {
			rate.Badge = "bad"
		}
	}
	if vb.Up > 0 {
		times = msText(vb.P50MS) + " / " + msText(vb.P95MS)
	}
	return []cell{{Text: boots}, rate, {Text: times}}
}

func assignWhenReplicated(on bool) field {
	return field{Name: "assign_when_replicated", Label: "Assign only when every server holds it", Type: "checkbox", Value: btoa(on),
		Help: "A version assigned (or published, when following the newest) becomes the group's pending version until every server of the network has received it."}
}

// complianceSections are a group's compliance view (models.Store.GroupComplianceView):
// where each version is, and each device's standing.
func (r *rc) complianceSections(g *models.Group) []section {
	view, err := r.s.GroupComplianceView(r.ctx, r.a, g.ID)
	if err != nil {
		return nil
	}
	repl := section{Title: "Compliance: versions on servers", Columns: []string{"Version", "Held by", "Receiving", "Not yet"},
		Note: "A version counts on a server once the guid it received matches the master's. Lag is the time since the version was published."}
	for i := len(view.Versions) - 1; i >= 0; i-- {
		v := view.Versions[i]
		var held, recv, missing []string
		for _, h := range v.Holders {
			held = append(held, fmt.Sprintf("%s (%s, %s)", h.Server, h.Role, ago(h.Since)))
		}
		for _, x := range v.Receiving {
			recv = append(recv, fmt.Sprintf("%s: %d%% %s, lag %s", x.Server, x.Percent, x.Step, time.Duration(x.LagSeconds*int64(time.Second)).String()))
		}
		for _, m := range v.Missing {
			missing = append(missing, m.Server)
		}
		label := "v" + itoa(v.Number)
		switch v.Number {
		case view.Assigned:
			label += " (assigned)"
		case view.Pending:
			label += " (pending)"
		}
		repl.Rows = append(repl.Rows, []cell{{Text: label}, {Text: orDash(strings.Join(held, ", "))}, {Text: orDash(strings.Join(recv, ", "))},
			{Text: orDash(strings.Join(missing, ", "))}})
	}
	devs := section{Title: "Compliance: devices", Columns: []string{"Device", "Assigned", "Clone", "Booted", "Server", "Last boot", "Compliance"}}
	for _, c := range view.Devices {
		id := c.DeviceID
		devs.Rows = append(devs.Rows, []cell{r.objName("devices", &id), {Text: vText(c.Assigned)}, {Text: vText(c.Clone)}, {Text: vText(c.Booted)},
			{Text: orDash(c.Server)}, {Text: ago(c.LastBootAt)}, complianceCell(c, true)})
	}
	if len(devs.Rows) == 0 {
		devs.Note = "No device in this group yet."
	}
	return []section{repl, devs}
}

func (r *rc) volumeOptions() []option {
	opts := []option{{Value: "", Label: "— choose a volume —"}}
	vs, _, err := models.ListOwned[models.Volume](r.ctx, r.s, r.a, all, 0)
	if err != nil {
		return opts
	}
	for _, v := range vs {
		if v.State == models.StatePending || v.State == models.StateReady {
			opts = append(opts, option{Value: utoa(v.ID), Label: r.netName(v.NetworkID) + " / " + v.Alias})
		}
	}
	return opts
}

// compliance is a device's standing in its group, from models.Store.GroupCompliance (the
// boot path's own rule), read once per group per request.
func (r *rc) compliance(d *models.Device) (models.Compliance, bool) {
	if d.GroupID == nil {
		return models.Compliance{}, false
	}
	if r.comp == nil {
		r.comp = map[uint]map[uint]models.Compliance{}
	}
	rows, ok := r.comp[*d.GroupID]
	if !ok {
		rows = map[uint]models.Compliance{}
		list, err := r.s.GroupCompliance(r.ctx, r.a, *d.GroupID)
		if err == nil {
			for _, c := range list {
				rows[c.DeviceID] = c
			}
		}
		r.comp[*d.GroupID] = rows
	}
	c, ok := rows[d.ID]
	return c, ok
}

func vText(n int) string {
	if n == 0 {
		return "—"
	}
	return "v" + itoa(n)
}

func complianceCell(c models.Compliance, ok bool) cell {
	switch {
	case !ok:
		return cell{Text: "no group", Badge: "pending"}
	case c.Assigned == 0:
		return cell{Text: "no version yet", Badge: "pending"}
	case c.Clone == 0 && c.Booted == 0:
		return cell{Text: "not booted yet", Badge: "pending"} // it gets its clone at first boot
	case !c.Compliant:
		return cell{Text: "out of date", Badge: "bad"}
	}
	return cell{Text: "compliant", Badge: "ok"}
}

func devicesRes() *resource {
	list, get := owned[models.Device]("device")
	k := &kind[models.Device]{
		meta: meta{Name: "devices", Title: "Devices", Singular: "Device", Icon: "device", Object: "device", Submit: "Add", Filter: true, Bulk: true,
			Help: "Devices register when they netboot into the network's default group; a locked device keeps its disk across reprovisioning."},
		columns: []string{"Name", "MAC", "Network", "Group", "Assigned version", "Clone version", "Booted version", "Compliance", "Lock"},
		list:    list, get: get,
		id:    func(x *models.Device) uint { return x.ID },
		label: func(d *models.Device) string { return cmp.Or(d.Name, d.MAC) },
		row: func(r *rc, d *models.Device) []cell {
			c, ok := r.compliance(d)
			lock := cell{Text: "unlocked", Badge: "pending"}
			if d.Locked {
				lock = cell{Text: "locked", Badge: "ok"}
			}
			return []cell{{Text: orDash(d.Name), Link: fmt.Sprintf("/devices/%d", d.ID)}, {Text: d.MAC}, r.netCell(d.NetworkID), r.objName("groups", d.GroupID),
				{Text: vText(c.Assigned)}, {Text: vText(c.Clone)}, {Text: vText(c.Booted)}, complianceCell(c, ok), lock}
		},
		actions: func(r *rc, d *models.Device) []action {
			name := cmp.Or(d.Name, d.MAC)
			if d.Locked {
				return []action{{Label: "Unlock " + name, Icon: "unlock", Post: fmt.Sprintf("/devices/%d/unlock", d.ID)}}
			}
			return []action{{Label: "Lock " + name, Icon: "lock", Post: fmt.Sprintf("/devices/%d/lock", d.ID)}}
		},
		fields: func(r *rc, o *models.Device) []field {
			d := cmp.Or(o, &models.Device{})
			nid := d.NetworkID
			if o == nil {
				nid = 0
			}
			groups := r.groupOptions(nid)
			menus := []option{{Value: "", Label: "— network default —"}}
			if nid != 0 {
				menus = refOptions(r, nid, "— network default —", func(m *models.Menu) string { return m.Name }, func(m *models.Menu) uint { return m.ID })
			}
			return []field{
				r.networkField(d.NetworkID, o == nil),
				{Name: "mac", Label: "MAC address", Type: "text", Value: d.MAC, Required: o == nil, Disabled: o != nil, Placeholder: "52:54:00:12:34:56"},
				{Name: "name", Label: "Name", Type: "text", Value: d.Name, OmitEmpty: true},
				{Name: "uuid", Label: "SMBIOS UUID", Type: "text", Value: d.UUID, OmitEmpty: true, Disabled: d.UUID != "", Placeholder: "4c4c4544-0042-3510-8052-b4c04f4e3332",
					Help: "Optional: set it to admit the machine's installer (initiator iqn.2010-04.org.ipxe:<uuid>) to a maintenance target before its first boot; otherwise its first boot records it."},
				{Name: "group_id", Label: "Group", Type: "select", Value: ptrString(d.GroupID), Options: groups},
				{Name: "menu_id", Label: "Menu", Type: "select", Value: ptrString(d.MenuID), Options: menus, Disabled: o == nil},
				{Name: "locked", Label: "Locked", Type: "checkbox", Value: btoa(d.Locked), Help: "A locked device keeps its own disk when the group's version changes."},
			}
		},
		create: storeCreate((*models.Store).CreateDevice),
		update: storeUpdate((*models.Store).UpdateDevice),
		del:    storeDelete((*models.Store).DeleteDevice),
		details: func(r *rc, d *models.Device) []detail {
			c, ok := r.compliance(d)
			gc := r.objName("groups", d.GroupID)
			comp := complianceCell(c, ok)
			return []detail{{Label: "Name", Value: orDash(d.Name)}, {Label: "MAC", Value: d.MAC}, {Label: "UUID", Value: orDash(d.UUID)}, {Label: "Network", Value: r.netName(d.NetworkID), Link: fmt.Sprintf("/networks/%d", d.NetworkID)},
				{Label: "Group", Value: gc.Text, Link: gc.Link}, {Label: "Assigned version", Value: vText(c.Assigned)}, {Label: "Clone version", Value: vText(c.Clone)},
				{Label: "Booted version", Value: vText(c.Booted)}, {Label: "Compliance", Value: comp.Text, Badge: comp.Badge}, {Label: "Locked", Value: yesNo(d.Locked)}, {Label: "Last boot", Value: ago(d.LastBootAt)}}
		},
		sections: func(r *rc, d *models.Device) []section {
			return []section{r.bootHistorySection(d.ID)}
		},
	}
	return k.resource()
}

func (r *rc) groupOptions(nid uint) []option {
	return refOptions(r, nid, "— none —", func(g *models.Group) string { return r.netName(g.NetworkID) + " / " + g.Name }, func(g *models.Group) uint { return g.ID })
}

// withMenuRows makes a menu create read the item editor's rows.
func withMenuRows(f func(r *rc, v url.Values, fs []field) (*models.Created, error)) func(r *rc, v url.Values, fs []field) (*models.Created, error) {
	return func(r *rc, v url.Values, fs []field) (*models.Created, error) { return f(r, menuRows(v), fs) }
}

func menusRes() *resource {
	list, get := owned[models.Menu]("menu")
	k := &kind[models.Menu]{
		meta: meta{Name: "menus", Title: "Menus", Singular: "Menu", Icon: "menu", Submit: "Add", Filter: true,
			Help: "iPXE menus offered to a network's devices at boot."},
		columns: []string{"Name", "Network", "Items"},
		list:    list, get: get,
		id:    func(x *models.Menu) uint { return x.ID },
		label: func(x *models.Menu) string { return x.Name },
		row: func(r *rc, m *models.Menu) []cell {
			return []cell{{Text: m.Name, Link: fmt.Sprintf("/menus/%d", m.ID)}, r.netCell(m.NetworkID), {Text: itoa(len(m.View().Items))}}
		},
		fields: func(r *rc, o *models.Menu) []field {
			m := cmp.Or(o, &models.Menu{Items: "[]"})
			return []field{
				r.networkField(m.NetworkID, o == nil),
				{Name: "name", Label: "Name", Type: "text", Value: m.Name, Required: true},
				{Name: "items", Label: "Items", Type: "menuitems", Rows: menuItemRows(m.View().Items), Options: r.groupOptions(m.NetworkID),
					Help: "One row per entry, in the order the menu shows them: a group boots that group; local boots the device's own disk; chain loads another iPXE script from its URL. Leave a row empty to remove it; save to get more empty rows."},
			}
		},
		create: withMenuRows(storeCreate(func(s *models.Store, ctx context.Context, a *models.Actor, in *models.MenuInput) (*models.Created, error) {
			c, err := s.CreateMenu(ctx, a, in)
			if err == nil {
				// The API answers with the menu's view (its items parsed); the page wants the menu.
				c.Object = &c.Object.(*models.MenuView).Menu
			}
			return c, err
		})),
		update: func(r *rc, id uint, v url.Values, fs []field) (*models.Created, error) {
			return storeSave((*models.Store).UpdateMenu)(r, id, menuRows(v), fs)
		},
		del: storeRemove((*models.Store).DeleteMenu),
		details: func(r *rc, m *models.Menu) []detail {
			return []detail{{Label: "Name", Value: m.Name}, {Label: "Network", Value: r.netName(m.NetworkID), Link: fmt.Sprintf("/networks/%d", m.NetworkID)}}
		},
		sections: func(r *rc, m *models.Menu) []section {
			s := section{Title: "Items", Columns: []string{"#", "Type", "Label", "Boots"}}
			for i, it := range m.View().Items {
				boots := cell{Text: "the device's own disk"}
				switch it.Type {
				case "group":
					g := it.GroupID
					boots = r.objName("groups", &g)
				case "chain":
					boots = cell{Text: it.URL}
				}
				s.Rows = append(s.Rows, []cell{{Text: itoa(i + 1)}, {Text: it.Type}, {Text: it.Label}, boots})
			}
			if len(s.Rows) == 0 {
				s.Note = "This menu has no items yet."
			}
			return []section{s}
		},
	}
	return k.resource()
}

// The guide's own words on a group's two properties, shown in full beside their
// checkboxes: what each risks (a reboot loop, lost data) is why an operator picks it.
const (
	strictVersioningHelp = "Strict Versioning will ensure all devices across all servers boot to the assigned version only. " +
		"If a server does not have the version, the device will attempt another server, until it finds an available image. " +
		"If it doesn't find the image on any servers (as in a satellite site with long replication times) it will remain in a \"reboot loop\" until it does. " +
		"If no image becomes available, the device will not boot. " +
		"If Strict Versioning is not enabled, the server will attempt to provision the device image from the latest available local snapshot. " +
		"This may be undesirable from a security perspective for certain updates; it may be desirable to boot devices to older snapshots " +
		"if site uptime is absolutely critical, or replication times are longer than acceptable downtime."
	lazyLocksHelp = "Lazy Locks are a companion property to Strict Versioning (available only with it). " +
		"With Lazy Locks, unlocked devices are not subjected to reprovisioning under Strict Versioning. " +
		"Without Lazy Locks, it is possible to lose data stored in unlocked devices. However, if unlocked devices store no critical data, " +
		"disabling Lazy Locks will enforce image version compliance across the entire group and simplify administration."
)

// bootResultCell is whether a boot came up, as its agent watched it: "—" for an answer
// that gave no disk, "watching" while the agent has not decided.
func bootResultCell(b models.BootHistory) cell {
	switch {
	case b.Outcome == models.BootOutcomeNotBooted:
		return cell{Text: "—"}
	case b.Result == models.BootResultPending:
		return cell{Text: "watching", Badge: "pending"}
	}
	c := cell{Text: b.Result, Badge: "bad"}
	switch b.Result {
	case models.BootResultUp:
		c.Badge = "ok"
	case models.BootResultUnknown:
		c.Badge = "pending"
	}
	if b.ResultReason != "" {
		c.Text += ": " + b.ResultReason
	}
	return c
}

// msText is a duration in milliseconds as a page shows it (12.3 s).
func msText(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) + " s"
}

// bootHistorySection is a device's latest boots as its agents reported them.
func (r *rc) bootHistorySection(deviceID uint) section {
	s := section{Title: "Boot history", Columns: []string{"When (UTC)", "Server", "Version", "Outcome", "Result", "Time to up"}}
	boots, err := r.s.DeviceBootHistory(r.ctx, r.a, deviceID, 50)
	if err != nil {
		s.Note = "The boot history could not be read."
		return s
	}
	servers := map[uint]cell{} // a device boots from few servers: each named once
	for _, b := range boots {
		srv := b.ServerID
		if _, ok := servers[srv]; !ok {
			servers[srv] = r.objName("servers", &srv)
		}
		version := "—"
		if b.Version > 0 {
			version = "v" + itoa(b.Version)
		}
		badge := "ok"
		if b.Outcome != models.BootOutcomeBooted {
			badge = "failed"
		}
		outcome := cell{Text: b.Outcome, Badge: badge}
		if b.Reason != "" {
			outcome.Text += ": " + b.Reason
		}
		result, upIn := bootResultCell(b), "—"
		if b.Result == models.BootResultUp {
			upIn = msText(b.UpMS)
		}
		s.Rows = append(s.Rows, []cell{{Text: b.CreatedAt.UTC().Format("2006-01-02 15:04:05")}, servers[srv], {Text: version}, outcome, result, {Text: upIn}})
	}
	if len(s.Rows) == 0 {
		s.Note = "This device has not booted yet."
	}
	return s
}
