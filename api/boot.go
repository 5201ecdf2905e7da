package api

import (
	"encoding/json"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// BootRoutes are the user-facing routes of the boot path, for Handler.Extra:
//
//	POST   /groups/<id>/maintenance.json {"device_id"} -> the group; that device boots its head read-write
//	DELETE /groups/<id>/maintenance.json             -> the group, out of maintenance
//	POST   /groups/<id>/assign.json      {"version"} -> the group, pinned to v<N> (0: follow the newest)
//	GET    /groups/<id>/compliance.json              -> each device's clone and booted version against the assigned one
func BootRoutes(store *models.Store) func(r fiber.Router) {
	return func(r fiber.Router) {
		maintenance := func(on bool) fiber.Handler {
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
				g, err := store.SetMaintenance(c.UserContext(), actor(c), id, on, &in)
				if err != nil {
					return err
				}
				return c.JSON(g)
			}
		}
		r.Post("/groups/:id/maintenance.json", maintenance(true))
		r.Delete("/groups/:id/maintenance.json", maintenance(false))
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
		r.Get("/groups/:id/compliance.json", func(c *fiber.Ctx) error {
			id, err := idParam(c)
			if err != nil {
				return err
			}
			rows, err := store.GroupCompliance(c.UserContext(), actor(c), id)
			if err != nil {
				return err
			}
			return c.JSON(rows)
		})
	}
}

// BootAgents serves the boot path's agent endpoints, authenticated with the server key
// like the other agent endpoints (Authorization: Bearer <key>):
//
//	POST /api/v0.9.2/agent/boot.json     boot.Query -> boot.Info (registers an unknown MAC)
//	POST /api/v0.9.2/agent/booted.json   [boot.Report] -> 204
//	GET  /api/v0.9.2/agent/exports.json  -> [boot.Export] this server should export
//	POST /api/v0.9.2/agent/clone.json    boot.ProvisionRequest -> 204 (a device's new clone)
//	GET  /api/v0.9.2/agent/server.json   -> boot.ServerInfo of the key's server (its iSCSI IP)
//
// Mount it as an early mount, before the API's user authentication.
type BootAgents struct {
	Store *models.Store
}

// Mount registers the endpoints.
func (b *BootAgents) Mount(app *fiber.App, _ *models.Store) {
	keys := &Agents{Store: b.Store}
	app.Post(Prefix+"/agent/boot.json", func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		var q boot.Query
		if err := json.Unmarshal(c.Body(), &q); err != nil {
			return &models.MalformedError{Msg: "body must be a boot query: " + err.Error()}
		}
		st, err := models.BootLookup(c.UserContext(), b.Store.DB, srv.ID, q.MAC, boot.NormalizeUUID(q.UUID), q.GroupID)
		if err != nil {
			return err
		}
		return c.JSON(BootInfo(st))
	})
	app.Post(Prefix+"/agent/booted.json", func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		var reps []boot.Report
		if err := json.Unmarshal(c.Body(), &reps); err != nil {
			return &models.MalformedError{Msg: "body must be a list of boot reports: " + err.Error()}
		}
		recs := make([]models.BootRecord, 0, len(reps))
		for _, r := range reps {
			recs = append(recs, models.BootRecord{DeviceID: r.DeviceID, GroupID: r.GroupID, Version: r.Version,
				Booted: r.Action == boot.BootClone || r.Action == boot.Provision, ServerID: srv.ID, Reason: r.Reason, Compliant: !r.NonCompliant})
		}
		if err := models.RecordBoots(c.UserContext(), b.Store.DB, srv.ID, recs); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	})
	app.Get(Prefix+"/agent/exports.json", func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		rows, err := models.DesiredExports(c.UserContext(), b.Store.DB, srv.ID)
		if err != nil {
			return err
		}
		out := make([]boot.Export, 0, len(rows))
		for _, r := range rows {
			out = append(out, boot.Export{Kind: r.Kind, ID: r.ID, NetworkID: r.NetworkID, UUID: r.UUID})
		}
		return c.JSON(out)
	})
	app.Get(Prefix+"/agent/server.json", func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		return c.JSON(boot.ServerInfo{ID: srv.ID, Name: srv.Name, IP: srv.IP})
	})
	app.Post(Prefix+"/agent/clone.json", func(c *fiber.Ctx) error {
		srv, err := keys.server(c)
		if err != nil {
			return err
		}
		var r boot.ProvisionRequest
		if err := json.Unmarshal(c.Body(), &r); err != nil {
			return &models.MalformedError{Msg: "body must be a provision request: " + err.Error()}
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
func BootInfo(st *models.BootState) *boot.Info {
	info := &boot.Info{Registered: st.Registered, Message: st.Message, NewlyRegistered: st.New, Servers: []boot.ServerInfo{}}
	if st.Network.MasterServerID != nil {
		info.MasterServerID = *st.Network.MasterServerID
	}
	for _, s := range st.Servers {
		info.Servers = append(info.Servers, boot.ServerInfo{ID: s.ID, Name: s.Name, IP: s.IP})
	}
	if !st.Registered {
		return info
	}
	d := st.Device
	info.Device = boot.DeviceInfo{ID: d.ID, NetworkID: d.NetworkID, MAC: d.MAC, UUID: d.UUID, Locked: d.Locked}
	if st.Clone != nil {
		info.Device.CloneGroupID, info.Device.CloneVersion, info.Device.CloneVersionID = st.Clone.GroupID, st.Clone.Number, st.Clone.ID
		if d.ServerID != nil {
			info.Device.CloneServerID = *d.ServerID
		}
	}
	if st.Menu != nil {
		v := st.Menu.View()
		m := &boot.MenuInfo{ID: st.Menu.ID, Name: st.Menu.Name, Entries: []boot.MenuEntry{}}
		for _, it := range v.Items {
			m.Entries = append(m.Entries, boot.MenuEntry{Type: it.Type, Label: it.Label, GroupID: it.GroupID, URL: it.URL})
		}
		info.Menu = m
	}
	if g := st.Group; g != nil {
		gi := &boot.GroupInfo{ID: g.ID, Name: g.Name, Strict: g.StrictVersioning, Lazy: g.LazyLocks,
			Maintenance: g.Maintenance, Versions: []boot.VersionInfo{}}
		if g.MaintenanceDeviceID != nil {
			gi.MaintenanceDevice = *g.MaintenanceDeviceID
		}
		if st.Assigned != nil {
			gi.Assigned = st.Assigned.Number
		}
		for _, v := range st.Versions {
			gi.Versions = append(gi.Versions, boot.VersionInfo{ID: v.ID, Number: v.Number, GUID: v.GUID, Servers: append([]uint{}, st.Holders[v.ID]...)})
		}
		info.Group = gi
	}
	return info
}
