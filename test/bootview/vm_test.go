package bootviewtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/netboot"
)

// TestVMBootsFromTheView boots real iPXE device VMs with the panel stopped: a known
// device of the loose group boots its disk; one of the strict group, once the lease has
// ended, gets the reboot loop that says why.
func TestVMBootsFromTheView(t *testing.T) {
	harness.RequirePackages(t, netboot.Packages...)
	const lease = 10 * time.Second
	s, a, strict, loose := leasedSite(t, lease, 1)
	// Device VMs reach the host's loopback at 10.0.2.2.
	vmURL := strings.Replace(a.URL, "127.0.0.1", "10.0.2.2", 1)
	Stop(s.p)
	res, err := netboot.Boot(context.Background(), vmURL, loose[0], 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := netboot.Marker(s.loose.ID, 1); res.Marker != want {
		t.Fatalf("loose device with the panel stopped booted %q, want %q:\n%s", res.Marker, want, res.Output)
	}
	t.Logf("loose device booted %q in %s with the panel stopped", res.Marker, res.Took.Round(time.Millisecond))
	eventually(t, lease+60*time.Second, func() error {
		if a.View.Stats().Age < lease {
			return fmt.Errorf("the view is still within its lease")
		}
		return nil
	})
	// The VM ends without a marker (Boot's error carries its console); the console wraps
	// long lines: compare with the line breaks taken out.
	res, err = netboot.Boot(context.Background(), vmURL, strict[0], 3*time.Minute)
	if err == nil {
		t.Fatalf("strict device after the lease booted %q, want the reboot loop", res.Marker)
	}
	console := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "\r", ""), "\n", "")
	if !strings.Contains(console, "has not confirmed this server's view within its lease") {
		t.Fatalf("strict device after the lease, want the reboot loop saying why: %v", err)
	}
}
