package storage

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/models"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"go.temporal.io/sdk/client"
)

// timeline logs, for one operation, where its time went from the benchmark's API call
// (start) to the operation's recorded end: the API's answer (accepted), then each event of
// the workflow's history at its offset (workflow tasks, activities with their wait for a
// worker and their run, local activity markers), and the operation's FinishedAt.
func timeline(b *testing.B, tc client.Client, name string, start, accepted time.Time, op models.Operation) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	off := func(t time.Time) string { return fmt.Sprintf("%+.3fs", t.Sub(start).Seconds()) }
	var s strings.Builder
	fmt.Fprintf(&s, "%s op %d: accepted %s", name, op.ID, off(accepted))
	names := map[int64]string{}
	it := tc.GetWorkflowHistory(ctx, op.WorkflowID, op.RunID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			b.Logf("timeline of %s: %v", op.WorkflowID, err)
			return
		}
		at := ev.GetEventTime().AsTime()
		what := strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			n := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			names[ev.GetEventId()] = n
			what = "ActScheduled(" + n + ")"
		case ev.GetActivityTaskStartedEventAttributes() != nil:
			what = "ActStarted(" + names[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] + ")"
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			what = "ActCompleted(" + names[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] + ")"
		case ev.GetWorkflowTaskScheduledEventAttributes() != nil:
			// Where the task went: the worker's own sticky queue (its cached run goes on)
			// or the shared one (the run is replayed from its history).
			what += "(" + strings.ToLower(strings.TrimPrefix(ev.GetWorkflowTaskScheduledEventAttributes().GetTaskQueue().GetKind().String(), "TASK_QUEUE_KIND_")) + ")"
		case ev.GetMarkerRecordedEventAttributes() != nil:
			what = "Marker(" + ev.GetMarkerRecordedEventAttributes().GetMarkerName() + ")"
		}
		fmt.Fprintf(&s, "\n  %s %s", off(at), what)
	}
	if op.FinishedAt != nil {
		fmt.Fprintf(&s, "\n  %s operation FinishedAt", off(*op.FinishedAt))
	}
	b.Log(s.String())
}

// guestCosts logs what the test harness itself adds to each of the agent's zfs commands
// (the fault-injection shim /opt/slow/zfs, a shell in front of the real zfs) and what a
// snapshot costs as the agent takes it (a channel program) next to the bare command.
func guestCosts(b *testing.B, e *storagetest.Env) {
	b.Helper()
	pool := e.VM.Pool
	const n = 5
	list := fmt.Sprintf("zfs list -H -o name %s", pool)
	e.Shim(e.VM)
	defer e.RealZFS(e.VM)
	var shim, bare int64
	for range 2 {
		bare += e.GuestNanos(fmt.Sprintf("for i in $(seq %d); do %s; done", n, list))
		shim += e.GuestNanos(fmt.Sprintf("for i in $(seq %d); do /opt/slow/%s; done", n, list))
	}
	b.Logf("guest: `%s` %.0f ms bare, %.0f ms through the /opt/slow shim (%.0f ms per command)",
		list, float64(bare)/2/n/1e6, float64(shim)/2/n/1e6, float64(shim-bare)/2/n/1e6)

	if err := os.WriteFile(filepath.Join(e.VM.Share, "snap.lua"), []byte(zfs.SnapshotProgram), 0o644); err != nil {
		b.Fatal(err)
	}
	e.Guest("zfs", "create", "-p", "-s", "-V", "1073741824", pool+"/benchcost/v")
	var snap, prog, get []int64
	for k := range 5 {
		snap = append(snap, e.GuestNanos(fmt.Sprintf("zfs snapshot %s/benchcost/v@s%d", pool, k)))
		prog = append(prog, e.GuestNanos(fmt.Sprintf("zfs program -j %s /dev/stdin %s/benchcost/v@p%d </mnt/host/snap.lua", pool, pool, k)))
		get = append(get, e.GuestNanos(fmt.Sprintf("zfs get -H -p -o value guid %s/benchcost/v@s%d", pool, k)))
	}
	b.Logf("guest: zfs snapshot median %s, the agent's snapshot channel program (snapshot + guid) median %s, zfs get guid median %s",
		med(snap), med(prog), med(get))

	// A zvol's create costs more the deeper its dataset: the agent's are three levels down
	// (<pool>/iscsi/volumes/<id>), as are the bare commands' (<pool>/benchbare/volumes/…).
	// Interleaved, so that drift hits both depths alike.
	var depth2, depth3 []int64
	e.Guest("zfs", "create", "-p", pool+"/benchcost/volumes")
	for k := range 6 {
		e.Guest("udevadm", "settle", "--timeout=30")
		depth2 = append(depth2, e.GuestNanos(fmt.Sprintf("zfs create -p -s -V 1073741824 %s/benchcost/d%d", pool, k)))
		e.Guest("udevadm", "settle", "--timeout=30")
		depth3 = append(depth3, e.GuestNanos(fmt.Sprintf("zfs create -p -s -V 1073741824 %s/benchcost/volumes/d%d", pool, k)))
	}
	b.Logf("guest: zfs create -p -s -V median %s two levels down (<pool>/benchcost/<name>), %s three levels down as the agent's and the bare samples' (6 each, interleaved)",
		med(depth2), med(depth3))

	// `zfs create -V` returns before udev has made the zvol's /dev/zvol link: the udev work
	// after it runs on the same two emulated CPUs as whatever follows (for the agent, its
	// answer to Temporal; for the bare command, nothing that is timed).
	var tail []int64
	linked := 0
	for k := range 3 {
		e.Guest("udevadm", "settle", "--timeout=30")
		out := e.Guest("sh", "-c", fmt.Sprintf("zfs create -s -V 1073741824 %[1]s/benchcost/u%[2]d; s=$(date +%%s%%N); [ -e /dev/zvol/%[1]s/benchcost/u%[2]d ] && echo linked; udevadm settle --timeout=30; echo $(( $(date +%%s%%N) - s ))", pool, k))
		if strings.Contains(out, "linked") {
			linked++
		}
		f := strings.Fields(out)
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			b.Fatalf("guest udev tail: %q", out)
		}
		tail = append(tail, n)
	}
	b.Logf("guest: after zfs create returns, udev works %s more (median of 3; the link existed on return %d times of 3)", med(tail), linked)

	// The guest's clock against the host's: a TCG guest starts from the RTC's whole second
	// and runs no time service, so the agent's activity lines (began_after_handed_out:
	// its clock against Temporal's) are off by this much. Of five readings, the one with
	// the shortest exec round trip.
	var skew, within time.Duration = 0, time.Hour
	for range 5 {
		t0 := time.Now()
		out := e.Guest("date", "+%s%N")
		t1 := time.Now()
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			b.Fatalf("guest date: %q", out)
		}
		if half := t1.Sub(t0) / 2; half < within {
			skew, within = time.Unix(0, ns).Sub(t0.Add(half)), half
		}
	}
	b.Logf("guest: its clock is %s ahead of the host's (± %s)", skew.Round(100*time.Microsecond), within.Round(100*time.Microsecond))
}

func med(ns []int64) time.Duration {
	d := make([]time.Duration, len(ns))
	for i, n := range ns {
		d[i] = time.Duration(n)
	}
	return median(d).Round(time.Millisecond)
}

// traceOps runs a volume create, a group create and a publish once with every zfs
// command of the agent traced (start, end, arguments), and logs them.
func traceOps(b *testing.B, e *storagetest.Env, nid, volID, gid uint) {
	b.Helper()
	realZFS := strings.TrimSpace(e.Guest("sh", "-c", "command -v zfs"))
	trace := "#!/bin/sh\ns=$(date +%s%N)\n" + realZFS + " \"$@\"\nr=$?\necho \"$s $(date +%s%N) $*\" >>/run/zfs-trace\nexit $r\n"
	if err := os.WriteFile(filepath.Join(e.VM.Share, "tracezfs"), []byte(trace), 0o755); err != nil {
		b.Fatal(err)
	}
	// The tracer takes the shim's place on the agent's PATH; whatever was there (the shim,
	// or nothing: the real zfs) comes back after.
	e.Guest("sh", "-c", "rm -f /run/zfs.shim; mkdir -p /opt/slow && { [ ! -e /opt/slow/zfs ] || cp -P /opt/slow/zfs /run/zfs.shim; } && install -m 755 /mnt/host/tracezfs /opt/slow/zfs.new && mv /opt/slow/zfs.new /opt/slow/zfs")
	defer e.Guest("sh", "-c", "if [ -e /run/zfs.shim ]; then cp -P /run/zfs.shim /opt/slow/zfs.new && mv /opt/slow/zfs.new /opt/slow/zfs; else rm -f /opt/slow/zfs; fi")
	run := func(name string, call func() map[string]any) {
		e.Guest("rm", "-f", "/run/zfs-trace")
		start := time.Now()
		op := e.WaitOK(storagetest.OpID(call()))
		out := e.Guest("sh", "-c", "cat /run/zfs-trace 2>/dev/null || true")
		var s strings.Builder
		fmt.Fprintf(&s, "%s traced (%.3fs to FinishedAt, the trace's date forks included):", name, took(start, op).Seconds())
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.SplitN(l, " ", 3)
			if len(f) < 3 {
				continue
			}
			st, _ := strconv.ParseInt(f[0], 10, 64)
			en, _ := strconv.ParseInt(f[1], 10, 64)
			fmt.Fprintf(&s, "\n  zfs %s: %.0f ms", f[2], float64(en-st)/1e6)
		}
		b.Log(s.String())
	}
	run("volume-create", func() map[string]any {
		return e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": nid, "Alias": "traced", "vol_size": 1})
	})
	run("group-create", func() map[string]any {
		return e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": nid, "Name": "traced", "VolumeID": volID})
	})
	run("group-publish", func() map[string]any {
		return e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", gid), nil)
	})
}
