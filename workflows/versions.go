package workflows

import "go.temporal.io/sdk/workflow"

// Named GetVersion flags. A change to a workflow that has shipped goes behind one of
// these, so histories recorded before the change still replay (see replay_test.go and the
// saved histories in testdata/). Never rename or reuse a flag.

// VersionPublishStep: group publish reports a "snapshot" step before it snapshots;
// testdata/group-publish-before-snapshot-step.json was recorded before this change and
// goes straight to the snapshot.
const VersionPublishStep = "group-publish-snapshot-step"

// VersionDeviceDelete: the device workflow accepts a "delete" update (its disk goes to
// the erator and the run ends). Runs recorded before never handle one; the marker is
// recorded by the first delete a run handles.
const VersionDeviceDelete = "device-delete-update"

// VersionPublishReplicate: after the snapshot, a publish queues the version's replication
// to every slave. Histories recorded before end with the publish's Finish.
const VersionPublishReplicate = "group-publish-replicate"

// VersionVolumeReplicate: a created volume is queued for replication to every slave.
const VersionVolumeReplicate = "volume-create-replicate"

// VersionBootstrapCatchUp: a slave whose bootstrap succeeded is queued everything its
// network holds.
const VersionBootstrapCatchUp = "server-bootstrap-catch-up"

// VersionDeleteSlaves: deleting a volume or group on the master also moves the slaves'
// copies into their erators.
const VersionDeleteSlaves = "delete-on-slaves"

// VersionReplicateCatchUp: a group's replication, before it ends, catches up with the
// newest version the master holds (a publish that joined the running run).
const VersionReplicateCatchUp = "replicate-catch-up"

// VersionReplicateProgress: while a transfer runs, a panel activity copies its heartbeats
// (bytes, percent, rate) onto the operation.
const VersionReplicateProgress = "replicate-progress"

// VersionReplicateVolumeCopy: a volume's snapshot received and verified by guid is
// recorded as the slave's copy of the volume (a promote needs it) without waiting for
// the reconcile.
const VersionReplicateVolumeCopy = "replicate-volume-copy"

// VersionPromoteReleaseHolds: after the switch, every other server drops the holds it
// kept for the new master as its slave (they would pin those snapshots for ever).
const VersionPromoteReleaseHolds = "promote-release-holds"

// VersionReplicateSkipOrigin: a group's replication asks the slave first and skips the
// origin volume when the slave holds the group already.
const VersionReplicateSkipOrigin = "replicate-skip-origin"

// VersionReplicateListed: a group's versions are matched against the slave's listing
// that its Replicate activity returns (the one it verified the guid with) instead of a
// Snapshots activity on the slave after it: one zfs list less per run.
const VersionReplicateListed = "replicate-listed"

// VersionLocalProgress records an operation's steps and end with local activities
// instead of activities on the panel's task queue (see record).
const VersionLocalProgress = "local-progress"

// VersionDeviceMoveVDisk: a provisioning on another server than the one holding the
// device's vdisk moves the vdisk there (LUN 1 removed, snapshot, incremental transfer,
// LUN 1 on the new server) before the device's target is exported, and records the
// vdisk's server with the device's. Runs recorded before plan no vdisk and never move it.
const VersionDeviceMoveVDisk = "device-move-vdisk"

// VersionReconcileVDisks: the reconcile snapshots each vdisk written since its newest
// snapshot (on the server it lives on) before comparing it with its backups.
const VersionReconcileVDisks = "reconcile-vdisks"

// VersionDeleteVDiskBackups: deleting a vdisk also moves its copies on the network's other
// servers (backups, the bases moves left) into their erators.
const VersionDeleteVDiskBackups = "delete-vdisk-backups"

// VersionDeviceVDiskMoving: a provisioning's plan marks the vdisk that moves with the
// clone as moving (the API refuses its resize, attach, detach and delete until the move
// ends) and refuses the move while a change of the vdisk is under way; a provisioning
// that fails after the plan clears the mark (EndVDiskMove), one that succeeds clears it
// with the clone's record.
const VersionDeviceVDiskMoving = "device-vdisk-moving"

// VersionReconcilePruneVDisks: after comparing, the reconcile destroys the vdisks' backup
// snapshots beyond the newest storage.VDiskBackupKeep on each server (never a backup's
// newest common base, nor a held one).
const VersionReconcilePruneVDisks = "reconcile-prune-vdisks"

// VersionDeleteCTemplateCopies: deleting a ctemplate also moves its copies on the
// network's other servers into their erators.
const VersionDeleteCTemplateCopies = "delete-ctemplate-copies"

// VersionCTemplateBuildReplicate: a built ctemplate version is queued for replication to
// the network's other servers. Histories recorded before end with the build's Finish.
const VersionCTemplateBuildReplicate = "ctemplate-build-replicate"

// VersionFirstStepAtStart: volume create, group create and group publish leave their
// first step's record to the panel's engine, which writes it on the operation as it
// attaches the run (Start.First); the run only answers it in the progress query. Runs
// recorded before write it themselves with a local activity before their first activity.
const VersionFirstStepAtStart = "first-step-at-start"

// VersionReplicateMasterGUID: a volume's named snapshot is replicated without asking the
// master for its guid first (the Snapshots activity): the slave takes it from the
// master's answer. Histories recorded before list the master's snapshots first.
const VersionReplicateMasterGUID = "replicate-master-guid"

// Generation is the flag generation of this code. A run records, once, the generation of
// the code that first ran it (a GetVersion of FlagGenerationID, whose marker every replay
// reads back) and takes each flag of that generation or older (flagGeneration) as in force
// without asking: since then records no marker and no TemporalChangeVersion upsert for it
// (the SDK upserts that search attribute with each new marker: one more history event and
// one more visibility write per flag, on every operation). A run recorded before (no
// generation marker: DefaultVersion) asks GetVersion for each flag as it did, so its
// history replays unchanged; so does a run that panels of mixed versions take turns on
// (the generation is the one recorded, whoever replays it).
//
// A new flag gets the next generation in flagGeneration, and Generation moves to it in the
// same change: runs of the generation before, still in flight, then ask GetVersion for it.
const Generation = 1

// FlagGenerationID is the change id of a run's generation marker.
const FlagGenerationID = "flag-generation"

// flagGeneration is the generation from which each flag is in force for new runs. A flag
// missing here is always asked of GetVersion (TestFlagGenerations keeps the list whole).
var flagGeneration = map[string]int{
	VersionPublishStep:             1,
	VersionDeviceDelete:            1,
	VersionPublishReplicate:        1,
	VersionVolumeReplicate:         1,
	VersionBootstrapCatchUp:        1,
	VersionDeleteSlaves:            1,
	VersionReplicateCatchUp:        1,
	VersionReplicateProgress:       1,
	VersionReplicateVolumeCopy:     1,
	VersionPromoteReleaseHolds:     1,
	VersionReplicateSkipOrigin:     1,
	VersionReplicateListed:         1,
	VersionLocalProgress:           1,
	VersionDeviceMoveVDisk:         1,
	VersionReconcileVDisks:         1,
	VersionDeleteVDiskBackups:      1,
	VersionDeviceVDiskMoving:       1,
	VersionReconcilePruneVDisks:    1,
	VersionDeleteCTemplateCopies:   1,
	VersionCTemplateBuildReplicate: 1,
	VersionFirstStepAtStart:        1,
	VersionReplicateMasterGUID:     1,
}

// since reports whether the run takes changeID's new path: at once for a run of a
// generation that has it in force, otherwise as GetVersion answers (DefaultVersion or 1).
func since(ctx workflow.Context, changeID string) bool {
	if g, ok := flagGeneration[changeID]; ok && runGeneration(ctx) >= g {
		return true
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1) == 1
}

// runGeneration is the flag generation the run recorded (Generation for a new run), or
// DefaultVersion (-1) for a run recorded before generations. The SDK keeps the answer for
// the rest of the run, so only the first call records anything.
func runGeneration(ctx workflow.Context) int {
	return int(workflow.GetVersion(ctx, FlagGenerationID, workflow.DefaultVersion, Generation))
}
