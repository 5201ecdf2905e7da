package workflows

import (
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register registers every workflow with a worker on PanelQueue.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(ServerBootstrap)
	r.RegisterWorkflow(VolumeCreate)
	r.RegisterWorkflow(VolumeResize)
	r.RegisterWorkflow(VolumeDelete)
	r.RegisterWorkflow(GroupCreate)
	r.RegisterWorkflow(GroupDelete)
	r.RegisterWorkflow(GroupPublish)
	r.RegisterWorkflow(Replicate)
	r.RegisterWorkflow(MaintenanceEnd)
	r.RegisterWorkflow(ServerPromote)
	r.RegisterWorkflow(Reconcile)
	r.RegisterWorkflow(EratorPurge)
	r.RegisterWorkflow(Restore)
	r.RegisterWorkflow(VDiskCreate)
	r.RegisterWorkflow(VDiskResize)
	r.RegisterWorkflow(VDiskAttach)
	r.RegisterWorkflow(VDiskDelete)
	r.RegisterWorkflow(CTemplateDelete)
	r.RegisterWorkflow(ContainerCreate)
	r.RegisterWorkflow(ContainerAct)
	r.RegisterWorkflow(ContainerDelete)
	r.RegisterWorkflow(ContainerRebase)
	r.RegisterWorkflow(CTemplateBuild)
	// Agents start the device workflow by its type name, without linking this package.
	r.RegisterWorkflowWithOptions(Device, workflow.RegisterOptions{Name: wire.DeviceWorkflow})
	r.RegisterWorkflow(DeviceRestore)
	r.RegisterWorkflow(Notify)
	r.RegisterWorkflow(HealthCheck)
	r.RegisterWorkflow(TunnelPorts)
	r.RegisterWorkflow(BulkDevices)
	r.RegisterWorkflow(Rollout)
}
