package models

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testStore is a store on a fresh SQLite file, migrated, with the bootstrap superadmin as
// the actor.
func testStore(t *testing.T) (*Store, *Actor) {
	t.Helper()
	db, err := Open("sqlite:" + filepath.Join(t.TempDir(), "panel.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := Bootstrap(ctx, db, "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	var u User
	if err := db.Where("role = ?", RoleSuperAdmin).Take(&u).Error; err != nil {
		t.Fatal(err)
	}
	return &Store{DB: db}, &Actor{User: u}
}

// TestNetworkObjectWrites pins what CreateTunnel/CreateServer (createKeyed) and the
// updates through updateOwned answer: the first tunnel and server are the network's, the
// key is kept as its hash, a taken server name is a 409 on create and update, and no
// object moves to another network.
func TestNetworkObjectWrites(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t) // network 1: master server "m", volume, group
	nid := g.NetworkID
	other, err := s.CreateNetwork(ctx, a, &NetworkInput{Name: Strp("other"), ClientID: Uintp(1)})
	if err != nil {
		t.Fatal(err)
	}
	oid := other.Object.(*Network).ID
	network := func(id uint) *Network {
		var n Network
		if err := s.DB.Take(&n, id).Error; err != nil {
			t.Fatal(err)
		}
		return &n
	}

	t1, err := s.CreateTunnel(ctx, a, &TunnelInput{NetworkID: &nid, Alias: Strp("t1"), IP: Strp("203.0.113.1")})
	if err != nil {
		t.Fatal(err)
	}
	tun := t1.Object.(*Tunnel)
	if t1.Secret == "" || tun.KeyHash != HashSecret(t1.Secret) || tun.Status != "Waiting for tunnel" {
		t.Errorf("tunnel: secret %q, hash %q, status %q", t1.Secret, tun.KeyHash, tun.Status)
	}
	if n := network(nid); n.TunnelID == nil || *n.TunnelID != tun.ID {
		t.Errorf("first tunnel not selected: %v", n.TunnelID)
	}
	if _, err := s.CreateTunnel(ctx, a, &TunnelInput{NetworkID: &nid, Alias: Strp("t2"), IP: Strp("203.0.113.2")}); err != nil {
		t.Fatal(err)
	}
	if n := network(nid); *n.TunnelID != tun.ID {
		t.Errorf("second tunnel took the selection: %d", *n.TunnelID)
	}

	s2, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s2"), IP: Strp("10.0.0.2"), Pool: Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	slave := s2.Object.(*Server)
	if slave.Role != ServerSlave || slave.KeyHash != HashSecret(s2.Secret) || network(nid).MasterServerID == nil || *network(nid).MasterServerID == slave.ID {
		t.Errorf("second server: role %q, master %v", slave.Role, network(nid).MasterServerID)
	}
	o1, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &oid, Name: Strp("m"), IP: Strp("10.0.1.1"), Pool: Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	if srv := o1.Object.(*Server); srv.Role != ServerMaster || *network(oid).MasterServerID != srv.ID {
		t.Errorf("first server of a network: role %q, master %v", srv.Role, network(oid).MasterServerID)
	}

	var menuID uint
	if m, err := s.CreateMenu(ctx, a, &MenuInput{NetworkID: &nid, Name: Strp("menu")}); err != nil {
		t.Fatal(err)
	} else {
		menuID = m.Object.(*MenuView).ID
	}

	var conflict *ConflictError
	var invalid *ValidationError
	for _, c := range []struct {
		name  string
		do    func() error
		want  any // **ConflictError or **ValidationError
		field string
		msg   string
	}{
		{"server name taken on create", func() error {
			_, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s2"), IP: Strp("10.0.0.3"), Pool: Strp("tank")})
			return err
		}, &conflict, "name", `a server named "s2" already exists in this network`},
		{"server name taken on update", func() error {
			_, err := s.UpdateServer(ctx, a, slave.ID, &ServerInput{Name: Strp("m")})
			return err
		}, &conflict, "name", `a server named "m" already exists in this network`},
		{"tunnel moved", func() error {
			_, err := s.UpdateTunnel(ctx, a, tun.ID, &TunnelInput{NetworkID: &oid})
			return err
		}, &invalid, "network_id", "a tunnel cannot move to another network"},
		{"server moved", func() error {
			_, err := s.UpdateServer(ctx, a, slave.ID, &ServerInput{NetworkID: &oid})
			return err
		}, &invalid, "network_id", "a server cannot move to another network"},
		{"menu moved", func() error {
			_, err := s.UpdateMenu(ctx, a, menuID, &MenuInput{NetworkID: &oid})
			return err
		}, &invalid, "network_id", "a menu cannot move to another network"},
		{"group moved", func() error {
			_, err := s.UpdateGroup(ctx, a, g.ID, &GroupInput{NetworkID: &oid})
			return err
		}, &invalid, "network_id", "a group cannot move to another network"},
		{"group maintenance without a device", func() error {
			_, err := s.SetMaintenance(ctx, a, g.ID, true, &MaintenanceInput{})
			return err
		}, &invalid, "device_id", "is required: the device that boots the group head"},
		{"volume maintenance without a device", func() error {
			_, err := s.SetVolumeMaintenance(ctx, a, g.VolumeID, true, nil)
			return err
		}, &invalid, "device_id", "is required: the device that boots the volume"},
	} {
		err := c.do()
		var field, msg string
		switch want := c.want.(type) {
		case **ConflictError:
			if errors.As(err, want) {
				field, msg = (*want).Field, (*want).Msg
			}
		case **ValidationError:
			if errors.As(err, want) {
				field, msg = (*want).Field, (*want).Msg
			}
		}
		if field != c.field || msg != c.msg {
			t.Errorf("%s: %v, want %s: %s", c.name, err, c.field, c.msg)
		}
	}

	// Updates that pass save and answer the object.
	if tu, err := s.UpdateTunnel(ctx, a, tun.ID, &TunnelInput{Alias: Strp("t1b")}); err != nil || tu.Alias != "t1b" {
		t.Errorf("tunnel update: %+v, %v", tu, err)
	}
	if su, err := s.UpdateServer(ctx, a, slave.ID, &ServerInput{Name: Strp("s2b"), TunnelPort: intp(2222)}); err != nil || su.Name != "s2b" || su.TunnelPort != 2222 {
		t.Errorf("server update: %+v, %v", su, err)
	}
	if mv, err := s.UpdateMenu(ctx, a, menuID, &MenuInput{Name: Strp("menu2")}); err != nil || mv.Name != "menu2" {
		t.Errorf("menu update: %+v, %v", mv, err)
	}
	var audits int64
	s.DB.Model(&AuditEvent{}).Where("action = ?", "update").Count(&audits)
	if audits != 3 {
		t.Errorf("%d update audit events, want 3", audits)
	}
}

func intp(n int) *int { return &n }

// TestCheckIP: servers and tunnels are other machines: never unspecified, broadcast or
// multicast, and loopback only on a store that allows it (dev and lab panels).
func TestCheckIP(t *testing.T) {
	for _, c := range []struct {
		in       string
		want     string // "" for refused
		loopback string // the answer with AllowLoopback, when it differs
	}{
		{"192.168.1.10", "192.168.1.10", ""},
		{" 4.2.2.1 ", "4.2.2.1", ""},
		{"2001:db8::1", "2001:db8::1", ""},
		{"::ffff:10.0.0.1", "10.0.0.1", ""},
		{"127.0.0.1", "", "127.0.0.1"},
		{"127.0.0.3", "", "127.0.0.3"},
		{"::1", "", "::1"},
		{"::ffff:127.0.0.1", "", "127.0.0.1"},
		{"0.0.0.0", "", ""},
		{"::", "", ""},
		{"255.255.255.255", "", ""},
		{"224.0.0.1", "", ""},
		{"239.255.255.250", "", ""},
		{"ff02::1", "", ""},
		{"4.2.2", "", ""},
		{"fe80::1%eth0", "", ""},
	} {
		for _, allow := range []bool{false, true} {
			want := c.want
			if allow && c.loopback != "" {
				want = c.loopback
			}
			got, err := (&Store{AllowLoopback: allow}).checkIP("ip", c.in, true)
			var ve *ValidationError
			if want == "" && (!errors.As(err, &ve) || ve.Field != "ip") || want != "" && (err != nil || got != want) {
				t.Errorf("checkIP(%q), loopback allowed %v: %q %v, want %q", c.in, allow, got, err, want)
			}
		}
	}
}

// TestCheckName: a name is visible text: no C0 or C1 controls, no bidirectional
// overrides or isolates, and at least one visible character.
func TestCheckName(t *testing.T) {
	for _, ok := range []string{"New Network", "réseau 1", "网络", "a\u200bb", "Ω-2", " x "} {
		if _, err := checkName("name", ok, 200); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "   ", "a\x00b", "a\x1bb", "a\x7fb", "a\u0085b", "a\u009bb", "\u202egnp.exe", "a\u2066b\u2069", "a\u200fb",
		"\u200b", "\u200b\u200c\ufeff", "\u3164", "\u2800\u2800", "\u0301", "\u00a0\u3000", "a\xffb", strings.Repeat("x", 201)} {
		if _, err := checkName("name", bad, 200); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNetworkObjectDeletes(t *testing.T) {
	ctx := context.Background()
	s, a, _, g := opsStore(t) // network: master server "m", volume, group
	nid := g.NetworkID
	network := func() *Network {
		var n Network
		if err := s.DB.Take(&n, nid).Error; err != nil {
			t.Fatal(err)
		}
		return &n
	}
	tu, err := s.CreateTunnel(ctx, a, &TunnelInput{NetworkID: &nid, Alias: Strp("t"), IP: Strp("203.0.113.1")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateMenu(ctx, a, &MenuInput{NetworkID: &nid, Name: Strp("menu")})
	if err != nil {
		t.Fatal(err)
	}
	mid := m.Object.(*MenuView).ID
	if _, err := s.UpdateNetwork(ctx, a, nid, &NetworkInput{DefaultMenuID: &mid}); err != nil {
		t.Fatal(err)
	}
	d, err := s.CreateDevice(ctx, a, &DeviceInput{NetworkID: &nid, MAC: Strp("52:54:00:00:09:01")})
	if err != nil {
		t.Fatal(err)
	}
	did := d.Object.(*Device).ID
	if _, err := s.UpdateDevice(ctx, a, did, &DeviceInput{MenuID: &mid}); err != nil {
		t.Fatal(err)
	}
	slave, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s"), IP: Strp("10.0.0.2"), Pool: Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	master := *network().MasterServerID

	if err := s.DeleteTunnel(ctx, a, tu.Object.(*Tunnel).ID); err != nil || network().TunnelID != nil {
		t.Errorf("tunnel delete: %v, network's tunnel %v", err, network().TunnelID)
	}
	if err := s.DeleteMenu(ctx, a, mid); err != nil || network().DefaultMenuID != nil {
		t.Errorf("menu delete: %v, network's default menu %v", err, network().DefaultMenuID)
	}
	var dev Device
	if err := s.DB.Take(&dev, did).Error; err != nil || dev.MenuID != nil {
		t.Errorf("device's menu after its delete: %v %v", dev.MenuID, err)
	}
	var conflict *ConflictError
	if err := s.DeleteServer(ctx, a, master); !errors.As(err, &conflict) || conflict.Msg != fmt.Sprintf("server %d is the network's master: choose another master server first", master) {
		t.Errorf("master delete with a slave left: %v", err)
	}
	if err := s.DeleteServer(ctx, a, slave.Object.(*Server).ID); err != nil {
		t.Errorf("slave delete: %v", err)
	}
	if err := s.DeleteServer(ctx, a, master); err != nil || network().MasterServerID != nil {
		t.Errorf("last server delete: %v, master %v", err, network().MasterServerID)
	}
	if err := s.DeleteTunnel(ctx, a, tu.Object.(*Tunnel).ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a deleted tunnel: %v", err)
	}
	var names []string
	s.DB.Model(&AuditEvent{}).Where("action = ?", "delete").Order("id").Pluck("detail", &names)
	if want := []string{"t", "menu", "s", "m"}; !slices.Equal(names, want) {
		t.Errorf("delete audits %q, want %q", names, want)
	}
}
