package temporalclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

func TestRetryCut(t *testing.T) {
	cut := client.NewWorkflowUpdateServiceTimeoutOrCanceledError(errors.New("stream terminated by RST_STREAM with error code: CANCEL"))

	// Cut twice, then answered: the caller sees the answer.
	calls := 0
	err := retryCut(context.Background(), func() error {
		calls++
		if calls < 3 {
			return cut
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}

	// Any other error is the caller's at once.
	calls = 0
	other := errors.New("workflow update rejected")
	if err := retryCut(context.Background(), func() error { calls++; return other }); err != other || calls != 1 {
		t.Fatalf("err %v after %d calls, want the rejection after 1", err, calls)
	}

	// Cut for ever: given up when ctx ends, with the cut as the error.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	calls = 0
	err = retryCut(ctx, func() error { calls++; return cut })
	var got *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if !errors.As(err, &got) || calls < 2 || ctx.Err() == nil {
		t.Fatalf("err %v after %d calls (ctx %v)", err, calls, ctx.Err())
	}
}
