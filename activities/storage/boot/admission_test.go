package boot

import (
	"context"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// blockingProvisioner holds every provisioning until release is closed.
type blockingProvisioner struct{ release chan struct{} }

func (b *blockingProvisioner) Provision(ctx context.Context, _ wire.ProvisionRequest) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// boundService is server 1 holding group 3's v1, answering from in, allowed one
// provisioning at once, whose provisionings never end before the test does.
func boundService(t *testing.T, in *wire.Info) *Service {
	t.Helper()
	disks := v1Disks(t)
	prov := &blockingProvisioner{release: make(chan struct{})}
	svc, err := NewService(Config{ServerID: 1, Portal: "10.0.0.1:3260", BootPort: 8080, Panel: &fakePanel{info: in}, Provision: prov,
		Disks: disks, Target: &recordTarget{}, MaxProvisions: 1, ProvisionWait: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(prov.release)
		svc.Close()
	})
	return svc
}

// TestProvisionBound: with one provisioning allowed and it running, a second new device
// is told to retry at once; the first device asking again joins its own provisioning.
func TestProvisionBound(t *testing.T) {
	in := info(true, 1)
	svc := boundService(t, in)
	first := svc.Script(context.Background(), mac1, uuid1, 0)
	if ScriptKind(first) != "retry" || !strings.Contains(first, "preparing this device's disk") {
		t.Fatalf("first device, provisioning under way: %s", first)
	}
	in.Device.ID, in.Device.MAC = 8, "52:54:00:00:00:08"
	second := svc.Script(context.Background(), "52:54:00:00:00:08", "c1d0c1d0-0000-4000-8000-000000000008", 0)
	if ScriptKind(second) != "retry" || !strings.Contains(second, "making 1 new disks already") {
		t.Fatalf("second device beyond the bound: %s", second)
	}
	if a := svc.Admission(); a.Provisions != 1 || a.MaxProvisions != 1 || a.Refused != 1 {
		t.Fatalf("admission %+v", a)
	}
}

// TestProvisionBoundRedirectsToPeer: with this server's provisioning bound reached, a new
// device whose version another server holds is sent there (not told to wait); a device
// already sent on once that meets a full server is told to ask again, never passed on.
func TestProvisionBoundRedirectsToPeer(t *testing.T) {
	in := info(true, 1)
	in.Group.Versions[0].Servers = []uint{1, 2}
	in.Servers[1].Name = "peer"
	svc := boundService(t, in)
	if first := svc.Script(context.Background(), mac1, uuid1, 0); ScriptKind(first) != "retry" {
		t.Fatalf("first device, provisioning under way: %s", first)
	}
	in.Device.ID, in.Device.MAC = 8, "52:54:00:00:00:08"
	uuid8 := "c1d0c1d0-0000-4000-8000-000000000008"
	second := svc.Script(context.Background(), in.Device.MAC, uuid8, 0)
	if ScriptKind(second) != "redirect" || !strings.Contains(second, "http://10.0.0.2:8080/boot.ipxe") ||
		!strings.Contains(second, "hop=1") || !strings.Contains(second, "server peer holds v1") {
		t.Fatalf("second device beyond the bound, v1 on a peer: %s", second)
	}
	again := svc.script(context.Background(), in.Device.MAC, uuid8, 0, 1)
	if ScriptKind(again) != "retry" || !strings.Contains(again, "making 1 new disks already") {
		t.Fatalf("a redirected device at a full server: %s", again)
	}
}
