// Package rollout_test rolls group versions out in waves (issue 18) through the real
// parts: the panel's API and engine on PostgreSQL, the rollout workflow on the
// in-process Temporal server, go-mail to an SMTP server on loopback. The agent is a
// worker on the master's queue that snapshots and restores without ZFS; the canaries'
// boots are the boot history rows the agent's observer records (models.RecordBoots).
package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	panelw "github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// env is a panel with its engine and API, a network whose master (its fake agent) holds
// a strict group following its newest version v1, four devices with v1 clones on it, and
// an SMTP sink the panel mails through.
type env struct {
	t      *testing.T
	ctx    context.Context
	db     *gorm.DB
	store  *models.Store
	c      client.Client
	tmp    *panelw.Temporal
	url    string
	auth   string
	sink   *harness.SMTPSink
	nid    uint
	sid    uint
	g      models.Group
	v1     uint
	devs   []uint
	mu     sync.Mutex
	restor []uint // devices the agent restored
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	e.db = harness.NewDB(t, "postgres")
	harness.DistinctIDs(t, e.db)
	e.store = &models.Store{DB: e.db}
	e.c = harness.TemporalClient(t)
	tmp, err := panelw.StartTemporal(ctx, e.c, e.store, temporalclient.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.tmp = tmp
	t.Cleanup(func() { e.tmp.Worker.Stop() })
	app := panelw.NewApp(panelw.Options{Store: e.store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)                  //nolint:errcheck
	t.Cleanup(func() { app.Shutdown() }) //nolint:errcheck
	e.url = "http://" + ln.Addr().String()
	admin := harness.Admin(t, e.db)
	e.auth = harness.Token(t, e.db, admin.ID)

	e.sink = harness.StartSMTPSink(t)
	host, port, _ := net.SplitHostPort(e.sink.Addr)
	p, _ := strconv.Atoi(port)
	if _, err := e.store.UpdateSettings(ctx, admin, &models.SettingsInput{SMTPHost: &host, SMTPPort: &p,
		SMTPFrom: models.Strp("panel@example.com"), SMTPTLS: models.Strp("none"), PanelHostname: models.Strp("panel.example.com")}); err != nil {
		t.Fatal(err)
	}

	n, err := e.store.CreateNetwork(ctx, admin, &models.NetworkInput{Name: models.Strp("rollouts"), ClientID: models.Uintp(admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	e.nid = n.Object.(*models.Network).ID
	srv, err := e.store.CreateServer(ctx, admin, &models.ServerInput{NetworkID: &e.nid, Name: models.Strp("m"), IP: models.Strp("10.0.0.1"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	e.sid = srv.Object.(*models.Server).ID
	if err := models.RecordServerStats(ctx, e.db, e.sid, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
		t.Fatal(err)
	}
	vol := &models.Volume{NetworkID: e.nid, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := e.db.Create(vol).Error; err != nil {
		t.Fatal(err)
	}
	e.g = models.Group{NetworkID: e.nid, Name: "desktops", VolumeID: vol.ID, StrictVersioning: true, State: models.StateReady}
	if err := e.db.Create(&e.g).Error; err != nil {
		t.Fatal(err)
	}
	v1 := &models.GroupVersion{GroupID: e.g.ID, Number: 1, State: models.StateReady, GUID: "1001"}
	if err := e.db.Create(v1).Error; err != nil {
		t.Fatal(err)
	}
	e.v1 = v1.ID
	for i := 1; i <= 4; i++ {
		d, err := e.store.CreateDevice(ctx, admin, &models.DeviceInput{NetworkID: &e.nid, MAC: models.Strp(fmt.Sprintf("52:54:00:18:00:%02d", i)), GroupID: &e.g.ID})
		if err != nil {
			t.Fatal(err)
		}
		did := d.Object.(*models.Device).ID
		if err := models.RecordClone(ctx, e.db, e.nid, did, e.v1, e.sid); err != nil {
			t.Fatal(err)
		}
		e.devs = append(e.devs, did)
		// v1's boots: up in 2 s (the previous version's p95 the thresholds compare to).
		e.boot(did, 1, models.BootResultUp, 2000)
	}
	e.startAgent()
	t.Cleanup(func() {
		for _, d := range e.devs {
			e.c.TerminateWorkflow(context.Background(), workflows.DeviceWorkflowID(d), "", "test over") //nolint:errcheck
		}
	})
	return e
}

// startAgent is the master's agent: snapshots get a guid, a device restore brings back
// the v1 disk its reprovisioning replaced.
func (e *env) startAgent() {
	aw := worker.New(e.c, workflows.ServerQueue(e.sid), worker.Options{})
	aw.RegisterActivityWithOptions(func(_ context.Context, in storage.SnapshotInput) (*storage.SnapshotResult, error) {
		return &storage.SnapshotResult{Snapshot: in.Dataset + "@" + in.Name, GUID: "2002"}, nil
	}, activity.RegisterOptions{Name: "Snapshot"})
	for _, name := range []string{"UnexportTarget", "ExportTarget"} {
		aw.RegisterActivityWithOptions(func(context.Context, storage.ExportInput) error { return nil }, activity.RegisterOptions{Name: name})
	}
	aw.RegisterActivityWithOptions(func(_ context.Context, in storage.RestoreDeviceInput) (*storage.RestoreDeviceResult, error) {
		e.mu.Lock()
		e.restor = append(e.restor, in.DeviceID)
		e.mu.Unlock()
		return &storage.RestoreDeviceResult{From: storage.EratorDataset(in.Pool, "device", in.DeviceID, in.Unix-60),
			Origin: fmt.Sprintf("%s/iscsi/groups/%d@v1", in.Pool, e.g.ID), GroupID: e.g.ID, Version: 1}, nil
	}, activity.RegisterOptions{Name: "RestoreDevice"})
	if err := aw.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(aw.Stop)
}

// boot records a boot of version v by device d with its result, as the agent's observer does.
func (e *env) boot(d uint, v int, result string, upMS int64) {
	e.t.Helper()
	h := models.BootHistory{DeviceID: d, NetworkID: e.nid, ServerID: e.sid, GroupID: e.g.ID, Version: v,
		Outcome: models.BootOutcomeBooted, Result: result, UpMS: upMS, Reason: "observed by the test's agent"}
	if err := e.db.Create(&h).Error; err != nil {
		e.t.Fatal(err)
	}
}

// do sends an API request and returns the status and the decoded object.
func (e *env) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+"/api/v0.9.2"+path, rd)
	req.Header.Set("Authorization", e.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// publish publishes v2 with a rollout and returns the rollout's id.
func (e *env) publish(rollout map[string]any) uint {
	e.t.Helper()
	code, m := e.do("POST", fmt.Sprintf("/groups/%d/publish.json", e.g.ID), map[string]any{"note": "v2", "rollout": rollout})
	ro, _ := m["rollout"].(map[string]any)
	if code != 202 || ro == nil {
		e.t.Fatalf("publish with a rollout: %d %v", code, m)
	}
	return uint(ro["id"].(float64))
}

// until polls the database until ok holds (bounded by the test's context).
func (e *env) until(what string, ok func() bool) {
	e.t.Helper()
	for !ok() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("never: %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *env) rollout(id uint) models.Rollout {
	e.t.Helper()
	var r models.Rollout
	if err := e.db.Take(&r, id).Error; err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) operation(id uint) models.Operation {
	e.t.Helper()
	var o models.Operation
	if err := e.db.Take(&o, id).Error; err != nil {
		e.t.Fatal(err)
	}
	return o
}

// inWave waits for the canary wave and returns the rollout then.
func (e *env) inWave(id uint) models.Rollout {
	e.t.Helper()
	e.until("the canary wave began", func() bool { return e.rollout(id).State == models.RolloutCanary })
	r := e.rollout(id)
	r.CanaryIDs = nil
	_ = json.Unmarshal([]byte(r.Canaries), &r.CanaryIDs)
	return r
}

// assigned is the version number device d is told to boot by the panel's boot lookup.
func (e *env) assigned(d uint) (int, bool) {
	e.t.Helper()
	var dev models.Device
	if err := e.db.Take(&dev, d).Error; err != nil {
		e.t.Fatal(err)
	}
	st, err := models.BootLookup(e.ctx, e.db, e.sid, nil, dev.MAC, "", 0)
	if err != nil || st.Assigned == nil {
		e.t.Fatalf("boot lookup of device %d: %+v %v", d, st, err)
	}
	return st.Assigned.Number, st.Canary
}

func (e *env) groupAssigns() int {
	e.t.Helper()
	var g models.Group
	if err := e.db.Take(&g, e.g.ID).Error; err != nil {
		e.t.Fatal(err)
	}
	var vs []models.GroupVersion
	if err := e.db.Where("group_id = ? AND state = ?", g.ID, models.StateReady).Find(&vs).Error; err != nil {
		e.t.Fatal(err)
	}
	if v := models.AssignedVersion(&g, vs); v != nil {
		return v.Number
	}
	return 0
}

// TestRolloutGood: v2 to two named canaries; the others stay on v1 while the canaries
// boot it; both come up within the thresholds: the whole group assigns v2 and the
// operation succeeds with the measured figures.
func TestRolloutGood(t *testing.T) {
	e := newEnv(t)
	id := e.publish(map[string]any{"devices": []uint{e.devs[0], e.devs[1]}, "wait_minutes": 10})
	r := e.inWave(id)
	if fmt.Sprint(r.CanaryIDs) != fmt.Sprint(e.devs[:2]) || r.Previous != 1 || !r.Follow {
		t.Fatalf("rollout in its wave: %+v", r)
	}
	for i, d := range e.devs {
		v, canary := e.assigned(d)
		if want := map[bool]int{true: 2, false: 1}[i < 2]; v != want || canary != (i < 2) {
			t.Fatalf("device %d is served v%d (canary %v), want v%d", d, v, canary, want)
		}
	}
	if got := e.groupAssigns(); got != 1 {
		t.Fatalf("the group assigns v%d during the wave, want v1", got)
	}
	e.boot(e.devs[0], 2, models.BootResultUp, 2500)
	e.boot(e.devs[1], 2, models.BootResultUp, 2900)
	e.until("the rollout succeeded", func() bool { return e.rollout(id).State == models.RolloutSucceeded })
	o := e.operation(r.OperationID)
	e.until("the operation ended", func() bool { o = e.operation(r.OperationID); return o.Finished() })
	if o.State != models.OpSucceeded || o.Kind != models.OpGroupRollout || o.WorkflowID != workflows.RolloutID(e.g.ID, 2) ||
		!strings.Contains(o.Message, "2 of 2 canaries up") || !strings.Contains(o.Message, "p95 2.9s") {
		t.Fatalf("operation %+v", o)
	}
	if got := e.groupAssigns(); got != 2 {
		t.Fatalf("the group assigns v%d after the rollout, want v2", got)
	}
	for _, d := range e.devs {
		if v, canary := e.assigned(d); v != 2 || canary {
			t.Fatalf("device %d is served v%d (canary %v) after the rollout, want v2", d, v, canary)
		}
	}
	if len(e.sink.Mail()) != 0 {
		t.Fatalf("a successful rollout mailed: %+v", e.sink.Mail())
	}
}

// TestRolloutBad: v2 to 50 % of the devices; one canary reprovisioned and failed: the
// rollout rolls back by itself: the group assigns v1 again, the reprovisioned canary's
// previous disk is restored (the other canary never left v1), one mail, one alert
// naming the failing device and its boot.
func TestRolloutBad(t *testing.T) {
	e := newEnv(t)
	id := e.publish(map[string]any{"percent": 50, "wait_minutes": 10})
	r := e.inWave(id)
	if len(r.CanaryIDs) != 2 {
		t.Fatalf("50 %% of 4 devices: canaries %v", r.CanaryIDs)
	}
	bad, other := r.CanaryIDs[0], r.CanaryIDs[1]
	var v2 models.GroupVersion
	if err := e.db.Where("group_id = ? AND number = 2", e.g.ID).Take(&v2).Error; err != nil {
		t.Fatal(err)
	}
	// The bad canary was reprovisioned onto v2 (as its device workflow records it) and failed.
	if err := models.RecordClone(e.ctx, e.db, e.nid, bad, v2.ID, e.sid); err != nil {
		t.Fatal(err)
	}
	e.boot(bad, 2, models.BootResultFailed, 0)
	e.until("the rollout rolled back", func() bool { return e.rollout(id).State == models.RolloutRolledBack })
	o := e.operation(r.OperationID)
	e.until("the operation ended", func() bool { o = e.operation(r.OperationID); return o.Finished() })
	if o.State != models.OpFailed || !strings.Contains(o.Error, models.RolloutRolledBack) || !strings.Contains(o.Error, fmt.Sprintf("device %d", bad)) {
		t.Fatalf("operation %+v", o)
	}
	if got := e.groupAssigns(); got != 1 {
		t.Fatalf("the group assigns v%d after the rollback, want v1", got)
	}
	for _, d := range e.devs {
		if v, canary := e.assigned(d); v != 1 || canary {
			t.Fatalf("device %d is served v%d (canary %v) after the rollback, want v1", d, v, canary)
		}
	}
	// The restore of the reprovisioned canary, and of it only.
	var restores []models.Operation
	e.until("the restore ended", func() bool {
		restores = nil
		e.db.Where("kind = ?", models.OpDeviceRestore).Find(&restores)
		return len(restores) == 1 && restores[0].Finished()
	})
	if restores[0].ObjectID != bad || restores[0].State != models.OpSucceeded {
		t.Fatalf("restores %+v, want device %d's", restores, bad)
	}
	e.mu.Lock()
	if fmt.Sprint(e.restor) != fmt.Sprint([]uint{bad}) {
		t.Errorf("the agent restored %v, want [%d]", e.restor, bad)
	}
	e.mu.Unlock()
	var dev models.Device
	e.db.Take(&dev, bad)
	if dev.CloneVersionID == nil || *dev.CloneVersionID != e.v1 {
		t.Fatalf("canary %d's disk is version %v after the restore, want v1's %d", bad, dev.CloneVersionID, e.v1)
	}
	e.db.Take(&dev, other)
	if dev.CloneVersionID == nil || *dev.CloneVersionID != e.v1 {
		t.Fatalf("canary %d left v1: %v", other, dev.CloneVersionID)
	}
	// Exactly one mail: its workflow has ended, and the rollout's mail id is used once.
	if !e.sink.Wait(60 * time.Second) {
		t.Fatal("no rollback mail")
	}
	wf := e.c.GetWorkflow(e.ctx, workflows.RolloutID(e.g.ID, 2), "")
	if err := wf.Get(e.ctx, nil); err != nil {
		t.Fatalf("rollout workflow: %v", err)
	}
	if mails := e.sink.Mail(); len(mails) != 1 || !strings.Contains(mails[0].Data, "rolled-back") || !strings.Contains(mails[0].Data, fmt.Sprintf("device %d", bad)) {
		t.Fatalf("mails: %+v", mails)
	}
	admin := harness.Admin(t, e.db)
	alerts, err := e.store.Alerts(e.ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range alerts {
		if a.Code == models.AlertRolloutRolledBack {
			n++
			if !strings.Contains(a.Message, fmt.Sprintf("device %d: boot of v2", bad)) || !strings.Contains(a.Message, "failed") {
				t.Errorf("alert %q does not name the failing canary's boot", a.Message)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d rollback alerts, want 1: %+v", n, alerts)
	}
}

// TestRolloutControl: pause, resume and abort through the API: a paused rollout ignores
// its canaries' boots, a resumed one reads them again, an aborted one goes back to v1 and
// its operation ends cancelled. Bad input is a 4xx naming the field, with nothing left.
func TestRolloutControl(t *testing.T) {
	e := newEnv(t)
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"percent": 0}, "rollout.percent"},
		{map[string]any{"devices": []uint{e.devs[0]}, "percent": 10}, "rollout.percent"},
		{map[string]any{"devices": []uint{999999}}, "rollout.devices"},
		{map[string]any{"percent": 50, "max_p95_factor": 0.5}, "rollout.max_p95_factor"},
		{map[string]any{"percent": 50, "colour": "red"}, "rollout"},
	} {
		code, m := e.do("POST", fmt.Sprintf("/groups/%d/publish.json", e.g.ID), map[string]any{"rollout": bad.body})
		if code != 422 || m["field"] != bad.field {
			t.Errorf("publish with rollout %v: %d %v, want 422 naming %s", bad.body, code, m, bad.field)
		}
	}
	var nv, nr int64
	e.db.Model(&models.GroupVersion{}).Where("group_id = ?", e.g.ID).Count(&nv)
	e.db.Model(&models.Rollout{}).Count(&nr)
	if nv != 1 || nr != 0 {
		t.Fatalf("refused publishes left %d versions and %d rollouts", nv, nr)
	}

	id := e.publish(map[string]any{"devices": []uint{e.devs[0], e.devs[1]}, "wait_minutes": 10})
	r := e.inWave(id)
	path := fmt.Sprintf("/rollouts/%d", id)
	signal := func(name string, paused bool) {
		t.Helper()
		if code, m := e.do("POST", path+"/"+name+".json", nil); code != 202 {
			t.Fatalf("%s: %d %v", name, code, m)
		}
		e.until("the rollout's pause is "+strconv.FormatBool(paused), func() bool { return e.rollout(id).Paused == paused })
	}
	signal("pause", true)
	e.until("the operation shows the pause", func() bool { return e.operation(r.OperationID).Step == "paused" })
	signal("resume", false)
	e.until("the operation shows the resume", func() bool { return e.operation(r.OperationID).Step != "paused" })
	signal("pause", true)
	if code, m := e.do("GET", path+".json", nil); code != 200 || m["state"] != models.RolloutCanary || m["paused"] != true {
		t.Fatalf("paused rollout: %d %v", code, m)
	}
	// Both canaries come up while it is paused: it does not look (it would succeed), and
	// the abort ends it.
	e.boot(e.devs[0], 2, models.BootResultUp, 2100)
	e.boot(e.devs[1], 2, models.BootResultUp, 2100)
	if code, m := e.do("POST", path+"/abort.json", nil); code != 202 {
		t.Fatalf("abort: %d %v", code, m)
	}
	e.until("the rollout aborted", func() bool { return e.rollout(id).State == models.RolloutAborted })
	o := e.operation(r.OperationID)
	e.until("the operation ended", func() bool { o = e.operation(r.OperationID); return o.Finished() })
	if o.State != models.OpCancelled || !strings.Contains(o.Error, "aborted by an operator") {
		t.Fatalf("aborted operation %+v", o)
	}
	if got := e.groupAssigns(); got != 1 {
		t.Fatalf("the group assigns v%d after the abort, want v1", got)
	}
	if code, m := e.do("POST", path+"/pause.json", nil); code != 409 || m["field"] != "state" {
		t.Fatalf("pause of an ended rollout: %d %v", code, m)
	}
	if len(e.sink.Mail()) != 0 {
		t.Fatalf("an abort mailed: %+v", e.sink.Mail())
	}
}

// TestRolloutWorkerRestart: the panel worker stops mid-wave and a new one starts (a panel
// restart): the rollout goes on from its wave (its canaries unchanged) and ends succeeded.
func TestRolloutWorkerRestart(t *testing.T) {
	e := newEnv(t)
	id := e.publish(map[string]any{"devices": []uint{e.devs[2]}, "wait_minutes": 10})
	r := e.inWave(id)
	e.until("the operation shows the wave", func() bool { return e.operation(r.OperationID).Step == "canaries" })
	e.tmp.Worker.Stop()
	// The canary boots while no panel worker runs.
	e.boot(e.devs[2], 2, models.BootResultUp, 1800)
	w := worker.New(e.c, workflows.PanelQueue, worker.Options{})
	workflows.Register(w)
	w.RegisterActivity(&panel.Activities{DB: e.db, Agents: agentclient.New(e.db), Store: e.store})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	e.tmp.Worker = w
	e.until("the rollout succeeded", func() bool { return e.rollout(id).State == models.RolloutSucceeded })
	if got := e.rollout(id); got.Canaries != r.Canaries || got.WaveAt == nil || !got.WaveAt.Equal(*r.WaveAt) {
		t.Fatalf("the wave changed across the restart: %+v, was %+v", got, r)
	}
	if got := e.groupAssigns(); got != 2 {
		t.Fatalf("the group assigns v%d, want v2", got)
	}
}
