// Package replication runs replication from a network's master to its slaves through the
// real parts: the panel process, PostgreSQL, Temporal and storage-lab VMs (OpenZFS) whose
// agents stream zfs send to zfs receive over mutual TLS. Slaves reach the master's
// replication port through a Proxy on the host, which counts the bytes on the wire and
// can drop the connection. The acceptance test and the benchmark (test/bench/replication)
// share this rig.
package replication

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/client"
)

// Rig is the panel with one network: a master and slaves on their own VMs, their agents
// running and bootstrapped.
type Rig struct {
	E         *storagetest.Env
	Master    *lab.Server
	Slaves    []*lab.Server
	NetworkID uint
	MasterID  uint
	SlaveIDs  []uint
	Proxy     *Proxy
	// SlaveProxies lead to each slave's replication port: the way back once a slave is
	// promoted (every agent serves replication; the panel tells slaves whom to dial).
	SlaveProxies []*Proxy
	TC           client.Client

	masterKey string
	slaveKeys []string
}

// StartRig boots the master (pool "tank") and n slaves (pools "sat1"… : the names differ
// on purpose) and registers them through the API as one network's servers.
func StartRig(t testing.TB, slaves int, agentFlags ...string) *Rig {
	t.Helper()
	start := time.Now()
	opts := []lab.Options{{Name: "repl-master"}}
	for i := 1; i <= slaves; i++ {
		opts = append(opts, lab.Options{Name: fmt.Sprintf("repl-slave%d", i), Pool: fmt.Sprintf("sat%d", i)})
	}
	e := storagetest.StartVMs(t, opts)
	e.AgentFlags = agentFlags
	r := &Rig{E: e, Master: e.VMs[0], Slaves: e.VMs[1:]}
	t.Logf("setup (VMs booted in %s) in %s", r.Master.BootTime.Round(time.Second), time.Since(start).Round(time.Second))
	r.Proxy = StartProxy(t, r.Master.Addr(lab.PortReplication))
	for _, vm := range r.Slaves {
		r.SlaveProxies = append(r.SlaveProxies, StartProxy(t, vm.Addr(lab.PortReplication)))
	}
	r.TC = harness.TemporalClient(t)

	c := e.Must(http.StatusCreated, "POST", "/clients.json", map[string]any{"Name": "Replication"})
	network := e.Must(http.StatusCreated, "POST", "/networks.json", map[string]any{"Name": "Replication", "Client": storagetest.ID(c, "id")})
	r.NetworkID = storagetest.ID(network, "id")
	e.Must(http.StatusCreated, "POST", "/tunnels.json", map[string]any{"Alias": "tunnel", "network": r.NetworkID, "IP": "4.2.2.1"})
	ms := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": "master", "network": r.NetworkID, "IP": "192.168.1.10", "Pool": r.Master.Pool})
	r.MasterID, r.masterKey = storagetest.ID(ms, "id"), ms["key"].(string)
	names := []string{"master"}
	for i, vm := range r.Slaves {
		name := fmt.Sprintf("slave%d", i+1)
		ss := e.Must(http.StatusCreated, "POST", "/servers.json", map[string]any{"Name": name, "network": r.NetworkID, "IP": fmt.Sprintf("192.168.1.%d", 11+i), "Pool": vm.Pool})
		r.SlaveIDs = append(r.SlaveIDs, storagetest.ID(ss, "id"))
		r.slaveKeys = append(r.slaveKeys, ss["key"].(string))
		names = append(names, name)
	}
	r.StartMaster()
	for i := range r.Slaves {
		r.StartSlave(i)
	}
	for _, name := range names {
		e.WaitStats(name, "ONLINE")
	}
	for _, id := range append([]uint{r.MasterID}, r.SlaveIDs...) {
		var boot models.Operation
		if err := e.DB.Where("kind = ? AND object_id = ?", models.OpServerBootstrap, id).Order("id DESC").Take(&boot).Error; err != nil {
			t.Fatal(err)
		}
		e.WaitOK(boot.ID)
	}
	return r
}

// StartMaster starts the master's agent, advertising the proxy as its replication address.
// Its iSCSI target listens on every address of the VM (the server's registered IP is not
// the VM's), so its boot listener, and the /metrics beside it, serve on lab.PortBoot.
func (r *Rig) StartMaster() {
	r.E.StartAgentOn(r.Master, 1, r.masterKey, "--replication-advertise", fmt.Sprintf("%s:%d", lab.GuestHostIP, r.Proxy.Port),
		"--iscsi-listen", fmt.Sprintf("0.0.0.0:%d", lab.PortISCSI), "--boot-listen", fmt.Sprintf(":%d", lab.PortBoot))
}

// StartSlave starts slave i's agent, advertising its proxy as its replication address.
// Its boot path serves devices on their own user networks (the satellite site): boot
// endpoint and iSCSI target on every VM address, the portal as a device reaches it.
func (r *Rig) StartSlave(i int) {
	vm := r.Slaves[i]
	r.E.StartAgentOn(vm, 1, r.slaveKeys[i], "--replication-advertise", fmt.Sprintf("%s:%d", lab.GuestHostIP, r.SlaveProxies[i].Port),
		"--iscsi-listen", fmt.Sprintf("0.0.0.0:%d", lab.PortISCSI), "--iscsi-portal", vm.DevicePortal(), "--boot-listen", fmt.Sprintf(":%d", lab.PortBoot))
}

// PauseReconcile pauses the panel's reconcile schedule, so a benchmark's transfers run
// alone: the reconcile (every workflows.ReconcileEvery, on the clock's multiples) would
// otherwise catch every slave up in the middle of a sample.
func (r *Rig) PauseReconcile(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := r.TC.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID)
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "benchmark: transfers are timed alone"}); err != nil {
		t.Fatal(err)
	}
}

// Replicate starts the Replicate workflow bringing (kind, id) up to snapshot to slave i;
// wait waits for its end.
func (r *Rig) Replicate(t testing.TB, i int, kind string, objectID uint, snapshot string) (wait func() (*workflows.ReplicateResult, error)) {
	t.Helper()
	return r.ReplicateTo(t, workflows.ReplicateInput{SlaveID: r.SlaveIDs[i], Kind: kind, ObjectID: objectID, Snapshot: snapshot})
}

// ReplicateTo starts (or joins) the Replicate workflow of in (its network is the rig's)
// and returns the wait for its end.
func (r *Rig) ReplicateTo(t testing.TB, in workflows.ReplicateInput) (wait func() (*workflows.ReplicateResult, error)) {
	t.Helper()
	in.NetworkID = r.NetworkID
	kind, objectID := in.Kind, in.ObjectID
	run, err := r.TC.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.ReplicateID(in.SlaveID, kind, objectID), TaskQueue: workflows.PanelQueue}, workflows.Replicate, in)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*workflows.ReplicateResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		var res workflows.ReplicateResult
		err := run.Get(ctx, &res)
		return &res, err
	}
}

// Prop reads a property of a dataset in a VM (parsable value).
func (r *Rig) Prop(vm *lab.Server, ds, p string) string {
	return strings.TrimSpace(r.E.GuestOn(vm, "zfs", "get", "-Hp", "-o", "value", p, ds))
}

// Volume creates a volume of sizeGiB through the API with mib MiB of random data in it
// and a group on it (which snapshots the volume as group-<gid>); it returns both ids.
func (r *Rig) Volume(name string, mib int) (volumeID, groupID uint) {
	e := r.E
	vol := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": r.NetworkID, "Alias": name, "vol_size": 1})
	e.WaitOK(storagetest.OpID(vol))
	volumeID = storagetest.ID(vol, "id")
	r.Fill(fmt.Sprintf("%s/iscsi/volumes/%d", r.Master.Pool, volumeID), 0, mib)
	return r.Group(volumeID, name)
}

// Fill writes mib MiB of random data (which does not compress) into a zvol of the
// master at offset seekMiB. The data is made on the host and read through the share:
// /dev/urandom under TCG is far slower.
func (r *Rig) Fill(zvol string, seekMiB, mib int) { r.FillOn(r.Master, zvol, seekMiB, mib) }

// FillOn is Fill on any of the rig's VMs.
func (r *Rig) FillOn(vm *lab.Server, zvol string, seekMiB, mib int) {
	t := r.E.T
	t.Helper()
	name := "random-" + strconv.Itoa(mib) + ".bin"
	f, err := os.Create(filepath.Join(vm.Share, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := vm.WaitZvol(ctx, zvol); err != nil {
		t.Fatalf("fill %s: %v", zvol, err)
	}
	if _, err := vm.Exec(ctx, "dd", "if=/mnt/host/"+name, "of=/dev/zvol/"+zvol, "bs=1M",
		"seek="+strconv.Itoa(seekMiB), "conv=notrunc,fsync", "status=none"); err != nil {
		t.Fatalf("fill %s: %v", zvol, err)
	}
}

// Group creates a group on a volume, which snapshots the volume as group-<gid>.
func (r *Rig) Group(volumeID uint, name string) (uint, uint) {
	grp := r.E.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": r.NetworkID, "Name": name, "VolumeID": volumeID})
	r.E.WaitOK(storagetest.OpID(grp))
	return volumeID, storagetest.ID(grp, "id")
}

// SendSize is zfs send's estimate of a compressed stream (args as zfs send takes them).
func (r *Rig) SendSize(t testing.TB, vm *lab.Server, args ...string) int64 {
	t.Helper()
	out := r.E.GuestOn(vm, append([]string{"zfs", "send", "-n", "-P", "-c"}, args...)...)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "size" {
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return n
			}
		}
	}
	t.Fatalf("zfs send -nP %v: %q", args, out)
	return 0
}

// Timeline logs where a finished workflow run's time went: each activity's wait for a
// worker (scheduled → started) and its run (started → closed), from the run's history.
// It names the gaps a transfer pays before its first byte (for the benchmark's profile).
func (r *Rig) Timeline(t testing.TB, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type act struct {
		name                      string
		scheduled, started, ended time.Time
	}
	acts := map[int64]*act{}
	var order []int64
	var first, last time.Time
	it := r.TC.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Logf("timeline of %s: %v", workflowID, err)
			return
		}
		at := ev.GetEventTime().AsTime()
		if first.IsZero() {
			first = at
		}
		last = at
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			acts[ev.GetEventId()] = &act{name: a.GetActivityType().GetName(), scheduled: at}
			order = append(order, ev.GetEventId())
		} else if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && acts[a.GetScheduledEventId()] != nil {
			acts[a.GetScheduledEventId()].started = at
		} else if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && acts[a.GetScheduledEventId()] != nil {
			acts[a.GetScheduledEventId()].ended = at
		} else if a := ev.GetActivityTaskFailedEventAttributes(); a != nil && acts[a.GetScheduledEventId()] != nil {
			acts[a.GetScheduledEventId()].ended = at
		} else if a := ev.GetActivityTaskCanceledEventAttributes(); a != nil && acts[a.GetScheduledEventId()] != nil {
			acts[a.GetScheduledEventId()].ended = at
		}
	}
	var b strings.Builder
	for _, id := range order {
		a := acts[id]
		if a.started.IsZero() || a.ended.IsZero() {
			// A cancelled progress watcher acknowledges after the run ended: no events.
			fmt.Fprintf(&b, "\n  +%6.2fs %-24s not ended when the run ended", a.scheduled.Sub(first).Seconds(), a.name)
			continue
		}
		fmt.Fprintf(&b, "\n  +%6.2fs %-24s waited %6.2fs ran %6.2fs", a.scheduled.Sub(first).Seconds(), a.name,
			a.started.Sub(a.scheduled).Seconds(), a.ended.Sub(a.started).Seconds())
	}
	t.Logf("timeline of %s (%.2fs from start to end):%s", workflowID, last.Sub(first).Seconds(), b.String())
}

// Reconcile runs one reconcile (workflow id reconcile-<what>-<id>) and returns its result
// and the newest operation of kind on object id it queued, once that has succeeded.
func (r *Rig) Reconcile(ctx context.Context, t *testing.T, what, kind string, id uint) (workflows.ReconcileResult, models.Operation) {
	t.Helper()
	var rec workflows.ReconcileResult
	run, err := r.TC.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("reconcile-%s-%d", what, id), TaskQueue: workflows.PanelQueue},
		workflows.Reconcile, workflows.ReconcileInput{})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, &rec); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	var op models.Operation
	if err := r.E.DB.Where("kind = ? AND object_id = ?", kind, id).Order("id DESC").Take(&op).Error; err != nil {
		t.Fatalf("no %s of %s %d queued by the reconcile (%+v): %v", kind, what, id, rec, err)
	}
	r.E.WaitOK(op.ID)
	return rec, op
}
