package models

import (
	"context"
	"fmt"
	"testing"
)

// One entity workflow run (device-<id>) carries several operations, one per update: each
// is attached without taking over another's end, and each update's writes (naming the
// workflow, not the run) land on its own row only.
func TestAttachUpdateOneRunManyOperations(t *testing.T) {
	ctx := context.Background()
	s, _, _, g := opsStore(t)
	ops := make([]*Operation, 3)
	for i := range ops {
		op, err := newOperation(s.DB, g.NetworkID, OpDeviceRestore, 7, OperationInput{ServerID: 1})
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = op
	}
	s.DB.Model(&Operation{}).Where("id = ?", ops[0].ID).Update("message", "queued: the workflow engine did not take the operation yet")
	get := func(id uint) *Operation {
		op, err := s.Operation(ctx, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	update := func(id uint, step string) WorkflowProgress {
		return WorkflowProgress{OperationID: id, WorkflowID: "device-7", Step: step, Percent: 50, Message: fmt.Sprintf("%s %d", step, id)}
	}

	// ops[0]: attached by the engine first, then it reports and ends.
	for range 2 {
		if err := AttachUpdate(ctx, s.DB, ops[0].ID, "device-7", "r1"); err != nil {
			t.Fatal(err)
		}
	}
	if op := get(ops[0].ID); op.WorkflowID != "device-7" || op.RunID != "r1" || op.Message != "" || op.State != OpQueued {
		t.Fatalf("attached: %+v", op)
	}
	if err := RecordProgress(ctx, s.DB, update(ops[0].ID, "restore")); err != nil {
		t.Fatal(err)
	}
	// ops[1]: its update reported before the engine attached it.
	if err := RecordProgress(ctx, s.DB, update(ops[1].ID, "waiting")); err != nil {
		t.Fatal(err)
	}
	if err := FinishOperation(ctx, s.DB, Outcome{WorkflowProgress: update(ops[0].ID, "restore")}); err != nil {
		t.Fatal(err)
	}
	if err := AttachUpdate(ctx, s.DB, ops[1].ID, "device-7", "r1"); err != nil {
		t.Fatal(err)
	}
	// ops[2]: attached to the same run after ops[0] ended, and not ended by it.
	if err := AttachUpdate(ctx, s.DB, ops[2].ID, "device-7", "r1"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		op          *Operation
		state, step string
		message     string
	}{
		{ops[0], OpSucceeded, "done", fmt.Sprintf("restore %d", ops[0].ID)},
		{ops[1], OpRunning, "waiting", fmt.Sprintf("waiting %d", ops[1].ID)},
		{ops[2], OpQueued, "queued", ""},
	}
	for _, tt := range tests {
		op := get(tt.op.ID)
		if op.WorkflowID != "device-7" || op.RunID != "r1" || op.State != tt.state || op.Step != tt.step || op.Message != tt.message {
			t.Errorf("operation %d: %+v, want %s at %q (%q) in device-7/r1", tt.op.ID, op, tt.state, tt.step, tt.message)
		}
	}
}
