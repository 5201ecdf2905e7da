// Package workflows holds the durable operations of clusterducks: one file per workflow,
// deterministic code only (no I/O, no time.Now, no map iteration, no goroutines). The
// panel worker runs them on the task queue "panel"; their ZFS steps run as activities in
// the agent of the server that holds the data, on "server-<id>".
//
// This file is the one place that builds task queue names, workflow ids and query names.
// The names agents use too (queues, the device workflow's id and updates) are defined in
// the wire contract, which agents import instead of this package; they are delegated here.
package workflows

import (
	"fmt"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
)

// PanelQueue is the task queue of the panel worker: workflows and database activities.
const PanelQueue = wire.PanelQueue

// ServerQueue is the task queue of a storage server's agent.
func ServerQueue(serverID uint) string { return wire.ServerQueue(serverID) }

// TunnelQueue is the task queue of a tunnel process.
func TunnelQueue(tunnelID uint) string { return wire.TunnelQueue(tunnelID) }

// QueryProgress is the query every storage workflow answers with its current Step.
const QueryProgress = "progress"

// Workflow ids are derived from the object, so a repeated API call or a double click
// finds the running (or finished) workflow instead of starting a second one.

// ServerBootstrapID is the id of a server's bootstrap (one at a time per server).
func ServerBootstrapID(serverID uint) string { return fmt.Sprintf("server-bootstrap-%d", serverID) }

// VolumeCreateID is the id of a volume's creation (once per volume).
func VolumeCreateID(volumeID uint) string { return fmt.Sprintf("volume-create-%d", volumeID) }

// VolumeResizeID is the id of growing a volume to a size (once per volume and size).
func VolumeResizeID(volumeID uint, sizeGiB int64) string {
	return fmt.Sprintf("volume-resize-%d-%d", volumeID, sizeGiB)
}

// VolumeDeleteID is the id of a volume's deletion (one at a time per volume).
func VolumeDeleteID(volumeID uint) string { return fmt.Sprintf("volume-delete-%d", volumeID) }

// VDiskCreateID is the id of a vdisk's creation (once per vdisk).
func VDiskCreateID(vdiskID uint) string { return fmt.Sprintf("vdisk-create-%d", vdiskID) }

// VDiskResizeID is the id of growing a vdisk to a size (once per vdisk and size).
func VDiskResizeID(vdiskID uint, sizeGiB int64) string {
	return fmt.Sprintf("vdisk-resize-%d-%d", vdiskID, sizeGiB)
}

// VDiskAttachID is the id of a vdisk's move to another device (one at a time per vdisk).
func VDiskAttachID(vdiskID uint) string { return fmt.Sprintf("vdisk-attach-%d", vdiskID) }

// VDiskDeleteID is the id of a vdisk's deletion.
func VDiskDeleteID(vdiskID uint) string { return fmt.Sprintf("vdisk-delete-%d", vdiskID) }

// ContainerID is the id of every change of a container (create, start, stop, restart,
// kill, delete): one at a time per container, each run after the one before has ended.
func ContainerID(containerID uint) string { return fmt.Sprintf("container-%d", containerID) }

// CTemplateDeleteID is the id of a ctemplate's deletion.
func CTemplateDeleteID(ctemplateID uint) string {
	return fmt.Sprintf("ctemplate-delete-%d", ctemplateID)
}

// CTemplateBuildID is the id of the debootstrap build of a ctemplate's version (once per version).
func CTemplateBuildID(ctemplateID uint, version int) string {
	return fmt.Sprintf("ctemplate-build-%d-v%d", ctemplateID, version)
}

// VolumeRestoreID is the id of a volume's restore from the erator (one at a time).
func VolumeRestoreID(volumeID uint) string { return fmt.Sprintf("volume-restore-%d", volumeID) }

// GroupCreateID is the id of a group's clone (once per group).
func GroupCreateID(groupID uint) string { return fmt.Sprintf("group-create-%d", groupID) }

// GroupDeleteID is the id of a group's deletion (one at a time per group).
func GroupDeleteID(groupID uint) string { return fmt.Sprintf("group-delete-%d", groupID) }

// GroupRestoreID is the id of a group's restore from the erator (one at a time).
func GroupRestoreID(groupID uint) string { return fmt.Sprintf("group-restore-%d", groupID) }

// GroupPublishID is the id of publishing version n of a group (once per version).
func GroupPublishID(groupID uint, n int) string {
	return fmt.Sprintf("group-publish-%d-v%d", groupID, n)
}

// RolloutID is the id of rolling version n of a group out in waves (once per version).
func RolloutID(groupID uint, n int) string { return fmt.Sprintf("rollout-%d-v%d", groupID, n) }

// Signals of a rollout's workflow, sent by the panel for the operator.
const (
	SignalRolloutPause  = models.RolloutPause
	SignalRolloutResume = models.RolloutResume
	SignalRolloutAbort  = models.RolloutAbort
)

// RolloutNotifyID is the id of the mail of rollout rolloutID's rollback to a user: sent once.
func RolloutNotifyID(rolloutID, userID uint) string {
	return fmt.Sprintf("notify-rollout-%d-%d", rolloutID, userID)
}

// EratorPurgeID is the id of a purge of a server's erator (one at a time per server).
func EratorPurgeID(serverID uint) string { return fmt.Sprintf("erator-purge-%d", serverID) }

// DeviceWorkflowID is the id of a device's entity workflow, which serialises its
// provisioning and reprovisioning (one per device).
func DeviceWorkflowID(deviceID uint) string { return wire.DeviceWorkflowID(deviceID) }

// UpdateProvision is the device workflow's update that provisions a version on a server.
const UpdateProvision = wire.UpdateProvision

// UpdateLock is the device workflow's update that locks or unlocks the device.
const UpdateLock = wire.UpdateLock

// ProvisionUpdateID is the update id of a provisioning request (wire.ProvisionUpdateID):
// one per request, the same for a boot asked again.
func ProvisionUpdateID(r wire.ProvisionRequest) string {
	return wire.ProvisionUpdateID(r)
}

// UpdateRestore is the device workflow's update that puts a replaced disk back from the erator.
const UpdateRestore = wire.UpdateRestore

// RestoreUpdateID is the update id of the device restore recorded as operation opID: the
// engine sending it again (a retried start, a panel resuming it at boot) joins the first.
func RestoreUpdateID(opID uint) string { return fmt.Sprintf("restore-op-%d", opID) }

// UpdateDelete is the device workflow's update that moves the device's disk to the erator
// and ends the workflow (the device is deleted).
const UpdateDelete = "delete"

// DeleteUpdateID is the update id of the device delete recorded as operation opID: the
// engine sending it again joins the first.
func DeleteUpdateID(opID uint) string { return fmt.Sprintf("delete-op-%d", opID) }

// DeviceRestoreID is the id of the shipped workflow that restored a device's disk from
// the erator (one at a time); restores now run in the device workflow (UpdateRestore),
// and the id only names runs started before.
func DeviceRestoreID(deviceID uint) string { return fmt.Sprintf("device-restore-%d", deviceID) }

// NotifyID is the id of one notification: the kind of event, the user and the event's
// time, so a repeated report of the same event sends one mail.
func NotifyID(kind string, userID uint, at int64) string {
	return fmt.Sprintf("notify-%s-%d-%d", kind, userID, at)
}

// ReplicateID is the id of bringing a dataset (kind "volume", "group", "vdisk" or
// "ctemplate", object id) of the network's master (of a vdisk or ctemplate: its server) to
// server slaveID: one workflow per (slave, dataset).
func ReplicateID(slaveID uint, kind string, objectID uint) string {
	return fmt.Sprintf("replicate-%d-%s-%d", slaveID, kind, objectID)
}

// MaintenanceEndID is the id of ending the maintenance of a group head or a volume
// (kind): one at a time per object, and again at each later end.
func MaintenanceEndID(kind string, id uint) string {
	return fmt.Sprintf("%s-maintenance-end-%d", kind, id)
}

// HealthScheduleID is the id of the panel's health-check schedule (one per panel
// database: every panel creates it idempotently at start).
const HealthScheduleID = "health-check"

// TunnelPortsID is the id of the sync of network networkID's tunnel ports: one run at a
// time per network, which a later change signals (TunnelPortsChanged) instead of starting
// a second.
func TunnelPortsID(networkID uint) string { return fmt.Sprintf("tunnel-ports-%d", networkID) }

// TunnelPortsChanged is the signal that tells a running TunnelPorts of a new change.
const TunnelPortsChanged = "tunnel-ports-changed"

// HealthCheckID is the id of the health check's rounds (the schedule appends the time).
const HealthCheckID = "health-check-round"

// AlertNotifyID is the id of the mail of alert event eventID to a user: each is sent once.
func AlertNotifyID(eventID, userID uint) string {
	return fmt.Sprintf("notify-alert-%d-%d", eventID, userID)
}

// ServerPromoteID is the id of making a server its network's master (one at a time per server).
func ServerPromoteID(serverID uint) string { return fmt.Sprintf("server-promote-%d", serverID) }

// ReconcileScheduleID is the id of the Temporal schedule that runs the replication
// reconcile; the panel creates it at start (an existing one is kept).
const ReconcileScheduleID = "replication-reconcile"

// ReconcileID is the id of the reconcile workflow the schedule starts (the schedule
// appends the time of each run).
const ReconcileID = "replication-reconcile"

// BulkDevicesID is the id of bulk action operation opID on devices (one run per operation).
func BulkDevicesID(opID uint) string { return fmt.Sprintf("devices-bulk-%d", opID) }

// BulkUpdateID is the update id of bulk operation opID's change to device deviceID: a
// retried activity joins the update it sent before.
func BulkUpdateID(opID, deviceID uint) string { return fmt.Sprintf("bulk-op-%d-%d", opID, deviceID) }
