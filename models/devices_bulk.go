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
// "queued" (the action's operation runs it: OperationID) or "failed" (Error says why; the
// device is as it was).
type DeviceBulkItem struct {
	ID          uint   `json:"id"`
	Name        string `json:"name"`
	MAC         string `json:"mac"`
	State       string `json:"state"`
	Error       string `json:"error,omitempty"`
	OperationID *uint  `json:"operation_id,omitempty"`

	work *BulkDevice // what the action's operation does for it after the commit
	boot bool        // its boot state changed in the transaction (one boot revision for them all)
}

// DeviceBulkResult is the outcome of a bulk action, per device, in the order asked.
type DeviceBulkResult struct {
	Action  string           `json:"action"`
	GroupID *uint            `json:"group_id,omitempty"`
	Devices []DeviceBulkItem `json:"devices"`
	// Failed is kept for clients of the earlier answer: always 0, since a request either
	// changes every device or none; outcomes after the commit are on the operation.
	Failed int `json:"failed"`
	// Operation is the one operation that carries out what runs after the commit (a lock
	// change through each device's workflow, a restore, a deleted disk's move to the
	// erator), nil when the rows were all there was to change.
	Operation *Operation `json:"-"`
	// Others are the operations of other objects the action ended (a deleted device's
	// maintenance of a group or volume).
	Others []*Operation `json:"-"`
}

// BulkOutcome is what a bulk action's operation did to one device (Operation.Result).
// State: "queued" (not started yet), "done", "failed" (Error says why) or "cancelled" (the
// operation was cancelled or failed before the device's turn).
type BulkOutcome struct {
	ID    uint   `json:"id"`
	Name  string `json:"name,omitempty"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Bulk outcome states.
const (
	BulkQueued    = "queued"
	BulkDone      = "done"
	BulkFailed    = "failed"
	BulkCancelled = "cancelled"
)

// bulkKinds is the operation kind of each bulk action that has work after the commit.
var bulkKinds = map[string]string{BulkLock: OpBulkLock, BulkUnlock: OpBulkUnlock, BulkRestore: OpBulkRestore, BulkDelete: OpBulkDelete}

// BulkDevices carries out one action on several devices of one network as one change:
// the devices are looked up among those the caller may see, and every check and row
// change happens in one transaction, so a device not visible (404 naming "devices"), a
// device the action cannot apply to or a group outside the network (422 or 409 naming
// the device) changes nothing at all. What runs after the commit (a lock change through
// each device's workflow; a restore; a deleted device's disk to the erator) is ONE
// operation of kind bulk-<action>, recorded in the same transaction with its devices in
// its input: one workflow does each device's part and keeps each outcome on the
// operation (Result).
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
	_, locker := s.Engine.(DeviceLocker)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		devs, err := resolveDevices(ctx, tx, a, refs)
		if err != nil {
			return err
		}
		nid := devs[0].NetworkID
		ids := make([]uint, len(devs))
		for i, d := range devs {
			ids[i] = d.ID
			if d.NetworkID != nid {
				return Invalid("devices", "names devices of more than one network (device %d is in network %d, device %d in network %d): act on one network at a time",
					devs[0].ID, nid, d.ID, d.NetworkID)
			}
		}
		for _, d := range devs {
			item := DeviceBulkItem{ID: d.ID, Name: d.Name, MAC: d.MAC, State: "done"}
			if err := bulkOne(tx, a, d, action, res.GroupID, locker, &item, res); err != nil {
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
		if res.Operation, err = recordBulk(tx, nid, bulkKinds[action], res); err != nil {
			return err
		}
		// One event for the whole action (each device's own event says what it did).
		return audit(tx, a, &nid, "bulk-"+action, "device", devs[0].ID, joinIDs(ids))
	})
	if err != nil {
		return nil, err
	}
	for _, op := range res.Others {
		s.launch(ctx, op)
	}
	if res.Operation != nil {
		s.launch(ctx, res.Operation)
	}
	return res, nil
}

// recordBulk records the bulk operation of kind for the devices of res that have work
// after the commit (none: no operation), each outcome queued.
func recordBulk(tx *gorm.DB, nid uint, kind string, res *DeviceBulkResult) (*Operation, error) {
	var devs []BulkDevice
	var outcomes []BulkOutcome
	var servers []uint
	for _, it := range res.Devices {
		if it.work != nil {
			devs = append(devs, *it.work)
			outcomes = append(outcomes, BulkOutcome{ID: it.ID, Name: cmp.Or(it.Name, it.MAC), State: BulkQueued})
			if it.work.ServerID != 0 && !slices.Contains(servers, it.work.ServerID) {
				servers = append(servers, it.work.ServerID)
			}
		}
	}
	if len(devs) == 0 || kind == "" {
		return nil, nil
	}
	// Each disk's pool is recorded with it: the workflow reads no row again.
	if len(servers) > 0 {
		var srvs []Server
		if err := tx.Where("id IN ?", servers).Find(&srvs).Error; err != nil {
			return nil, err
		}
		for i := range devs {
			for _, srv := range srvs {
				if srv.ID == devs[i].ServerID {
					devs[i].Pool = srv.Pool
				}
			}
		}
	}
	b, err := json.Marshal(OperationInput{Devices: devs})
	if err != nil {
		return nil, err
	}
	op := &Operation{NetworkID: &nid, Kind: kind, ObjectType: opObjects[kind], ObjectID: devs[0].ID, State: OpQueued,
		Step: "queued", Message: fmt.Sprintf("0/%d devices", len(devs)), Input: string(b), Result: outcomes}
	if err := tx.Create(op).Error; err != nil {
		return nil, fmt.Errorf("record operation: %w", err)
	}
	for i := range res.Devices {
		if res.Devices[i].work != nil {
			res.Devices[i].State, res.Devices[i].OperationID = "queued", &op.ID
		}
	}
	return op, nil
}

// bulkOne applies action to device d in the transaction, filling in its item; what the
// bulk operation does for it after the commit goes to item.work, other objects'
// operations to res. With a locker, a lock change is left to the device's workflow.
func bulkOne(tx *gorm.DB, a *Actor, d *Device, action string, group *uint, locker bool, item *DeviceBulkItem, res *DeviceBulkResult) error {
	switch action {
	case BulkLock, BulkUnlock:
		lock := action == BulkLock
		if d.Locked == lock {
			return nil
		}
		if locker {
			// The device's workflow changes it after the commit, in order with its provisionings.
			item.work = &BulkDevice{ID: d.ID}
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
		if d.ServerID == nil {
			return Conflict("", "device %d has no disk on any server: there is nothing to restore", d.ID)
		}
		item.work = &BulkDevice{ID: d.ID, ServerID: *d.ServerID}
		return audit(tx, a, &d.NetworkID, "restore", "device", d.ID, "")
	case BulkDelete:
		ops, err := deleteDeviceTx(tx, a, d, false)
		if err != nil {
			return err
		}
		res.Others = append(res.Others, ops...)
		if d.ServerID != nil {
			item.work = &BulkDevice{ID: d.ID, ServerID: *d.ServerID}
		}
	}
	return nil
}

// BulkLimit bounds the devices a bulk operation's workflow has under way at once.
const BulkLimit = 16

// RecordBulkOutcome records what a bulk operation did to one of its devices and the
// operation's progress (n/N devices, percent), as each device finishes. A finished
// operation, or a device not in it, is left as it is. Repeating it changes nothing.
func RecordBulkOutcome(ctx context.Context, db *gorm.DB, opID uint, out BulkOutcome) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var op Operation
		if err := forUpdate(tx.Model(&Operation{})).Where("id = ?", opID).Take(&op).Error; err != nil {
			return fmt.Errorf("operation %d: %w", opID, err)
		}
		if op.Finished() {
			return nil
		}
		done, failed := 0, 0
		for i := range op.Result {
			if op.Result[i].ID == out.ID {
				op.Result[i].State, op.Result[i].Error = out.State, trunc(out.Error, 500)
			}
			switch op.Result[i].State {
			case BulkDone:
				done++
			case BulkFailed:
				done++
				failed++
			}
		}
		n := len(op.Result)
		msg := fmt.Sprintf("%d/%d devices", done, n)
		if failed > 0 {
			msg += fmt.Sprintf(" (%d failed)", failed)
		}
		return tx.Model(&Operation{}).Where("id = ?", opID).Updates(map[string]any{
			"result": outcomesJSON(op.Result), "state": OpRunning, "step": "devices",
			"percent": min(99, done*100/max(n, 1)), "message": msg,
		}).Error
	})
}

// endBulkOutcomes marks the devices a failed or cancelled bulk operation never got to.
func endBulkOutcomes(tx *gorm.DB, op *Operation, cancelled bool) error {
	changed := false
	for i := range op.Result {
		if op.Result[i].State == BulkQueued {
			op.Result[i].State, changed = BulkCancelled, true
			if !cancelled {
				op.Result[i].Error = "not run: the operation ended before this device's turn"
			}
		}
	}
	if !changed {
		return nil
	}
	return tx.Model(&Operation{}).Where("id = ?", op.ID).Update("result", outcomesJSON(op.Result)).Error
}

// outcomesJSON is the result column's text (a map update skips the field's serializer).
func outcomesJSON(res []BulkOutcome) string {
	b, _ := json.Marshal(res) // plain structs: cannot fail
	return string(b)
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
