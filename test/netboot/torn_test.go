package netboot

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
	"github.com/clusterducks/clusterducks/test/lab"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
)

// tornFirst is the first LBA (of 512 bytes) the torn-version writer writes, past the
// boot sector and marker the test's versions carry.
const tornFirst = 2048

// tornBlock is what the writer writes at its i-th block.
func tornBlock(i int, bs int) []byte {
	b := make([]byte, bs)
	copy(b, fmt.Sprintf("torn-%06d", i))
	return b
}

// endMaintenanceUnderWrites is the torn-version check of a group head in maintenance: a
// writer logged in as the maintenance device keeps writing block after block while the
// maintenance is ended through the API. Until the end's operation has succeeded a publish
// is refused; once it has, the writer's session is gone and a new login is refused. It
// returns how many writes were acknowledged (tornBlocks checks them in a version).
func endMaintenanceUnderWrites(t *testing.T, e *storagetest.Env, networkID, groupID uint, installer Device, n int) (written, blockSize int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	addr, iqn := e.VM.Addr(lab.PortISCSI), wire.GroupHeadIQN(networkID, groupID)
	s, err := initiator.Dial(ctx, addr, initiator.Options{InitiatorName: boot.InitiatorName(installer.UUID), TargetName: iqn})
	if err != nil {
		t.Fatalf("the maintenance device's login to %s: %v", iqn, err)
	}
	_, bs, err := s.ReadCapacity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := uint64(tornFirst * 512 / int(bs))
	var acked atomic.Int64
	done := make(chan error, 1)
	go func() {
		defer s.Close()
		for i := 0; i < 100000; i++ {
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			err := s.Write(wctx, 0, first+uint64(i), int(bs), tornBlock(i, int(bs)), true)
			wcancel()
			if err != nil {
				done <- err
				return
			}
			acked.Add(1)
		}
		done <- fmt.Errorf("the writer wrote 100000 blocks and was never stopped")
	}()
	for acked.Load() < 20 {
		select {
		case err := <-done:
			t.Fatalf("the writer stopped before the maintenance ended: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	end := e.Must(http.StatusAccepted, "DELETE", fmt.Sprintf("/groups/%d/maintenance.json", groupID), nil)
	endOp := storagetest.OpID(end)
	// A publish now must not go ahead while the target may still be written. It names a
	// version that cannot be next, so it never creates one: the refusal says which rule
	// stopped it (the maintenance, or, when the end was already done, the number).
	code, body := e.Call("POST", fmt.Sprintf("/groups/%d/publish.json", groupID), map[string]any{"version": n + 100})
	msg, _ := body["error"].(string)
	var endRow models.Operation
	e.DB.Take(&endRow, endOp)
	switch {
	case code == http.StatusConflict && strings.Contains(msg, "maintenance"):
		t.Logf("publish while the maintenance ends: 409 %s", msg)
	case code == http.StatusConflict && endRow.State == models.OpSucceeded:
		t.Logf("the maintenance's end (operation %d) had already succeeded when the publish came: %s", endOp, msg)
	default:
		t.Fatalf("publish while the maintenance ends (operation %d, %s): %d %v, want 409", endOp, endRow.State, code, body)
	}
	e.WaitOK(endOp)
	var werr error
	select {
	case werr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the writer still writes 30 s after the maintenance ended (%d blocks acknowledged)", acked.Load())
	}
	written = int(acked.Load())
	t.Logf("maintenance ended under writes: %d blocks acknowledged, then %v", written, werr)
	if s2, err := initiator.Dial(ctx, addr, initiator.Options{InitiatorName: boot.InitiatorName(installer.UUID), TargetName: iqn}); err == nil {
		s2.Close()
		t.Fatal("the maintenance device logs in to the group head after its maintenance ended")
	}
	return written, int(bs)
}

// tornBlocks checks that version n of the group holds exactly the writer's acknowledged
// blocks: each of the first written, none past the one that may have been in flight.
func tornBlocks(t *testing.T, e *storagetest.Env, groupID uint, n, written, bs int) {
	t.Helper()
	ds := fmt.Sprintf("%s/iscsi/groups/%d", e.VM.Pool, groupID)
	e.Guest("zfs", "set", "snapdev=visible", ds)
	defer e.Guest("zfs", "inherit", "snapdev", ds)
	e.WaitZvol(fmt.Sprintf("%s@v%d", ds, n))
	snap := fmt.Sprintf("/dev/zvol/%s@v%d", ds, n)
	count := written + 8
	out := e.Guest("sh", "-c", fmt.Sprintf("dd if=%s bs=%d skip=%d count=%d status=none | base64 -w0", snap, bs, tornFirst*512/bs, count))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(raw) != count*bs {
		t.Fatalf("v%d's blocks: %d bytes, %v", n, len(raw), err)
	}
	for i := 0; i < count; i++ {
		got := raw[i*bs : (i+1)*bs]
		switch {
		case i < written && !bytes.Equal(got, tornBlock(i, bs)):
			t.Fatalf("v%d lacks acknowledged block %d: %q", n, i, got[:16])
		case i > written && !bytes.Equal(got, make([]byte, bs)):
			t.Fatalf("v%d holds block %d, which the writer never sent: %q", n, i, got[:16])
		}
	}
	t.Logf("v%d holds exactly the %d acknowledged blocks", n, written)
}
