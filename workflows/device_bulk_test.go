package workflows

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
)

// TestBulkDevices: a bulk operation does every device's part, at most models.BulkLimit
// at once, and ends failed naming the one device that failed (the others done); cancelled
// after the first devices, it starts no more and ends its operation cancelled.
func TestBulkDevices(t *testing.T) {
	devs := make([]models.BulkDevice, 40)
	for i := range devs {
		devs[i] = models.BulkDevice{ID: uint(100 + i), ServerID: 1, Pool: "tank"}
	}
	for _, tc := range []struct {
		name   string
		cancel bool
	}{{"failure", false}, {"cancel", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSuite(t)
			var mu sync.Mutex
			var seen []uint
			running, most := 0, 0
			s.env.OnActivity(pa.BulkDevice, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in panel.BulkDeviceInput) (*panel.BulkDeviceResult, error) {
					mu.Lock()
					seen = append(seen, in.Device.ID)
					if tc.cancel && len(seen) == 5 {
						s.env.CancelWorkflow()
					}
					running++
					most = max(most, running)
					mu.Unlock()
					time.Sleep(time.Millisecond)
					mu.Lock()
					running--
					mu.Unlock()
					if in.UpdateID != BulkUpdateID(9, in.Device.ID) || in.Action != models.BulkRestore {
						t.Errorf("device %d's part: %+v", in.Device.ID, in)
					}
					if in.Device.ID == 107 {
						return &panel.BulkDeviceResult{Failed: true, Error: "no erator entry"}, nil
					}
					return &panel.BulkDeviceResult{}, nil
				})
			s.env.ExecuteWorkflow(BulkDevices, BulkDevicesInput{OperationID: 9, NetworkID: 1, Kind: models.OpBulkRestore, Devices: devs})
			if len(s.outcomes) != 1 {
				t.Fatalf("outcomes %+v (workflow: %v)", s.outcomes, s.env.GetWorkflowError())
			}
			o := s.outcomes[0]
			if tc.cancel {
				if !o.Cancelled || len(seen) >= len(devs) {
					t.Fatalf("cancelled: outcome %+v after %d devices", o, len(seen))
				}
				return
			}
			if !o.Failed || o.Cancelled || !strings.Contains(o.Error, "devices 107") || len(seen) != len(devs) || most > models.BulkLimit {
				t.Fatalf("outcome %+v, %d devices done, %d at once at most", o, len(seen), most)
			}
		})
	}
}
