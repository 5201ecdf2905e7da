package models

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"testing"
)

func codes(t *testing.T, s *Store, a *Actor) []string {
	t.Helper()
	list, err := s.Alerts(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, al := range list {
		if al.Link == "" || al.Message == "" {
			t.Errorf("alert %s without link or message: %+v", al.Code, al)
		}
		out = append(out, al.Code)
	}
	sort.Strings(out)
	return out
}

// TestAlerts walks the guide's order and checks the alerts after each step, for the
// super-admin and for a user of another client (who sees none of this network).
func TestAlerts(t *testing.T) {
	ctx := context.Background()
	s, admin := testStore(t)
	other := func() *Actor {
		c, err := s.CreateClient(ctx, admin, &ClientInput{Name: Strp("Other")})
		if err != nil {
			t.Fatal(err)
		}
		cid := c.Object.(*Client).ID
		u, err := s.CreateUser(ctx, admin, &UserInput{Email: Strp("o@example.com"), Password: Strp("0123456789"), ClientID: &cid})
		if err != nil {
			t.Fatal(err)
		}
		return &Actor{User: *u.Object.(*User)}
	}()
	var net *Network
	var srv *Server
	var vol *Volume
	var grp *Group
	var ver *GroupVersion
	steps := []struct {
		name  string
		do    func() error
		want  []string
		other []string
	}{
		{"first start", func() error { return nil },
			[]string{AlertNoNetwork, AlertSMTPNotConfigured}, []string{AlertNoNetwork}},
		{"network", func() error {
			c, err := s.CreateNetwork(ctx, admin, &NetworkInput{Name: Strp("n1")})
			if err == nil {
				net = c.Object.(*Network)
			}
			return err
		}, []string{AlertNoTunnel, AlertNoServer, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, []string{AlertNoNetwork}},
		{"tunnel", func() error {
			_, err := s.CreateTunnel(ctx, admin, &TunnelInput{NetworkID: &net.ID, Alias: Strp("t"), IP: Strp("192.0.2.2")})
			return err
		}, []string{AlertNoServer, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, []string{AlertNoNetwork}},
		{"tunnel unselected", func() error {
			_, err := s.UpdateNetwork(ctx, admin, net.ID, &NetworkInput{TunnelID: Uintp(0)})
			return err
		}, []string{AlertNoTunnel, AlertNoServer, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"server", func() error {
			if _, err := s.UpdateNetwork(ctx, admin, net.ID, &NetworkInput{TunnelID: Uintp(1)}); err != nil {
				return err
			}
			c, err := s.CreateServer(ctx, admin, &ServerInput{NetworkID: &net.ID, Name: Strp("m"), IP: Strp("192.0.2.3"), Pool: Strp("tank")})
			if err == nil {
				srv = c.Object.(*Server)
			}
			return err
		}, []string{AlertMasterUnreachable, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"no master", func() error {
			_, err := s.UpdateNetwork(ctx, admin, net.ID, &NetworkInput{MasterServerID: Uintp(0)})
			return err
		}, []string{AlertNoMaster, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"pool degraded", func() error {
			if _, err := s.UpdateNetwork(ctx, admin, net.ID, &NetworkInput{MasterServerID: &srv.ID}); err != nil {
				return err
			}
			return RecordServerStats(ctx, s.DB, srv.ID, &StatsReport{PoolHealth: "DEGRADED"})
		}, []string{AlertPoolUnhealthy, AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"pool online", func() error {
			return RecordServerStats(ctx, s.DB, srv.ID, &StatsReport{PoolHealth: "ONLINE"})
		}, []string{AlertNoVolume, AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"volume", func() error {
			c, err := s.CreateVolume(ctx, admin, &VolumeInput{NetworkID: &net.ID, Alias: Strp("v"), SizeGiB: new(int64(1))})
			if err == nil {
				vol = c.Object.(*Volume)
			}
			return err
		}, []string{AlertNoGroup, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"group", func() error {
			c, err := s.CreateGroup(ctx, admin, &GroupInput{NetworkID: &net.ID, Name: Strp("g"), VolumeID: &vol.ID})
			if err == nil {
				grp = c.Object.(*Group)
			}
			return err
		}, []string{AlertGroupWithoutVersion, AlertNoDefaultGroup, AlertSMTPNotConfigured}, nil},
		{"default group", func() error {
			_, err := s.UpdateNetwork(ctx, admin, net.ID, &NetworkInput{DefaultGroupID: &grp.ID})
			return err
		}, []string{AlertGroupWithoutVersion, AlertSMTPNotConfigured}, nil},
		{"version", func() error {
			if err := s.DB.Model(&Group{}).Where("id = ?", grp.ID).Update("state", StateReady).Error; err != nil {
				return err
			}
			c, err := s.PublishGroup(ctx, admin, grp.ID, &PublishInput{})
			if err != nil {
				return err
			}
			ver = c.Object.(*GroupVersion)
			return FinishOperation(ctx, s.DB, Outcome{WorkflowProgress: WorkflowProgress{OperationID: c.Operation.ID}, VersionID: ver.ID, GUID: "1"})
		}, []string{AlertSMTPNotConfigured}, nil},
		{"smtp", func() error {
			_, err := s.UpdateSettings(ctx, admin, &SettingsInput{SMTPHost: Strp("127.0.0.1"), SMTPFrom: Strp("panel@example.com")})
			return err
		}, []string{}, []string{AlertNoNetwork}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want := slices.Clone(st.want)
		sort.Strings(want)
		if got := codes(t, s, admin); !slices.Equal(got, want) {
			t.Fatalf("after %s: alerts %v, want %v", st.name, got, want)
		}
		if st.other != nil {
			if got := codes(t, s, other); !slices.Equal(got, st.other) {
				t.Fatalf("after %s: the other client's user sees %v, want %v", st.name, got, st.other)
			}
		}
	}
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s, admin := testStore(t)
	for _, c := range []struct {
		in    SettingsInput
		field string
	}{
		{SettingsInput{SMTPPort: new(0)}, "smtp_port"},
		{SettingsInput{SMTPPort: new(65536)}, "smtp_port"},
		{SettingsInput{SMTPTLS: Strp("ssl3")}, "smtp_tls"},
		{SettingsInput{SMTPFrom: Strp("not an address")}, "smtp_from"},
		{SettingsInput{SMTPHost: Strp("bad host!")}, "smtp_host"},
		{SettingsInput{PanelHostname: Strp("-x-")}, "panel_hostname"},
		{SettingsInput{SMTPHost: Strp("Mail.Example.com"), SMTPPort: new(465), SMTPTLS: Strp("TLS"), SMTPFrom: Strp("panel@example.com")}, ""},
	} {
		_, err := s.UpdateSettings(ctx, admin, &c.in)
		var ve *ValidationError
		if c.field == "" {
			if err != nil {
				t.Fatalf("%+v: %v", c.in, err)
			}
			continue
		}
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Fatalf("%+v: %v, want a validation error on %s", c.in, err, c.field)
		}
	}
	st, err := s.GetSettings(ctx, admin)
	if err != nil || st.SMTPHost != "mail.example.com" || st.SMTPTLS != "tls" || st.SMTPPort != 465 || !st.SMTPConfigured() {
		t.Fatalf("settings: %+v %v", st, err)
	}
	user := &Actor{User: User{ID: 99, ClientID: admin.ClientID, Role: RoleAdmin}}
	var fe *ForbiddenError
	if _, err := s.GetSettings(ctx, user); !errors.As(err, &fe) {
		t.Fatalf("a client admin reads the settings: %v", err)
	}
	if _, err := s.UpdateSettings(ctx, user, &SettingsInput{SMTPHost: Strp("x")}); !errors.As(err, &fe) {
		t.Fatalf("a client admin changes the settings: %v", err)
	}
}

func TestLoginLimits(t *testing.T) {
	ctx := context.Background()
	s, admin := testStore(t)
	hash, err := HashPassword("right password")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Model(&User{}).Where("id = ?", admin.ID).Update("password_hash", hash).Error; err != nil {
		t.Fatal(err)
	}
	if a, err := Login(ctx, s.DB, " Admin@Example.com ", "right password", "10.0.0.1"); err != nil || a.ID != admin.ID {
		t.Fatalf("login: %v %v", a, err)
	}
	if _, err := Login(ctx, s.DB, "nobody@example.com", "right password", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown e-mail: %v", err)
	}
	// Failures from one address block that address, not another one.
	for i := 1; i < LoginMaxFailuresPerIP; i++ {
		if _, err := Login(ctx, s.DB, admin.Email, "wrong", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	var rl *RateLimitedError
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "10.0.0.1"); !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("after %d failures: %v", LoginMaxFailuresPerIP, err)
	}
	if _, err := Login(ctx, s.DB, admin.Email, "right password", "10.0.0.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Failures on one account from many addresses block the account.
	for i := 0; i < LoginMaxFailuresPerUser; i++ {
		Login(ctx, s.DB, "target@example.com", "wrong", "10.1.0."+strconv.Itoa(i)) //nolint:errcheck
	}
	if _, err := Login(ctx, s.DB, "target@example.com", "wrong", "10.2.0.1"); !errors.As(err, &rl) {
		t.Fatalf("account limit: %v", err)
	}
	// Changing the password needs the current one.
	if err := s.ChangePassword(ctx, admin, "wrong", "new password 1"); err == nil {
		t.Fatal("changed the password without the current one")
	}
	if err := s.ChangePassword(ctx, admin, "right password", "short"); err == nil {
		t.Fatal("accepted a short password")
	}
}
