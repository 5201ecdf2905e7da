package webui

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// bulkBar is the Devices list's selection bar: a box that selects every row shown, the
// group a move goes to, and one button per bulk action (models.BulkDevices).
type bulkBar struct {
	Groups  []option
	Actions []bulkButton
}

// bulkButton is one bulk action's button; Confirm asks before it is sent.
type bulkButton struct {
	Action, Label, Icon, Confirm string
}

func newBulkBar(r *rc, nid uint) *bulkBar {
	groups := r.groupOptions(nid)
	groups[0].Label = "— no group —"
	return &bulkBar{Groups: groups, Actions: []bulkButton{
		{Action: models.BulkLock, Label: "Lock", Icon: "lock"},
		{Action: models.BulkUnlock, Label: "Unlock", Icon: "unlock"},
		{Action: models.BulkMove, Label: "Move to group", Icon: "group"},
		{Action: models.BulkRestore, Label: "Restore disks", Icon: "refresh",
			Confirm: "Put each selected device's replaced disk back from the erator? Their current disks go to the erator."},
		{Action: models.BulkDelete, Label: "Delete", Icon: "trash",
			Confirm: "Delete the selected devices? Their disks go to the erator."},
	}}
}

// deviceFilters are the devices list's filters: group and server (of the network shown),
// lock and compliance with the group's assigned version (models' "compliant" filter).
func deviceFilters(r *rc, nid uint) []listFilter {
	groups := r.groupOptions(nid)
	groups[0].Label = "All groups"
	servers := refOptions(r, nid, "All servers", func(s *models.Server) string { return r.netName(s.NetworkID) + " / " + s.Name }, func(s *models.Server) uint { return s.ID })
	yesNo := func(all, yes, no string) []option {
		return []option{{Value: "", Label: all}, {Value: "true", Label: yes}, {Value: "false", Label: no}}
	}
	return []listFilter{
		{Key: "group_id", Label: "Group", Options: groups},
		{Key: "server_id", Label: "Server", Options: servers},
		{Key: "locked", Label: "Lock", Options: yesNo("Locked or not", "Locked", "Unlocked")},
		{Key: "compliant", Label: "Version", Options: yesNo("Any version", "On the assigned version", "Not on the assigned version")},
	}
}

// bulkDevices carries out the action the selection bar sent on the devices ticked, as one
// change (models.BulkDevices): with work after the commit, to its one operation's page
// (live progress, each device's outcome); otherwise back to the list as it was shown.
func (u *UI) bulkDevices(c *fiber.Ctx) error {
	r := u.rc(c)
	v := formValues(c)
	in := &models.DeviceBulkInput{}
	if a := v.Get("action"); a != "" {
		in.Action = &a
	}
	if ids := v["devices"]; len(ids) > 0 {
		refs := make([]models.DeviceRef, len(ids))
		for i, id := range ids {
			refs[i] = models.DeviceRef(id)
		}
		in.Devices = &refs
	} else {
		return models.Invalid("devices", "select at least one device (tick its row) first")
	}
	if in.Action != nil && *in.Action == models.BulkMove {
		g := strings.TrimSpace(v.Get("group_id"))
		var gid uint
		if g != "" {
			if _, err := fmt.Sscan(g, &gid); err != nil {
				return models.Invalid("group_id", "must be a group of the devices' network")
			}
		}
		in.GroupID = &gid
	}
	res, err := u.store.BulkDevices(r.ctx, r.a, in)
	if err != nil {
		return err
	}
	if res.Operation != nil {
		// What runs after the commit is one operation: its page shows it live, device by device.
		return c.Redirect(fmt.Sprintf("/operations/%d?notice=queued", res.Operation.ID), fiber.StatusSeeOther)
	}
	notice := "bulk-" + res.Action
	// Back to the list as it was (its filter, search, sort and page).
	back := url.Values{}
	if ref, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && ref.Path == "/devices" {
		back = ref.Query()
	}
	back.Set("notice", notice)
	return c.Redirect("/devices?"+back.Encode(), fiber.StatusSeeOther)
}
