package netboot

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
)

// copyVerified brings version n of g to agent x as a finished replication leaves it: the
// image on x's disks, then the slave's report of the received guid, which the panel
// records only when it is the master's (models.RecordVersionCopy). The transfer itself is
// faked here (file-backed disks; the ZFS transfer is proved by test/replication on lab
// VMs), the verification and everything after it is the real code.
func copyVerified(t *testing.T, p *HostPanel, x *HostAgent, g *models.Group, n int) {
	t.Helper()
	ctx := context.Background()
	guid := fmt.Sprintf("%d%04d", g.ID, n)
	if err := p.DB.Model(&models.GroupVersion{}).Where("group_id = ? AND number = ? AND guid = ''", g.ID, n).Update("guid", guid).Error; err != nil {
		t.Fatal(err)
	}
	vid := version(t, p, g, n)
	if err := MakeDisk(x.Disks.GroupVersionPath(g.ID, n), Marker(g.ID, n), 0); err != nil {
		t.Fatal(err)
	}
	if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: x.ServerID, VersionID: vid, GUID: "1" + guid}); !errors.Is(err, models.ErrGUIDMismatch) {
		t.Fatalf("a copy with another guid: %v", err)
	}
	if err := models.RecordVersionCopy(ctx, p.DB, models.VersionCopyInput{ServerID: x.ServerID, VersionID: vid, GUID: guid}); err != nil {
		t.Fatal(err)
	}
}

// TestSatelliteSite is strict versioning across a master and a slave with real iPXE boots
// (issue 12's second acceptance): a device that reaches both is redirected to the master
// while the slave lacks the assigned version; a device that reaches only the slave (the
// master's endpoint is gone for it) cannot boot until the version has arrived and then
// boots it from the slave; with "assign only when every server holds it" the slave's
// devices keep booting the version everyone holds; non-strict, a new device on the slave
// boots the newest version the slave holds.
func TestSatelliteSite(t *testing.T) {
	harness.RequirePackages(t, Packages...)
	p, a := startHost(t)
	b := StartServerAgent(t, p, p.AddServer("satellite"), nil, "")
	g := publishedGroup(p, a)
	copyVerified(t, p, b, g, 1)
	satellite, both := DeviceN(21), DeviceN(22)
	r := bootMarker(t, b, satellite, Marker(g.ID, 1))
	seen(t, r, []string{fromServer(g, 1, b)}, []string{a.BootURL})

	// v2 is published on the master; the slave has not received it. A device that can
	// reach both servers is sent to the master and boots v2 there.
	p.Publish(a, g, 2)
	r = bootMarker(t, b, both, Marker(g.ID, 2))
	seen(t, r, []string{"this server does not hold the assigned v2: another server does", a.BootURL, fromServer(g, 2, a)}, nil)

	// The satellite's device reaches only the slave: the master's endpoint does not
	// answer it. It is sent to the master, cannot get there, comes back, and does not boot.
	a.Stop()
	r = bootLoop(t, b, satellite)
	seen(t, r, []string{"this server does not hold the assigned v2: another server does", a.BootURL}, []string{Marker(g.ID, 2)})

	// v2 arrives on the slave (verified by guid): the same device now boots it there.
	copyVerified(t, p, b, g, 2)
	r = bootMarker(t, b, satellite, Marker(g.ID, 2))
	seen(t, r, []string{fromServer(g, 2, b)}, []string{a.BootURL})

	// Assign only when every server holds it: v3 on the master only leaves the group on
	// v2 for everyone, so the satellite keeps booting; once v3 has arrived it moves on.
	p.API("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"assign_when_replicated": true})
	p.Publish(a, g, 3)
	r = bootMarker(t, b, satellite, Marker(g.ID, 2))
	seen(t, r, []string{fromServer(g, 2, b)}, []string{a.BootURL})
	copyVerified(t, p, b, g, 3)
	r = bootMarker(t, b, satellite, Marker(g.ID, 3))
	seen(t, r, []string{fromServer(g, 3, b)}, []string{a.BootURL})

	// Non-strict: v4 is on the master only; a new device on the slave boots the newest
	// version the slave holds (v3), without a redirect.
	p.API("PUT", fmt.Sprintf("/groups/%d.json", g.ID), map[string]any{"strict_versioning": false, "assign_when_replicated": false})
	p.Publish(a, g, 4)
	r = bootMarker(t, b, DeviceN(23), Marker(g.ID, 3))
	seen(t, r, []string{fromServer(g, 3, b)}, []string{a.BootURL})
}
