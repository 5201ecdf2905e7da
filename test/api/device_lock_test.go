package api_test

import (
	"context"
	"errors"
	"testing"

	"github.com/clusterducks/clusterducks/models"
)

// SetDeviceLock (the device workflow's step) is safe to repeat on both databases, and
// names an absent device.
func TestSetDeviceLock(t *testing.T) {
	onEachDriver(t, func(t *testing.T, p *panelT) {
		ctx := context.Background()
		n := id(p.must(201, p.Admin, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1}))
		dev := uint(id(p.must(201, p.Admin, "POST", "/api/v0.9.2/devices.json", map[string]any{"network": n, "mac": "52:54:00:00:03:01"})))
		for range 2 {
			if err := models.SetDeviceLock(ctx, p.DB, dev, true); err != nil {
				t.Fatalf("lock: %v", err)
			}
		}
		var d models.Device
		if err := p.DB.Take(&d, dev).Error; err != nil || !d.Locked {
			t.Fatalf("device after locking twice: %+v %v", d, err)
		}
		if err := models.SetDeviceLock(ctx, p.DB, dev+1000, true); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("absent device: %v, want not found", err)
		}
	})
}
