package models

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// Bulk actions on devices (DeviceBulkInput.Action).
const (
	BulkLock    = "lock"
	BulkUnlock  = "unlock"
	BulkMove    = "move"
	BulkRestore = "restore"
	BulkDelete  = "delete"
)

// BulkActions lists the bulk actions, in the order the dashboard shows them.
var BulkActions = []string{BulkLock, BulkUnlock, BulkMove, BulkRestore, BulkDelete}

// MaxBulkDevices bounds one bulk action (a page of the dashboard's list is 50).
const MaxBulkDevices = 500

// DeviceRef names a device in a bulk action: its id (a JSON number or a string of
// digits), its name or its MAC.
type DeviceRef string

// UnmarshalJSON takes a number or a string.
func (r *DeviceRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = DeviceRef(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a device is named by its id, name or MAC")
	}
	*r = DeviceRef(n.String())
	return nil
}

// DeviceBulkInput is the body of a bulk action on devices.
type DeviceBulkInput struct {
	Action  *string      `field:"action"`
	Devices *[]DeviceRef `field:"devices,device_ids,ids"`
	// GroupID is the group a move puts the devices in (0: none).
	GroupID *uint `field:"group_id,group"`
}

// DeviceBulkItem is what a bulk action did to one device. State: "done" (changed),
// "queued" (an operation runs it, or a lock change waits behind a provisioning) or
// "failed" (Error says why; the device is as it was).
type DeviceBulkItem struct {
	ID          uint   `json:"id"`
	Name        string `json:"name"`
	MAC         string `json:"mac"`
	State       string `json:"state"`
	Error       string `json:"error,omitempty"`
	OperationID *uint  `json:"operation_id,omitempty"`

	lock bool // its lock is for its workflow to change
	boot bool // its boot state changed in the transaction (one boot revision for them all)
}

// DeviceBulkResult is the outcome of a bulk action, per device, in the order asked.
type DeviceBulkResult struct {
	Action  string           `json:"action"`
	GroupID *uint            `json:"group_id,omitempty"`
	Devices []DeviceBulkItem `json:"devices"`
	Failed  int              `json:"failed"`
	// Operations are the operations the action started (restore, delete of devices
	// with a disk), for the caller to follow.
	Operations []*Operation `json:"-"`
}

// BulkDevices carries out one action on several devices as one change: the devices are
// looked up among those the caller may see, and every check and row change happens in
// one transaction, so a device not visible (404 naming "devices"), a device the action
// cannot apply to or a group outside a device's network (422 or 409 naming the device)
// changes nothing at all. What runs after the commit goes the way the single action goes
// (a lock change through each device's workflow; a restore or a delete's disk through a
// device operation) and is reported per device; a lock change the workflow engine did not
// take is "failed" for that device, whose lock is unchanged.
func (s *Store) BulkDevices(ctx context.Context, a *Actor, in *DeviceBulkInput) (*DeviceBulkResult, error) {
	if in.Action == nil || strings.TrimSpace(*in.Action) == "" {
		return nil, Invalid("action", "is required: one of %s", strings.Join(BulkActions, ", "))
	}
	action := strings.ToLower(strings.TrimSpace(*in.Action))
	if !slices.Contains(BulkActions, action) {
		return nil, Invalid("action", "must be one of %s", strings.Join(BulkActions, ", "))
	}
	if in.Devices == nil || len(*in.Devices) == 0 {
		return nil, Invalid("devices", "is required: a list of device ids, names or MACs")
	}
	refs := *in.Devices
	if len(refs) > MaxBulkDevices {
		return nil, Invalid("devices", "names %d devices: at most %d at once", len(refs), MaxBulkDevices)
	}
	if action == BulkMove && in.GroupID == nil {
		return nil, Invalid("group_id", "is required to move devices: the group's id (0 for none)")
	}
	if action != BulkMove && in.GroupID != nil {
		return nil, Invalid("group_id", "is only for the move action")
	}
	res := &DeviceBulkResult{Action: action}
	if action == BulkMove {
		res.GroupID = nonZero(in.GroupID)
	}
	locker, _ := s.Engine.(DeviceLocker)
	var devs []*Device
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if devs, err = resolveDevices(ctx, tx, a, refs); err != nil {
			return err
		}
		ids := make([]uint, len(devs))
		for i, d := range devs {
			ids[i] = d.ID
		}
		for _, d := range devs {
			item := DeviceBulkItem{ID: d.ID, Name: d.Name, MAC: d.MAC, State: "done"}
			if err := bulkOne(tx, a, d, action, res.GroupID, locker != nil, &item, res); err != nil {
				return deviceError(d, err)
			}
			res.Devices = append(res.Devices, item)
		}
		// Devices whose lock or group changed: one boot revision per network for them all.
		var changed []uint
		for _, it := range res.Devices {
			if it.boot {
				changed = append(changed, it.ID)
			}
		}
		if len(changed) > 0 {
			if err := bumpBootDevices(tx, changed...); err != nil {
				return err
			}
		}
		// One event for the whole action (each device's own event says what it did).
		return audit(tx, a, &devs[0].NetworkID, "bulk-"+action, "device", devs[0].ID, joinIDs(ids))
	})
	if err != nil {
		return nil, err
	}
	for _, op := range res.Operations {
		s.launch(ctx, op)
	}
	if locker != nil && (action == BulkLock || action == BulkUnlock) {
		lockAll(ctx, locker, action == BulkLock, res)
	}
	for i := range res.Devices {
		if res.Devices[i].State == "failed" {
			res.Failed++
		}
	}
	return res, nil
}

// bulkOne applies action to device d in the transaction, filling in its item; operations
// to launch after the commit go to res. With a locker, a lock change is left to it.
func bulkOne(tx *gorm.DB, a *Actor, d *Device, action string, group *uint, locker bool, item *DeviceBulkItem, res *DeviceBulkResult) error {
	switch action {
	case BulkLock, BulkUnlock:
		lock := action == BulkLock
		if d.Locked == lock {
			return nil
		}
		if locker {
			// The device's workflow changes it after the commit, in order with its provisionings.
			item.lock = true
		} else {
			if err := tx.Model(&Device{}).Where("id = ?", d.ID).Update("locked", lock).Error; err != nil {
				return err
			}
			d.Locked = lock
			item.boot = true
		}
		return audit(tx, a, &d.NetworkID, "update", "device", d.ID, action)
	case BulkMove:
		if err := refInNetwork(tx, &Group{}, group, d.NetworkID, "group_id", "group"); err != nil {
			return err
		}
		if err := tx.Model(&Device{}).Where("id = ?", d.ID).Update("group_id", group).Error; err != nil {
			return err
		}
		d.GroupID = group
		item.boot = true
		return audit(tx, a, &d.NetworkID, "update", "device", d.ID, "move")
	case BulkRestore:
		op, err := restoreDeviceTx(tx, a, d, "")
		if err != nil {
			return err
		}
		item.State, item.OperationID = "queued", &op.ID
		res.Operations = append(res.Operations, op)
	case BulkDelete:
		ops, err := deleteDeviceTx(tx, a, d)
		if err != nil {
			return err
		}
		if n := len(ops); n > 0 && ops[n-1].Kind == OpDeviceDelete {
			item.State, item.OperationID = "queued", &ops[n-1].ID
		}
		res.Operations = append(res.Operations, ops...)
	}
	return nil
}

// bulkLocksAtOnce bounds the lock changes one bulk action has under way in the workflow
// engine at once.
const bulkLocksAtOnce = 16

// lockAll sends the lock changes to the workflows of the devices whose lock changes, at once (each may wait up to
// the engine's lock wait behind a provisioning) and records each outcome.
func lockAll(ctx context.Context, locker DeviceLocker, lock bool, res *DeviceBulkResult) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, bulkLocksAtOnce)
	for i := range res.Devices {
		if !res.Devices[i].lock {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func(it *DeviceBulkItem) {
			defer func() { <-slots; wg.Done() }()
			switch err := locker.LockDevice(ctx, it.ID, lock); {
			case errors.Is(err, ErrLockPending):
				it.State = "queued"
			case err != nil:
				it.State, it.Error = "failed", "the workflow engine did not take the lock change, so this device's lock is unchanged; try again"
			}
		}(&res.Devices[i])
	}
	wg.Wait()
}

// resolveDevices finds each named device among those a may see, in order, each once.
// A name or MAC that matches none is 404 naming "devices"; a name matching several is
// 422 (name them by id).
func resolveDevices(ctx context.Context, tx *gorm.DB, a *Actor, refs []DeviceRef) ([]*Device, error) {
	var out []*Device
	seen := map[uint]bool{}
	for i, ref := range refs {
		key := strings.TrimSpace(string(ref))
		if key == "" {
			return nil, Invalid("devices", "item %d is empty: name a device by its id, name or MAC", i+1)
		}
		q := a.scopeNetworkOwned(tx.WithContext(ctx).Model(&Device{}))
		if n, err := strconv.ParseUint(key, 10, 32); err == nil {
			q = q.Where("id = ?", n)
		} else if mac, err := NormalizeMAC(key); err == nil {
			q = q.Where("mac = ?", mac)
		} else {
			q = q.Where("name = ?", key)
		}
		var found []*Device
		if err := q.Limit(2).Find(&found).Error; err != nil {
			return nil, err
		}
		switch len(found) {
		case 0:
			return nil, &NotFoundFieldError{Field: "devices", What: fmt.Sprintf("device %q", key)}
		case 2:
			return nil, Invalid("devices", "%q names more than one device: name them by id", key)
		}
		if !seen[found[0].ID] {
			seen[found[0].ID] = true
			out = append(out, found[0])
		}
	}
	return out, nil
}

// deviceError says which device of a bulk action an error is about, keeping its kind
// (and so its HTTP status); its field becomes "devices".
func deviceError(d *Device, err error) error {
	name := fmt.Sprintf("device %d", d.ID)
	if d.Name != "" {
		name = fmt.Sprintf("device %d (%s)", d.ID, d.Name)
	}
	var invalid *ValidationError
	var conflict *ConflictError
	var nf *NotFoundFieldError
	switch {
	case errors.As(err, &nf):
		return &NotFoundFieldError{Field: nf.Field, What: nf.What + " (for " + name + ")"}
	case errors.As(err, &invalid):
		return Invalid(invalid.Field, "%s: %s", name, invalid.Msg)
	case errors.As(err, &conflict):
		return Conflict(cmp.Or(conflict.Field, "devices"), "%s: %s", name, conflict.Msg)
	}
	return err
}

func joinIDs(ids []uint) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	s := strings.Join(parts, ",")
	if len(s) > 1000 {
		// The audit detail's size; each device's own event names it anyway.
		s = s[:strings.LastIndexByte(s[:990], ',')] + ",…"
	}
	return s
}
