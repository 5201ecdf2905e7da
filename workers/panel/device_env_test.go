package panel

import (
	"context"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"gorm.io/gorm"
)

// deviceEnv is the setting of the device workflow's tests on the real (in-process)
// Temporal: a panel with its engine on SQLite, a network whose master is server sid, a
// strict group with ready versions 1..n, and device did whose disk is a clone of v1 on
// the master. The device's workflow is ended when the test ends.
type deviceEnv struct {
	ctx      context.Context
	db       *gorm.DB
	admin    *models.Actor
	store    *models.Store
	c        client.Client
	tmp      *Temporal
	nid, sid uint
	g        *models.Group
	versions map[int]uint // version number -> id
	did      uint
}

// startEngine is a panel's store on a fresh SQLite database with its first admin, wired
// to the shared in-process Temporal server by StartTemporal (panel worker stopped at the end).
func startEngine(t *testing.T, ctx context.Context) (*models.Store, *models.Actor, client.Client, *Temporal) {
	t.Helper()
	db := harness.NewDB(t, "sqlite")
	store := &models.Store{DB: db}
	c := harness.TemporalClient(t)
	tmp, err := StartTemporal(ctx, c, store, temporalclient.Config{Address: "127.0.0.1:7233", Namespace: "default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Worker.Stop)
	return store, harness.Admin(t, db), c, tmp
}

func newDeviceEnv(t *testing.T, ctx context.Context, name, mac string, n int) *deviceEnv {
	t.Helper()
	e := &deviceEnv{ctx: ctx, versions: map[int]uint{}}
	e.store, e.admin, e.c, e.tmp = startEngine(t, ctx)
	e.db = e.store.DB

	created, err := e.store.CreateNetwork(ctx, e.admin, &models.NetworkInput{Name: models.Strp(name), ClientID: models.Uintp(e.admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	e.nid = created.Object.(*models.Network).ID
	srv, err := e.store.CreateServer(ctx, e.admin, &models.ServerInput{NetworkID: &e.nid, Name: models.Strp("m"), IP: models.Strp("10.0.0.1"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	e.sid = srv.Object.(*models.Server).ID
	vol := &models.Volume{NetworkID: e.nid, Alias: "base", SizeGiB: 1, State: models.StateReady}
	if err := e.db.Create(vol).Error; err != nil {
		t.Fatal(err)
	}
	e.g = &models.Group{NetworkID: e.nid, Name: "desktops", VolumeID: vol.ID, StrictVersioning: true, State: models.StateReady}
	if err := e.db.Create(e.g).Error; err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= n; v++ {
		gv := &models.GroupVersion{GroupID: e.g.ID, Number: v, State: models.StateReady}
		if err := e.db.Create(gv).Error; err != nil {
			t.Fatal(err)
		}
		e.versions[v] = gv.ID
	}
	dev, err := e.store.CreateDevice(ctx, e.admin, &models.DeviceInput{NetworkID: &e.nid, MAC: models.Strp(mac), GroupID: &e.g.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.did = dev.Object.(*models.Device).ID
	if err := models.RecordClone(ctx, e.db, e.nid, e.did, e.versions[1], e.sid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.c.TerminateWorkflow(context.Background(), workflows.DeviceWorkflowID(e.did), "", "test over") //nolint:errcheck
	})
	return e
}

// provision is the agent's boot path asking for version v, decided with the device
// unlocked; the channel gets the outcome.
func (e *deviceEnv) provision(v int) <-chan error {
	out := make(chan error, 1)
	go func() {
		r := wire.ProvisionRequest{NetworkID: e.nid, DeviceID: e.did, GroupID: e.g.ID, ServerID: e.sid, Version: v,
			VersionID: e.versions[v], Reprovision: true, OldServerID: e.sid, Revision: uint64(time.Now().UnixNano())}
		h, err := temporalclient.UpdateDevice(e.ctx, e.c, e.did, workflows.UpdateProvision, workflows.ProvisionUpdateID(r), r)
		if err == nil {
			err = h.Get(e.ctx, nil)
		}
		out <- err
	}()
	return out
}

// startAgent runs a worker on the master's task queue with the activities register puts
// there (a fake agent's), stopped when the test ends.
func (e *deviceEnv) startAgent(t *testing.T, register func(worker.Registry)) {
	t.Helper()
	aw := worker.New(e.c, workflows.ServerQueue(e.sid), worker.Options{})
	register(aw)
	if err := aw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(aw.Stop)
}
