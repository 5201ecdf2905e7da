package replication

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	containerstest "github.com/clusterducks/clusterducks/test/containers"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
	"github.com/clusterducks/clusterducks/workflows"
)

// ctemplateReplicates is issue 14's ctemplate replication on the rig: a small root file
// system tarball becomes v1 of a ctemplate on the master (unpacked and snapshotted as the
// agent's upload does; the rig has no tunnel for the upload itself, which
// test/containers covers); a container on the slave is refused (409 naming server_id)
// until the reconcile has brought v1 there and recorded the copy, verified by guid; then
// the container is created on the slave.
func ctemplateReplicates(t *testing.T, r *Rig) {
	e, slave := r.E, r.Slaves[0]
	ct := e.Must(http.StatusCreated, "POST", "/ctemplates.json", map[string]any{"network": r.NetworkID, "name": "tiny"})
	id := storagetest.ID(ct, "id")
	mds := fmt.Sprintf("%s/iscsi/ctemplates/%d", r.Master.Pool, id)
	sds := fmt.Sprintf("%s/iscsi/ctemplates/%d", slave.Pool, id)

	// A few files and 256 KiB of filler that does not compress; bin/busybox is a stand-in
	// (the container is not run here).
	var tarball bytes.Buffer
	if err := containerstest.WriteRootfs(&tarball, []byte("#!/bin/sh\necho stand-in\n"), 256<<10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e.GuestOn(r.Master, "zfs", "create", mds)
	mp := r.Prop(r.Master, mds, "mountpoint")
	if out, err := r.Master.ExecInput(ctx, tarball.Bytes(), "tar", "-x", "-C", mp); err != nil {
		t.Fatalf("unpack on the master: %v: %s", err, out)
	}
	e.GuestOn(r.Master, "zfs", "snapshot", mds+"@v1")
	if err := e.DB.Model(&models.CTemplate{}).Where("id = ?", id).Updates(map[string]any{"state": models.StateReady, "version": 1,
		"sha256": containerstest.SHA256(tarball.Bytes())}).Error; err != nil {
		t.Fatal(err)
	}

	container := map[string]any{"network": r.NetworkID, "name": "on-the-slave", "ctemplate_id": id, "server_id": r.SlaveIDs[0]}
	if code, m := e.Call("POST", "/containers.json", container); code != http.StatusConflict || m["field"] != "server_id" ||
		!strings.Contains(fmt.Sprint(m["error"]), "verified copy") {
		t.Fatalf("container on the slave before the copy: %d %v; want 409 naming server_id", code, m)
	}

	// The reconcile finds the slave without the ctemplate and queues its replication.
	base := r.Proxy.Bytes()
	began := time.Now()
	rec, _ := r.Reconcile(ctx, t, "ctemplate", models.OpReplicateCTemplate, id)
	sent := r.Proxy.Bytes() - base
	t.Logf("ctemplate %d v1 (%d-byte tarball) on the slave in %s, %d bytes from the master (reconcile %+v)",
		id, tarball.Len(), time.Since(began).Round(time.Millisecond), sent, rec)

	mg, sg := r.Prop(r.Master, mds+"@v1", "guid"), r.Prop(slave, sds+"@v1", "guid")
	if mg == "" || sg != mg {
		t.Fatalf("v1: master's guid %q, slave's %q", mg, sg)
	}
	var copies []models.CTemplateCopy
	e.DB.Where("ctemplate_id = ?", id).Find(&copies)
	if len(copies) != 1 || copies[0].ServerID != r.SlaveIDs[0] || copies[0].Version != 1 || copies[0].GUID != mg {
		t.Fatalf("copies %+v; want v1 on the slave with guid %s", copies, mg)
	}
	// The master holds the slave's incremental base.
	if holds := e.GuestOn(r.Master, "zfs", "holds", "-H", mds+"@v1"); !strings.Contains(holds, fmt.Sprintf("clusterducks-slave-%d", r.SlaveIDs[0])) {
		t.Errorf("master's holds on v1:\n%s", holds)
	}
	if sent < 256<<10 || sent > 4<<20 {
		t.Errorf("%d bytes on the wire for a %d-byte root file system", sent, tarball.Len())
	}

	// Now the slave holds v1: the container is made there (its run is not waited for).
	c := e.Must(http.StatusAccepted, "POST", "/containers.json", container)
	var row models.Container
	if err := e.DB.Take(&row, storagetest.ID(c, "id")).Error; err != nil || row.ServerID == nil || *row.ServerID != r.SlaveIDs[0] || row.CTemplateVersion != 1 {
		t.Fatalf("container %+v %v: want v1 on the slave", row, err)
	}
	// Its create clones the slave's copy of v1 there. This rig's VMs run no systemd, so the
	// machine could never start (test/containers runs one): once the clone is seen, the
	// run is ended here rather than left retrying into the next subtests.
	cds := fmt.Sprintf("%s/iscsi/containers/%d", slave.Pool, row.ID)
	origin := ""
	for end := time.Now().Add(time.Minute); time.Now().Before(end) && origin != sds+"@v1"; time.Sleep(500 * time.Millisecond) {
		origin, _ = e.GuestErrOn(slave, "zfs", "get", "-H", "-p", "-o", "value", "origin", cds)
		origin = strings.TrimSpace(origin)
	}
	if origin != sds+"@v1" {
		t.Errorf("container %d on the slave: %s has origin %q, want %s@v1", row.ID, cds, origin, sds)
	}
	if err := r.TC.TerminateWorkflow(ctx, workflows.ContainerID(row.ID), "", "the replication rig runs no systemd"); err != nil {
		t.Errorf("end container %d's create: %v", row.ID, err)
	}
	e.DB.Model(&models.Operation{}).Where("id = ?", storagetest.OpID(c)).Updates(map[string]any{"state": models.OpFailed, "error": "ended by the test: no systemd in the replication rig"})
	e.DB.Model(&models.Container{}).Where("id = ?", row.ID).Update("state", models.StateFailed)
	t.Logf("container %d on the slave is a clone of %s@v1", row.ID, sds)
}
