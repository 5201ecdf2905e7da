package netboot

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

// TestHostCHAP: an agent started with a CHAP key exports every target with CHAP, and a
// real iPXE boot logs in with the credentials its sanboot script carries; the device's
// initiator name alone, or a wrong secret, is refused.
func TestHostCHAP(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	ctx := context.Background()
	p, a := startHost(t, func(p *HostPanel) { p.CHAPKey = []byte("iscsi-chap:test-server-key") })
	g := publishedGroup(p, a)

	dev := DeviceN(60)
	expect(t, bootVM(t, a, dev), Marker(g.ID, 1), "a device booting through CHAP")

	d := p.Device(dev.MAC)
	iqn := wire.DeviceIQN(p.Network.ID, d.ID)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Target.Serve(ln) //nolint:errcheck
	user, secret := boot.CHAPCredentials(p.CHAPKey, iqn)
	login := func(user, secret string) error {
		s, err := initiator.Dial(ctx, ln.Addr().String(), initiator.Options{
			InitiatorName: boot.InitiatorName(dev.UUID), TargetName: iqn, CHAPUser: user, CHAPSecret: secret})
		if err == nil {
			s.Close()
		}
		return err
	}
	var rejected *initiator.ErrLoginRejected
	if err := login("", ""); !errors.As(err, &rejected) {
		t.Fatalf("login without CHAP: %v, want a rejection", err)
	}
	if err := login(user, secret+"x"); err == nil {
		t.Fatal("login with a wrong CHAP secret succeeded")
	}
	if err := login(user, secret); err != nil {
		t.Fatalf("login with the device's CHAP credentials: %v", err)
	}
}
