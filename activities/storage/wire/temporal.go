package wire

import "fmt"

// The Temporal names both processes use. workflows/names.go builds every other name and
// delegates these here, so each has one definition.

// PanelQueue is the task queue of the panel worker: workflows and database activities.
const PanelQueue = "panel"

// ServerQueue is the task queue of a storage server's agent.
func ServerQueue(serverID uint) string { return fmt.Sprintf("server-%d", serverID) }

// TunnelQueue is the task queue of a tunnel process.
func TunnelQueue(tunnelID uint) string { return fmt.Sprintf("tunnel-%d", tunnelID) }

// DeviceWorkflow is the workflow type of a device's entity workflow, as the panel worker
// registers it and agents start it (update-with-start) without linking its code.
const DeviceWorkflow = "Device"

// DeviceWorkflowID is the id of a device's entity workflow, which serialises its
// provisioning and reprovisioning (one per device).
func DeviceWorkflowID(deviceID uint) string { return fmt.Sprintf("device-%d", deviceID) }

// The device workflow's updates.
const (
	// UpdateProvision provisions a version on a server (ProvisionRequest -> DeviceClone).
	UpdateProvision = "provision"
	// UpdateLock locks or unlocks the device.
	UpdateLock = "lock"
	// UpdateRestore puts a replaced disk back from the erator.
	UpdateRestore = "restore"
)

// ProvisionUpdateID is the update id of a provisioning request: a version of a group on a
// server for a device, decided at the device's boot revision r.Revision. A boot request
// asked again while the disk is made is decided at the same revision and joins the same
// update; a request for the same target after the device's clone changed (moved to
// another server and back within one run) has a newer revision and gets an update of its
// own, where Temporal would answer a repeated id with the first update's result.
func ProvisionUpdateID(r ProvisionRequest) string {
	return fmt.Sprintf("provision-%d-g%d-v%d-s%d-r%d", r.DeviceID, r.GroupID, r.Version, r.ServerID, r.Revision)
}

// DeviceClone is what a device's disk is: a clone of group GroupID's v<Version> on
// ServerID. No JSON tags: saved histories carry the Go names.
type DeviceClone struct {
	GroupID  uint
	Version  int
	ServerID uint
}

// DeviceInput starts (or continues) a device's entity workflow.
type DeviceInput struct {
	DeviceID uint
	// Clone is the disk as the previous run left it (continue-as-new); zero at first start.
	Clone DeviceClone
}
