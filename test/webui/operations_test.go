package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/webui"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// TestStuckOperationPage: in Chromium, on a panel with its workflow engine on the real
// (in-process) Temporal. A volume create whose master's agent dropped after its last
// report: the operation's page says it waits for that server's agent (last seen …); the
// Cancel button (Post/Redirect/Get) leaves it cancelling until the agent is back, whose
// undo then ends it cancelled; the Retry button runs the create again and it succeeds.
func TestStuckOperationPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := startPanel(t, "postgres", webui.Options{})
	c := harness.TemporalClient(t)
	tmp, err := panel.StartTemporal(ctx, c, p.Store, temporalclient.Config{Address: "127.0.0.1:7233", Namespace: "default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Worker.Stop)

	net, err := p.Store.CreateNetwork(ctx, p.Admin, &models.NetworkInput{Name: models.Strp("stuck"), ClientID: models.Uintp(p.Admin.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	nid := net.Object.(*models.Network).ID
	srv, err := p.Store.CreateServer(ctx, p.Admin, &models.ServerInput{NetworkID: &nid, Name: models.Strp("away"), IP: models.Strp("10.0.0.1"), Pool: models.Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	sid := srv.Object.(*models.Server).ID
	size := int64(2)
	b := newBrowser(t, p.URL, outDir(t))
	b.login("admin@example.com", adminPassword)

	// Never reported: the form answers with the conflict, naming the server.
	b.open("/volumes/new")
	b.choose("#f-network_id", "stuck")
	b.fill("#f-alias", "refused")
	b.fill("#f-vol_size", "2")
	b.submit()
	if src := b.source(); !strings.Contains(src, "never reported") || !strings.Contains(src, "away") {
		b.screenshot("refused")
		t.Fatalf("the create form does not say the master never reported")
	}
	b.both("create-refused")

	if err := models.RecordServerStats(ctx, p.DB, sid, &models.StatsReport{PoolHealth: "ONLINE", PoolSize: 100 << 30, PoolFree: 90 << 30}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Store.CreateVolume(ctx, p.Admin, &models.VolumeInput{NetworkID: &nid, Alias: models.Strp("waits"), SizeGiB: &size})
	if err != nil {
		t.Fatal(err)
	}
	vid, opID := res.Object.(*models.Volume).ID, res.Operation.ID
	page := fmt.Sprintf("/operations/%d", opID)
	b.waitFor("the page to say what the operation waits for", time.Minute, func() bool {
		b.open(page)
		return strings.Contains(b.jsString(`var e = document.querySelector('[data-op-waiting]'); return e ? e.textContent : ''`), `waiting for server "away"'s agent (last seen`)
	})
	b.both("waiting-for-agent")

	b.post("[data-op-cancel]")
	if !strings.HasPrefix(b.path(), page) || !strings.Contains(b.source(), "Cancelling") {
		t.Fatalf("after Cancel: %s", b.path())
	}
	b.screenshot("cancelling")
	if op, _ := p.Store.Operation(ctx, nil, opID); op.Finished() {
		t.Fatalf("ended before its undo ran: %+v", op)
	}

	// The agent comes back: the undo runs, the operation ends cancelled.
	trashed := make(chan storage.TrashInput, 4)
	aw := worker.New(c, workflows.ServerQueue(sid), worker.Options{})
	aw.RegisterActivityWithOptions(func(_ context.Context, in storage.TrashInput) (*storage.TrashResult, error) {
		trashed <- in
		return &storage.TrashResult{Missing: true}, nil
	}, activity.RegisterOptions{Name: "Trash"})
	aw.RegisterActivityWithOptions(func(_ context.Context, in storage.VolumeInput) (*storage.VolumeResult, error) {
		return &storage.VolumeResult{Dataset: storage.VolumeDataset(in.Pool, in.VolumeID), Created: true, Volsize: in.Size, Capacity: 100 << 30, Provisioned: in.Size}, nil
	}, activity.RegisterOptions{Name: "CreateVolume"})
	if err := aw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(aw.Stop)
	select {
	case in := <-trashed:
		if in.ID != vid {
			t.Fatalf("undo trashed %+v", in)
		}
	case <-ctx.Done():
		t.Fatal("the undo never ran")
	}
	// The open page follows the run live and reloads once it ends (the Retry button appears).
	b.waitFor("the operation to show cancelled, with Retry", time.Minute, func() bool {
		return b.text("[data-op-state]") == models.OpCancelled &&
			b.jsString(`return document.querySelector('[data-op-retry]') ? 'y' : ''`) == "y"
	})
	b.both("cancelled")

	b.post("[data-op-retry]")
	b.waitFor("the retried operation to succeed", time.Minute, func() bool {
		b.open(b.path())
		return b.text("[data-op-state]") == models.OpSucceeded
	})
	if after := b.path(); after == page || strings.HasPrefix(after, page+"?") {
		t.Fatal("Retry did not lead to the new operation's page")
	}
	b.both("retried")
	var v models.Volume
	p.DB.Take(&v, vid)
	if v.State != models.StateReady {
		t.Fatalf("volume after the retry: %s", v.State)
	}
}
