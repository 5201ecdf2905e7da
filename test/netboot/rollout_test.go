package netboot

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	panelw "github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/client"
)

// labUpAfter is the agent's bound on a boot in the rollout lab: a device whose session
// stays up this long with reads continuing is up. TCG boots are slow; the staying-up
// boot sector reads about once a second.
const labUpAfter = 10 * time.Second

// rolloutLab is issue 18's acceptance with real iPXE boots: the host panel with the
// in-process Temporal (publish, rollout and device workflows), an SMTP sink it mails
// through, the master's agent (boot service, our iSCSI target, the outcome tracker with
// a short bound, file disks) with its storage worker, and four device VMs of a strict
// group that have each booted its v1 (the staying-up boot sector, boot count 1) and come up.
type rolloutLab struct {
	t     *testing.T
	ctx   context.Context
	p     *HostPanel
	a     *HostAgent
	c     client.Client
	sink  *harness.SMTPSink
	g     *models.Group
	vms   []lab.DeviceVM
	ids   []uint
	byID  map[uint]lab.DeviceVM
	start time.Time
}

func startRolloutLab(t *testing.T) *rolloutLab {
	t.Helper()
	harness.RequirePackages(t, Packages...)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	t.Cleanup(cancel)
	l := &rolloutLab{t: t, ctx: ctx, start: time.Now(), byID: map[uint]lab.DeviceVM{}}
	l.p = StartHostPanel(t)
	// Workflow ids name groups, versions and devices: the tests of one process share
	// the Temporal server, so their rows must not share ids.
	harness.DistinctIDs(t, l.p.DB)
	l.p.Outcomes = boot.OutcomeBounds{UpAfter: labUpAfter}
	l.c = harness.TemporalClient(t)
	tmp, err := panelw.StartTemporal(ctx, l.c, l.p.Store, temporalclient.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmp.Worker.Stop() })
	l.sink = harness.StartSMTPSink(t)
	host, port, _ := net.SplitHostPort(l.sink.Addr)
	pn, _ := strconv.Atoi(port)
	if _, err := l.p.Store.UpdateSettings(ctx, l.p.admin, &models.SettingsInput{SMTPHost: &host, SMTPPort: &pn,
		SMTPFrom: models.Strp("panel@example.com"), SMTPTLS: models.Strp("none"), PanelHostname: models.Strp("panel.example.com")}); err != nil {
		t.Fatal(err)
	}
	l.a = StartHostAgent(t, l.p, nil, "")
	l.a.StartWorker(t, l.c)
	l.g = l.p.Group(true, false)
	l.head(lab.MakeUpDisk, Marker(l.g.ID, 1))
	if err := l.a.Disks.Publish(l.g.ID, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.p.DB.Create(&models.GroupVersion{GroupID: l.g.ID, Number: 1, State: models.StateReady}).Error; err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		d := DeviceN(0x1800 + i)
		l.vms = append(l.vms, DeviceVM(l.a.BootURL, d))
	}
	t.Cleanup(func() {
		for _, id := range l.ids {
			l.c.TerminateWorkflow(context.Background(), workflows.DeviceWorkflowID(id), "", "test over") //nolint:errcheck
		}
	})
	// Each device registers into the group, gets its v1 clone and comes up: its first
	// boot (count 1). Two at a time: the CI machine has two cores.
	l.bootUp(l.vms[:2], 1, 1)
	l.bootUp(l.vms[2:], 1, 1)
	for _, vm := range l.vms {
		id := l.p.Device(vm.MAC).ID
		l.ids = append(l.ids, id)
		l.byID[id] = vm
	}
	// Devices in id order (their registration raced): vms[i] is device ids[i].
	slices.Sort(l.ids)
	for i, id := range l.ids {
		l.vms[i] = l.byID[id]
	}
	t.Logf("4 devices %v booted v1 and came up, %s after the start", l.ids, l.since())
	return l
}

func (l *rolloutLab) since() time.Duration { return time.Since(l.start).Round(time.Second) }

// head writes the group head: the image the next publish takes.
func (l *rolloutLab) head(mk func(path, marker string, size int64) error, marker string) {
	l.t.Helper()
	p, _, _ := l.a.Disks.GroupPath(l.ctx, l.g.ID)
	if err := mk(p, marker, 0); err != nil {
		l.t.Fatal(err)
	}
}

// bootUp starts vms at once, each of which must print version v's marker and boot count
// boots, waits until the agent has recorded each boot of v `up`, and stops them. It
// returns the boots' times to up.
func (l *rolloutLab) bootUp(vms []lab.DeviceVM, v, boots int) []time.Duration {
	l.t.Helper()
	since := time.Now().Add(-time.Second)
	running := make([]*lab.RunningVM, len(vms))
	for i, vm := range vms {
		r, err := vm.Start(l.t)
		if err != nil {
			l.t.Fatal(err)
		}
		running[i] = r
	}
	defer func() {
		for _, r := range running {
			r.Stop()
		}
	}()
	want := Marker(l.g.ID, v)
	for _, r := range running {
		m, err := r.Expect(lab.BootsLine, 4*time.Minute)
		if err != nil {
			l.t.Fatalf("boot of v%d: %v", v, err)
		}
		out := r.Output()
		marker := lab.MarkerLine.FindStringSubmatch(out)
		if marker == nil || strings.TrimSpace(marker[1]) != want || m[1] != strconv.Itoa(boots) {
			l.t.Fatalf("device %s booted %q with boot count %s, want %q count %d; output:\n%s",
				r.Device.MAC, marker, m[1], want, boots, lab.ConsoleTail(out))
		}
		l.t.Logf("device %s booted %s (boot %s) %s after its start", r.Device.MAC, want, m[1], time.Since(r.Start).Round(time.Second))
	}
	ups := make([]time.Duration, len(running))
	for i, r := range running {
		id := l.p.Device(r.Device.MAC).ID
		var h models.BootHistory
		l.until(fmt.Sprintf("the agent records device %d's boot of v%d up (bound %s)", id, v, labUpAfter), 2*labUpAfter+90*time.Second, func() bool {
			err := l.p.DB.Where("device_id = ? AND version = ? AND created_at >= ? AND result <> ''", id, v, since).Order("id DESC").Take(&h).Error
			return err == nil
		}, func() string { return lab.ConsoleTail(r.Output()) })
		if h.Result != models.BootResultUp {
			l.t.Fatalf("device %d's boot of v%d: %s (%s), want up; console:\n%s", id, v, h.Result, h.ResultReason, lab.ConsoleTail(r.Output()))
		}
		if _, exited := r.Exited(); exited {
			l.t.Fatalf("device %d's VM ended on its own: its boot sector must stay up:\n%s", id, lab.ConsoleTail(r.Output()))
		}
		ups[i] = time.Duration(h.UpMS) * time.Millisecond
	}
	return ups
}

// until polls ok every 250 ms up to d, failing with what and detail's text.
func (l *rolloutLab) until(what string, d time.Duration, ok func() bool, detail func() string) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) || l.ctx.Err() != nil {
			msg := ""
			if detail != nil {
				msg = "\n" + detail()
			}
			l.t.Fatalf("not within %s: %s%s", d, what, msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// publish publishes the group head as v2 with rollout and returns the rollout's id.
func (l *rolloutLab) publish(rollout map[string]any) uint {
	l.t.Helper()
	m := l.p.API("POST", fmt.Sprintf("/groups/%d/publish.json", l.g.ID), map[string]any{"note": "v2", "rollout": rollout})
	ro, _ := m["rollout"].(map[string]any)
	if ro == nil {
		l.t.Fatalf("publish with a rollout: %v", m)
	}
	return uint(ro["id"].(float64))
}

func (l *rolloutLab) rollout(id uint) models.Rollout {
	l.t.Helper()
	var r models.Rollout
	if err := l.p.DB.Take(&r, id).Error; err != nil {
		l.t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(r.Canaries), &r.CanaryIDs)
	return r
}

// waitRollout waits for rollout id to reach state, and for its operation to end.
func (l *rolloutLab) waitRollout(id uint, state string, d time.Duration) (models.Rollout, models.Operation) {
	l.t.Helper()
	var r models.Rollout
	l.until("rollout "+strconv.Itoa(int(id))+" is "+state, d, func() bool { r = l.rollout(id); return r.State == state },
		func() string { return fmt.Sprintf("rollout: %+v\noperation: %+v", r, l.operation(r.OperationID)) })
	var o models.Operation
	l.until("the rollout's operation ended", time.Minute, func() bool { o = l.operation(r.OperationID); return o.Finished() }, nil)
	return r, o
}

func (l *rolloutLab) operation(id uint) models.Operation {
	var o models.Operation
	l.p.DB.Take(&o, id) //nolint:errcheck
	return o
}

// clones are the group versions (numbers) of the devices' disks as the panel records them.
func (l *rolloutLab) clones() []int {
	l.t.Helper()
	var out []int
	for _, id := range l.ids {
		var d models.Device
		var v models.GroupVersion
		if err := l.p.DB.Take(&d, id).Error; err != nil || d.CloneVersionID == nil {
			l.t.Fatalf("device %d: %+v %v", id, d, err)
		}
		if err := l.p.DB.Take(&v, *d.CloneVersionID).Error; err != nil {
			l.t.Fatal(err)
		}
		out = append(out, v.Number)
	}
	return out
}

// TestLabRolloutGood: a good v2 (the staying-up boot sector) rolled out to 2 named
// canaries of 4 device VMs: the canaries boot v2 and come up, the rollout succeeds with
// the measured times and the group assigns v2, then the other two boot v2 too.
func TestLabRolloutGood(t *testing.T) {
	l := startRolloutLab(t)
	l.head(lab.MakeUpDisk, Marker(l.g.ID, 2))
	id := l.publish(map[string]any{"devices": l.ids[:2], "wait_minutes": 10})
	l.until("the canary wave began", 2*time.Minute, func() bool { return l.rollout(id).State == models.RolloutCanary }, nil)
	r := l.rollout(id)
	if fmt.Sprint(r.CanaryIDs) != fmt.Sprint(l.ids[:2]) {
		t.Fatalf("canaries %v, want %v", r.CanaryIDs, l.ids[:2])
	}
	wave := time.Now()
	ups := l.bootUp(l.vms[:2], 2, 1)
	r, o := l.waitRollout(id, models.RolloutSucceeded, 2*time.Minute)
	if o.State != models.OpSucceeded || !strings.Contains(o.Message, "2 of 2 canaries up") || !strings.Contains(o.Message, "p95") {
		t.Fatalf("rollout operation %+v", o)
	}
	t.Logf("rollout succeeded %s after its wave began; canaries' times to up %v; %s", time.Since(wave).Round(time.Second), ups, o.Message)
	if got := l.clones(); fmt.Sprint(got) != "[2 2 1 1]" {
		t.Fatalf("disks after the canaries: %v, want [2 2 1 1]", got)
	}
	l.bootUp(l.vms[2:], 2, 1)
	if got := l.clones(); fmt.Sprint(got) != "[2 2 2 2]" {
		t.Fatalf("disks after the rollout: %v, want every device on v2", got)
	}
	if n := len(l.sink.Mail()); n != 0 {
		t.Fatalf("a successful rollout mailed %d times", n)
	}
	t.Logf("every device booted v2; the test took %s", l.since())
}

// TestLabRolloutBad: a bad v2 (the boot sector that prints its marker and ends the VM at
// once) rolled out to 50 %: both canaries boot it and drop, the agent records them
// failed, the rollout rolls back by itself, restores the canaries' previous disks, and
// mails once. The canaries then boot v1 again from their own disks (boot count 2: the
// count each wrote before the rollout is there), and so do the others, which never left v1.
func TestLabRolloutBad(t *testing.T) {
	l := startRolloutLab(t)
	l.head(lab.MakeBootDisk, "bad-v2")
	id := l.publish(map[string]any{"percent": 50, "wait_minutes": 10})
	l.until("the canary wave began", 2*time.Minute, func() bool { return l.rollout(id).State == models.RolloutCanary }, nil)
	r := l.rollout(id)
	if len(r.CanaryIDs) != 2 {
		t.Fatalf("50 %% of 4 devices: canaries %v", r.CanaryIDs)
	}
	var canaries, others []lab.DeviceVM
	var otherIDs []uint
	for _, d := range l.ids {
		if d == r.CanaryIDs[0] || d == r.CanaryIDs[1] {
			canaries = append(canaries, l.byID[d])
		} else {
			others = append(others, l.byID[d])
			otherIDs = append(otherIDs, d)
		}
	}
	wave := time.Now()
	// The canaries boot the bad v2 at once: it prints its marker and ends the VM (33).
	var wg sync.WaitGroup
	res := make([]*lab.DeviceResult, 2)
	errs := make([]error, 2)
	for i, vm := range canaries {
		wg.Go(func() { res[i], errs[i] = vm.Run(l.ctx, 4*time.Minute) })
	}
	wg.Wait()
	for i := range canaries {
		if errs[i] != nil || res[i].Marker != "bad-v2" || res[i].Exit != 33 {
			t.Fatalf("canary %s on the bad v2: %+v %v", canaries[i].MAC, res[i], errs[i])
		}
	}
	r, o := l.waitRollout(id, models.RolloutRolledBack, 2*time.Minute)
	if o.State != models.OpFailed || !strings.Contains(o.Error, models.RolloutRolledBack) {
		t.Fatalf("rollout operation %+v", o)
	}
	t.Logf("rolled back %s after the wave began: %s", time.Since(wave).Round(time.Second), o.Error)
	// The first failed canary rolls back (every one must come up); the other's result
	// reaches the panel with the agent's next delivery, a moment later.
	var fails []models.BootHistory
	l.until("both canaries' boots of v2 have their result", time.Minute, func() bool {
		fails = nil
		l.p.DB.Where("group_id = ? AND version = 2", l.g.ID).Order("device_id").Find(&fails)
		return len(fails) == 2 && fails[0].Result != "" && fails[1].Result != ""
	}, func() string { return fmt.Sprintf("%+v", fails) })
	for _, h := range fails {
		if h.Result != models.BootResultFailed || (h.DeviceID != r.CanaryIDs[0] && h.DeviceID != r.CanaryIDs[1]) {
			t.Fatalf("boot of v2 %+v, want a canary's, failed", h)
		}
		t.Logf("canary %d's boot of v2: %s (%s)", h.DeviceID, h.Result, h.ResultReason)
	}
	// The canaries' restores, through the device workflows and the agent's worker.
	var restores []models.Operation
	l.until("the canaries' restores ended", 2*time.Minute, func() bool {
		restores = nil
		l.p.DB.Where("kind = ?", models.OpDeviceRestore).Order("object_id").Find(&restores)
		return len(restores) == 2 && restores[0].Finished() && restores[1].Finished()
	}, func() string { return fmt.Sprintf("%+v", restores) })
	for i, op := range restores {
		if op.State != models.OpSucceeded || op.ObjectID != r.CanaryIDs[i] {
			t.Fatalf("restore %+v, want canary %d's, succeeded", op, r.CanaryIDs[i])
		}
	}
	if got := l.clones(); fmt.Sprint(got) != "[1 1 1 1]" {
		t.Fatalf("disks after the rollback: %v, want every device on v1", got)
	}
	// The canaries boot their previous disks: v1, and the count each wrote before goes on.
	l.bootUp(canaries, 1, 2)
	l.bootUp(others, 1, 2)
	var left int64
	l.p.DB.Model(&models.BootHistory{}).Where("device_id IN ? AND version <> 1", otherIDs).Count(&left)
	trash, err := l.a.Disks.Trash()
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("the non-canaries %v booted another version than v1 %d times", otherIDs, left)
	}
	for _, e := range trash {
		if !strings.HasPrefix(e, fmt.Sprintf("device-%d-", r.CanaryIDs[0])) && !strings.HasPrefix(e, fmt.Sprintf("device-%d-", r.CanaryIDs[1])) {
			t.Fatalf("the erator holds %s: only the canaries' disks were replaced (%v)", e, trash)
		}
	}
	// Exactly one mail: the rollout's workflow has ended, and its mail id is used once.
	if !l.sink.Wait(time.Minute) {
		t.Fatal("no rollback mail")
	}
	if err := l.c.GetWorkflow(l.ctx, workflows.RolloutID(l.g.ID, 2), "").Get(l.ctx, nil); err != nil {
		t.Fatalf("rollout workflow: %v", err)
	}
	mails := l.sink.Mail()
	if len(mails) != 1 || !strings.Contains(mails[0].Data, "rolled-back") {
		t.Fatalf("mails: %+v, want one rollback mail", mails)
	}
	alerts, err := l.p.Store.Alerts(l.ctx, l.p.admin)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range alerts {
		if a.Code == models.AlertRolloutRolledBack {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d rollback alerts, want 1: %+v", n, alerts)
	}
	t.Logf("canaries %v back on their v1 disks, %v never left v1, one mail; the test took %s", r.CanaryIDs, otherIDs, l.since())
}
