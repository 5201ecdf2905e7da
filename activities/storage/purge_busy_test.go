package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
)

// TestDestroyWhenFree: a busy dataset is asked for again (a zvol just renamed into the
// erator is probed by udev for a moment) until it goes or the tries run out; any other
// failure is answered at once.
func TestDestroyWhenFree(t *testing.T) {
	busyPause = time.Millisecond
	busy := fmt.Errorf("cannot destroy 'tank/erator/v': dataset is busy: %w", activities.ErrBusy)
	for _, c := range []struct {
		name      string
		fails     []error
		wantCalls int
		wantErr   error
	}{
		{"free at once", nil, 1, nil},
		{"busy twice", []error{busy, busy}, 3, nil},
		{"busy for ever", []error{busy, busy, busy, busy, busy, busy}, busyTries, activities.ErrBusy},
		{"has clones", []error{activities.ErrHasClones}, 1, activities.ErrHasClones},
	} {
		calls := 0
		err := destroyWhenFree(context.Background(), func(name string, recursive bool) error {
			calls++
			if name != "tank/erator/v" || !recursive {
				t.Errorf("%s: destroy(%q, %v)", c.name, name, recursive)
			}
			if calls <= len(c.fails) {
				return c.fails[calls-1]
			}
			return nil
		}, "tank/erator/v")
		if calls != c.wantCalls || !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
			t.Errorf("%s: %d calls, %v; want %d calls, %v", c.name, calls, err, c.wantCalls, c.wantErr)
		}
	}
}
