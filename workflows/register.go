package workflows

import "go.temporal.io/sdk/worker"

// Register registers every workflow with a worker on PanelQueue.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(ServerBootstrap)
	r.RegisterWorkflow(VolumeCreate)
	r.RegisterWorkflow(VolumeResize)
	r.RegisterWorkflow(VolumeDelete)
	r.RegisterWorkflow(GroupCreate)
	r.RegisterWorkflow(GroupDelete)
	r.RegisterWorkflow(GroupPublish)
	r.RegisterWorkflow(EratorPurge)
	r.RegisterWorkflow(Restore)
	r.RegisterWorkflow(Device)
	r.RegisterWorkflow(DeviceRestore)
	r.RegisterWorkflow(Notify)
}
