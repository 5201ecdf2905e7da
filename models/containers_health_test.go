package models

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// TestContainerHealth: one row per way a container's unit can be, judged against what
// its operator asked for.
func TestContainerHealth(t *testing.T) {
	ready := func(id uint, stopped bool) Container {
		return Container{ID: id, NetworkID: 1, Name: "c", State: StateReady, Stopped: stopped}
	}
	for _, c := range []struct {
		name    string
		c       Container
		unit    *wire.ContainerUnit
		ok      bool
		judged  bool
		errWant string
	}{
		{"running", ready(1, false), &wire.ContainerUnit{ID: 1, ActiveState: "active", SubState: "running"}, true, true, ""},
		{"starting", ready(1, false), &wire.ContainerUnit{ID: 1, ActiveState: "activating", SubState: "start"}, true, true, ""},
		{"failed", ready(1, false), &wire.ContainerUnit{ID: 1, ActiveState: "failed", SubState: "failed", Result: "exit-code"}, false, true, "failed (exit-code)"},
		{"ended cleanly", ready(1, false), &wire.ContainerUnit{ID: 1, ActiveState: "inactive", SubState: "dead", Result: "success"}, false, true, "ended (dead, success)"},
		{"unit missing", ready(1, false), nil, false, true, "missing"},
		{"stopped by its operator", ready(1, true), &wire.ContainerUnit{ID: 1, ActiveState: "inactive", SubState: "dead"}, true, true, ""},
		{"killed by its operator", ready(1, true), &wire.ContainerUnit{ID: 1, ActiveState: "failed", Result: "signal"}, true, true, ""},
		{"still being made", Container{ID: 1, State: StatePending}, nil, false, false, ""},
		{"being deleted", Container{ID: 1, State: StateDeleting}, nil, false, false, ""},
	} {
		units := []wire.ContainerUnit{{ID: 99, ActiveState: "failed"}} // another container's: never this one's
		if c.unit != nil {
			units = append(units, *c.unit)
		}
		got := ContainerHealth([]Container{c.c}, units)
		if !c.judged {
			if len(got) != 0 {
				t.Errorf("%s: judged %+v", c.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Class != HealthContainer || got[0].Key() != "container/1" || got[0].OK != c.ok || !strings.Contains(got[0].Error, c.errWant) {
			t.Errorf("%s: %+v, want ok %v with %q", c.name, got, c.ok, c.errWant)
		}
	}
	if got := ContainerHealth([]Container{ready(1, false)}, nil); got != nil {
		t.Errorf("an agent that could not ask systemd: judged %+v", got)
	}
}

// TestContainerAndVDiskAlerts: a container that fails is an alert (and a mail) once the
// health check has seen it fail for the rules' run of checks, cleared as it runs again or
// when its operator stops it; a vdisk whose server the health check finds unreachable
// is an alert until the server answers again.
func TestContainerAndVDiskAlerts(t *testing.T) {
	ctx := context.Background()
	s, admin := testStore(t)
	c, err := s.CreateNetwork(ctx, admin, &NetworkInput{Name: Strp("n1")})
	if err != nil {
		t.Fatal(err)
	}
	net := c.Object.(*Network)
	srvC, err := s.CreateServer(ctx, admin, &ServerInput{NetworkID: &net.ID, Name: Strp("m"), IP: Strp("192.0.2.3"), Pool: Strp("tank")})
	if err != nil {
		t.Fatal(err)
	}
	srv := srvC.Object.(*Server)
	ct := &CTemplate{NetworkID: net.ID, Name: "t", ServerID: &srv.ID, Version: 1, State: StateReady}
	if err := s.DB.Create(ct).Error; err != nil {
		t.Fatal(err)
	}
	con := &Container{NetworkID: net.ID, Name: "web", CTemplateID: ct.ID, CTemplateVersion: 1, ServerID: &srv.ID, State: StateReady}
	vd := &VDisk{NetworkID: net.ID, Name: "data", SizeGiB: 1, ServerID: &srv.ID, State: StateReady}
	if err := s.DB.Create(con).Error; err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Create(vd).Error; err != nil {
		t.Fatal(err)
	}
	has := func(code string) bool {
		t.Helper()
		list, err := s.Alerts(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range list {
			if al.Code == code {
				if al.Link == "" || al.Message == "" || al.NetworkID == nil || *al.NetworkID != net.ID {
					t.Errorf("alert %+v", al)
				}
				return true
			}
		}
		return false
	}
	now := time.Now()
	round := func(results ...HealthResult) []AlertEvent {
		t.Helper()
		now = now.Add(20 * time.Second)
		evs, err := RecordHealth(ctx, s.DB, results, HealthRules{}, now)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	unit := func(state string) []HealthResult {
		var cs []Container
		if err := s.DB.Where("id = ?", con.ID).Find(&cs).Error; err != nil {
			t.Fatal(err)
		}
		return ContainerHealth(cs, []wire.ContainerUnit{{ID: con.ID, ActiveState: state, Result: "exit-code"}})
	}
	// Seen running first (no news), then failing: down after three checks, mailed once.
	var evs []AlertEvent
	for range 3 {
		evs = append(evs, round(unit("active")...)...)
	}
	for i := range 3 {
		if has(AlertContainerFailed) {
			t.Fatalf("container_failed after %d failed checks", i)
		}
		evs = append(evs, round(unit("failed")...)...)
	}
	if !has(AlertContainerFailed) {
		t.Fatal("no container_failed after three failed checks")
	}
	if len(evs) != 1 || evs[0].Kind != EventDown || !evs[0].Mailed || evs[0].Link != "/containers/"+itoa(con.ID) {
		t.Fatalf("events %+v, want one mailed down", evs)
	}
	if subj, body := HealthNotice(&evs[0], net.Name, ""); !strings.Contains(subj, "web failed") || !strings.Contains(body, "exit-code") {
		t.Errorf("mail %q %q", subj, body)
	}
	// Its operator stops it: the alert goes at once (it is no longer meant to run) and
	// the stored state recovers with the next checks.
	if err := s.DB.Model(con).Update("stopped", true).Error; err != nil {
		t.Fatal(err)
	}
	if has(AlertContainerFailed) {
		t.Error("container_failed for a container its operator stopped")
	}
	evs = nil
	for range 3 {
		evs = append(evs, round(unit("failed")...)...)
	}
	if len(evs) != 1 || evs[0].Kind != EventUp || !evs[0].Mailed {
		t.Errorf("after the stop: events %+v, want the recovery mail", evs)
	}

	// The vdisk's server: seen up, then unreachable three times.
	srvResult := func(ok bool) HealthResult {
		return HealthResult{Class: HealthServer, NetworkID: net.ID, ObjectID: srv.ID, Name: srv.Name, OK: ok, Error: "timeout"}
	}
	for range 3 {
		round(srvResult(true))
	}
	for range 3 {
		if has(AlertVDiskServerUnreachable) {
			t.Fatal("vdisk_server_unreachable before the server is down")
		}
		round(srvResult(false))
	}
	got := []string{}
	list, _ := s.Alerts(ctx, admin)
	for _, al := range list {
		if al.Code == AlertVDiskServerUnreachable {
			got = append(got, al.Link)
			if !strings.Contains(al.Message, `"data"`) || !strings.Contains(al.Message, `"m"`) {
				t.Errorf("message %q", al.Message)
			}
		}
	}
	if want := []string{"/vdisks/" + itoa(vd.ID)}; !slices.Equal(got, want) {
		t.Errorf("vdisk alerts %v, want %v", got, want)
	}
	for range 3 {
		round(srvResult(true))
	}
	if has(AlertVDiskServerUnreachable) {
		t.Error("vdisk_server_unreachable after the server came back")
	}
	// A deleted vdisk is no alert even while its server is down.
	if err := s.DB.Model(vd).Update("state", StateDeleted).Error; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		round(srvResult(false))
	}
	codes := []string{}
	list, _ = s.Alerts(ctx, admin)
	for _, al := range list {
		codes = append(codes, al.Code)
	}
	sort.Strings(codes)
	if slices.Contains(codes, AlertVDiskServerUnreachable) {
		t.Errorf("alerts %v: a deleted vdisk's server", codes)
	}
}
