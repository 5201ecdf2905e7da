package api

import (
	"context"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// BootRoutes are the user-facing routes of the boot path, for Handler.Extra:
//
//	POST   /groups/<id>/maintenance.json {"device_id"} -> the group; that device boots its head read-write
//	DELETE /groups/<id>/maintenance.json             -> the group, out of maintenance
//	POST   /volumes/<id>/maintenance.json {"device_id"} -> the volume; that device boots it read-write (first install)
//	DELETE /volumes/<id>/maintenance.json            -> the volume, out of maintenance
//	POST   /groups/<id>/assign.json      {"version"} -> the group, pinned to v<N> (0: follow the newest)
//	GET    /groups/<id>/compliance.json              -> per version, the servers holding it (since when) and
//	                                                    those receiving it; per device, assigned, clone and booted version
//	POST   /devices/<id>/restore.json    {"from"}    -> 202: the device's replaced disk back from the erator
func BootRoutes(store *models.Store) func(r fiber.Router) {
	return func(r fiber.Router) {
		r.Post("/groups/:id/maintenance.json", maintenanceRoute(true, store.SetMaintenance))
		r.Delete("/groups/:id/maintenance.json", maintenanceRoute(false, store.SetMaintenance))
		r.Post("/volumes/:id/maintenance.json", maintenanceRoute(true, store.SetVolumeMaintenance))
		r.Delete("/volumes/:id/maintenance.json", maintenanceRoute(false, store.SetVolumeMaintenance))
		r.Post("/groups/:id/assign.json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			var in models.AssignInput
			if err := models.DecodeJSON(c.Body(), &in); err != nil {
				return err
			}
			g, err := store.AssignVersion(c.UserContext(), actor(c), id, &in)
			if err != nil {
				return err
			}
			return c.JSON(g)
		})
		r.Post("/devices/:id/restore.json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			var in models.DeviceRestoreInput
			if len(c.Body()) > 0 {
				if err := models.DecodeJSON(c.Body(), &in); err != nil {
					return err
				}
			}
			res, err := store.RestoreDevice(c.UserContext(), actor(c), id, &in)
			if err != nil {
				return err
			}
			return sendCreated(c, "devices", res, fiber.StatusAccepted)
		})
		r.Get("/groups/:id/compliance.json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			view, err := store.GroupComplianceView(c.UserContext(), actor(c), id)
			if err != nil {
				return err
			}
			return c.JSON(view)
		})
	}
}

// maintenanceRoute turns a group's or a volume's maintenance on (POST {"device_id"}) or
// off (DELETE) through the store's set, answering the object.
func maintenanceRoute(on bool, set func(context.Context, *models.Actor, uint, bool, *models.MaintenanceInput) (*models.Created, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := idParam(c)
		if err != nil {
			return err
		}
		var in models.MaintenanceInput
		if on && len(c.Body()) > 0 {
			if err := models.DecodeJSON(c.Body(), &in); err != nil {
				return err
			}
		}
		res, err := set(c.UserContext(), actor(c), id, on, &in)
		if err != nil {
			return err
		}
		// Ending a maintenance answers 202 with the operation that removes the target.
		return sendCreated(c, "", res, fiber.StatusOK)
	}
}

// BootAgents serves the boot path's agent endpoints, authenticated with the server key
// like the other agent endpoints (Authorization: Bearer <key>):
//
//	POST /api/v0.9.2/agent/boot.json     wire.Query -> wire.Info (registers an unknown MAC)
//	POST /api/v0.9.2/agent/booted.json   [wire.Report] -> 204
//	GET  /api/v0.9.2/agent/exports.json  -> [wire.Export] this server should export
//	POST /api/v0.9.2/agent/clone.json    wire.ProvisionRequest -> 204 (a device's new clone)
//	GET  /api/v0.9.2/agent/server.json   -> wire.ServerInfo of the key's server (its iSCSI IP)
//	GET  /api/v0.9.2/agent/bootview.json?since=&net=&wait= -> wire.BootDelta (the agent's view; bootview.go)
//
// Mount it as an early mount, before the API's user authentication.
type BootAgents struct {
	Store *models.Store
	// StateTTL is how long a network's boot state (servers, groups, versions, menus) is
	// reused across boot requests (default 1 s): a boot storm costs one load per network
	// and second, and a publish or a group's new settings reach devices within it. The
	// device row itself is read at every request.
	StateTTL time.Duration
	// Lease is how long strict groups boot from an agent's view the panel has not
	// confirmed since (default 60 s), sent to the agents with their view.
	Lease time.Duration

	mu   sync.Mutex
	keys map[string]keyEntry
	nets map[uint]*netEntry

	vmu    sync.Mutex
	views  map[uint]*viewNet // the network part of the agents' view, by network
	pruned time.Time         // the change log's last pruning
}

type keyEntry struct {
	srv *models.Server
	at  time.Time
}

type netEntry struct {
	nb      *models.NetworkBoot
	at      time.Time
	loading chan struct{} // closed when a load in flight ends
}

// server authenticates an agent by its key, remembering the answer for a few seconds so a
// boot storm does not hash and look up the key hundreds of times.
func (b *BootAgents) server(c *fiber.Ctx, keys *Agents) (*models.Server, error) {
	h := c.Get(fiber.HeaderAuthorization)
	b.mu.Lock()
	e, ok := b.keys[h]
	b.mu.Unlock()
	if ok && time.Since(e.at) < 10*time.Second {
		return e.srv, nil
	}
	srv, err := keys.server(c)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.keys == nil || len(b.keys) > 10000 {
		b.keys = map[string]keyEntry{}
	}
	b.keys[h] = keyEntry{srv: srv, at: time.Now()}
	b.mu.Unlock()
	return srv, nil
}

// network returns the network's boot state, loading it at most once per StateTTL; callers
// that arrive during a load wait for it.
func (b *BootAgents) network(ctx context.Context, id uint) (*models.NetworkBoot, error) {
	ttl := b.StateTTL
	if ttl <= 0 {
		ttl = time.Second
	}
	for {
		b.mu.Lock()
		if b.nets == nil {
			b.nets = map[uint]*netEntry{}
		}
		e := b.nets[id]
		if e != nil && e.loading == nil && time.Since(e.at) < ttl {
			b.mu.Unlock()
			return e.nb, nil
		}
		if e != nil && e.loading != nil {
			wait := e.loading
			b.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ne := &netEntry{loading: make(chan struct{})}
		b.nets[id] = ne
		b.mu.Unlock()
		nb, err := models.LoadNetworkBoot(ctx, b.Store.DB, id)
		b.mu.Lock()
		if err != nil {
			delete(b.nets, id)
		} else {
			ne.nb, ne.at = nb, time.Now()
		}
		close(ne.loading)
		ne.loading = nil
		b.mu.Unlock()
		return nb, err
	}
}

// Mount registers the endpoints.
func (b *BootAgents) Mount(app *fiber.App, _ *models.Store) {
	keys := &Agents{Store: b.Store}
	app.Post(Prefix+wire.PathBoot, func(c *fiber.Ctx) error {
		srv, err := b.server(c, keys)
		if err != nil {
			return err
		}
		q, err := agentBody[wire.Query](c, "a boot query")
		if err != nil {
			return err
		}
		nb, err := b.network(c.UserContext(), srv.NetworkID)
		if err != nil {
			return err
		}
		st, err := models.BootLookup(c.UserContext(), b.Store.DB, srv.ID, nb, q.MAC, wire.NormalizeUUID(q.UUID), q.GroupID)
		if err != nil {
			return err
		}
		info := BootInfo(st)
		if st.Registered {
			if info.Device.Revision, err = models.DeviceBootRevision(c.UserContext(), b.Store.DB, srv.NetworkID, info.Device.ID); err != nil {
				return err
			}
		}
		return c.JSON(info)
	})
	app.Post(Prefix+wire.PathBooted, func(c *fiber.Ctx) error {
		srv, err := b.server(c, keys)
		if err != nil {
			return err
		}
		reps, err := agentBody[[]wire.Report](c, "a list of boot reports")
		if err != nil {
			return err
		}
		recs := make([]models.BootRecord, 0, len(reps))
		for _, r := range reps {
			recs = append(recs, models.BootRecord{DeviceID: r.DeviceID, GroupID: r.GroupID, Version: r.Version,
				Booted: r.Booted(), ServerID: srv.ID, Reason: r.Reason, Compliant: !r.NonCompliant,
				BootID: r.BootID, At: r.At, Result: r.Result, UpMS: r.UpMS, Why: r.Why})
		}
		if err := models.RecordBoots(c.UserContext(), b.Store.DB, srv.ID, recs); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
	app.Get(Prefix+wire.PathExports, func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		rows, err := models.DesiredExports(c.UserContext(), b.Store.DB, srv.ID)
		if err != nil {
			return err
		}
		out := make([]wire.Export, 0, len(rows))
		for _, r := range rows {
			out = append(out, wire.Export{Kind: r.Kind, ID: r.ID, NetworkID: r.NetworkID, UUID: r.UUID, VDiskID: r.VDiskID})
		}
		return c.JSON(out)
	})
	app.Get(Prefix+wire.PathBootView, func(c *fiber.Ctx) error { return b.bootView(c, keys) })
	app.Get(Prefix+wire.PathServer, func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		tunnel, err := models.TunnelEndpointFor(c.UserContext(), b.Store.DB, srv.NetworkID)
		if err != nil {
			return err
		}
		return c.JSON(wire.ServerInfo{ID: srv.ID, Name: srv.Name, IP: srv.IP, Tunnel: tunnel,
			MaxProvisions: srv.BootMaxProvisions, MaxLogins: srv.BootMaxLogins})
	})
	app.Post(Prefix+wire.PathClone, func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		r, err := agentBody[wire.ProvisionRequest](c, "a provision request")
		if err != nil {
			return err
		}
		v, err := models.VersionByNumber(c.UserContext(), b.Store.DB, r.GroupID, r.Version)
		if err != nil {
			return err
		}
		if err := models.RecordClone(c.UserContext(), b.Store.DB, srv.NetworkID, r.DeviceID, v.ID, srv.ID); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
}

// BootInfo turns the panel's view of a booting device into the agent's wire format.
func BootInfo(st *models.BootState) *wire.Info {
	info := &wire.Info{Registered: st.Registered, Message: st.Message, NewlyRegistered: st.New, Servers: []wire.ServerInfo{}}
	if st.Network.MasterServerID != nil {
		info.MasterServerID = *st.Network.MasterServerID
	}
	for _, s := range st.Servers {
		info.Servers = append(info.Servers, wire.ServerInfo{ID: s.ID, Name: s.Name, IP: s.IP})
	}
	if !st.Registered {
		return info
	}
	d := st.Device
	info.Device = wire.DeviceInfo{ID: d.ID, NetworkID: d.NetworkID, MAC: d.MAC, UUID: d.UUID, Locked: d.Locked}
	if st.Clone != nil {
		info.Device.CloneGroupID, info.Device.CloneVersion, info.Device.CloneVersionID = st.Clone.GroupID, st.Clone.Number, st.Clone.ID
		if d.ServerID != nil {
			info.Device.CloneServerID = *d.ServerID
		}
	}
	if st.Volume != nil {
		info.Volume = &wire.VolumeInfo{ID: st.Volume.ID}
	}
	if st.Menu != nil {
		info.Menu = menuInfo(st.Menu)
	}
	if g := st.Group; g != nil {
		info.Group = groupInfo(g, st.Versions, st.Holders, st.Assigned)
		info.Group.Canary = st.Canary
	}
	return info
}

// menuInfo is a menu in the wire format (shared by a boot answer and the agents' view).
func menuInfo(menu *models.Menu) *wire.MenuInfo {
	v := menu.View()
	m := &wire.MenuInfo{ID: menu.ID, Name: menu.Name, Entries: []wire.MenuEntry{}}
	for _, it := range v.Items {
		m.Entries = append(m.Entries, wire.MenuEntry{Type: it.Type, Label: it.Label, GroupID: it.GroupID, URL: it.URL})
	}
	return m
}

// groupInfo is a group with its ready versions in the wire format.
func groupInfo(g *models.Group, versions []models.GroupVersion, holders map[uint][]uint, assigned *models.GroupVersion) *wire.GroupInfo {
	gi := &wire.GroupInfo{ID: g.ID, Name: g.Name, Strict: g.StrictVersioning, Lazy: g.LazyLocks,
		Maintenance: g.Maintenance, Versions: []wire.VersionInfo{}}
	if g.MaintenanceDeviceID != nil {
		gi.MaintenanceDevice = *g.MaintenanceDeviceID
	}
	if assigned != nil {
		gi.Assigned = assigned.Number
	}
	for _, v := range versions {
		gi.Versions = append(gi.Versions, wire.VersionInfo{ID: v.ID, Number: v.Number, GUID: v.GUID, Servers: append([]uint{}, holders[v.ID]...)})
	}
	return gi
}
