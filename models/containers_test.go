package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestCTemplateReplication: a ctemplate's upload queues its version's replication to the
// slave (a replicate-ctemplate from the ctemplate's server); the plan, the reconcile's
// targets and a delete's servers cover it; a container on the slave is refused (409
// naming server_id) until a comparison by guid recorded the slave's copy of that version,
// and a rebase there likewise.
func TestCTemplateReplication(t *testing.T) {
	ctx := context.Background()
	s, a, g, m, slave := twoServerStore(t, true)
	nid, master := g.NetworkID, *m
	ct, err := s.CreateCTemplate(ctx, a, &CTemplateInput{NetworkID: &nid, Name: Strp("base")})
	if err != nil {
		t.Fatal(err)
	}
	tid := ct.Object.(*CTemplate).ID

	// Nothing uploaded: nothing to replicate.
	if ops, err := s.QueueReplication(ctx, ReplicationRequest{Kind: ReplicateCTemplate, ObjectID: tid}); err != nil || len(ops) != 0 {
		t.Fatalf("queued %+v %v for a ctemplate without a version", ops, err)
	}
	if err := s.FinishCTemplateUpload(ctx, a, tid, 1, strings.Repeat("a", 64)); err != nil {
		t.Fatal(err)
	}
	var ops []Operation
	s.DB.Where("kind = ? AND object_id = ?", OpReplicateCTemplate, tid).Find(&ops)
	if len(ops) != 1 || ops[0].ObjectType != "ctemplate" || !strings.HasPrefix(ops[0].Input, fmt.Sprintf(`{"server_id":%d,`, slave.ID)) ||
		!strings.Contains(ops[0].Input, `"snapshot":"v1"`) {
		t.Fatalf("the upload queued %+v; want one replicate-ctemplate of v1 to the slave", ops)
	}

	// A slave joining catches up with the ctemplate too.
	s2, err := s.CreateServer(ctx, a, &ServerInput{NetworkID: &nid, Name: Strp("s2"), IP: Strp("10.0.0.3"), Pool: Strp("sat2")})
	if err != nil {
		t.Fatal(err)
	}
	joined := s2.Object.(*Server).ID
	if err := RecordServerStats(ctx, s.DB, joined, &StatsReport{PoolHealth: "ONLINE"}); err != nil {
		t.Fatal(err)
	}
	caught, err := s.QueueReplication(ctx, ReplicationRequest{SlaveID: joined})
	if err != nil || !slices.ContainsFunc(caught, func(o Operation) bool { return o.Kind == OpReplicateCTemplate && o.ObjectID == tid }) {
		t.Fatalf("a joining slave's catch-up %+v %v: want the ctemplate among it", caught, err)
	}
	s.DB.Delete(&Server{}, joined)

	p, err := PlanReplication(ctx, s.DB, nid, slave.ID, ReplicateCTemplate, tid, "")
	if err != nil || p.MasterID != master.ID || p.MasterPool != "tank" || p.SlavePool != "sat" || len(p.Datasets) != 1 ||
		p.Datasets[0].Dataset != fmt.Sprintf("iscsi/ctemplates/%d", tid) || p.Datasets[0].Snapshot != "v1" || p.Versions != nil {
		t.Fatalf("plan %+v %v", p, err)
	}
	var ve *ValidationError
	if _, err := PlanReplication(ctx, s.DB, nid, master.ID, ReplicateCTemplate, tid, ""); !errors.As(err, &ve) {
		t.Errorf("a plan to the ctemplate's own server: %v", err)
	}
	targets, err := ReplicaTargets(ctx, s.DB)
	if err != nil {
		t.Fatal(err)
	}
	want := ReplicaTarget{NetworkID: nid, Kind: ReplicateCTemplate, ObjectID: tid, MasterID: master.ID, MasterPool: "tank", SlaveID: slave.ID, SlavePool: "sat"}
	found := 0
	for _, tg := range targets {
		if tg.Kind == ReplicateCTemplate {
			found++
			if tg != want {
				t.Errorf("target %+v, want %+v", tg, want)
			}
		}
	}
	if found != 1 {
		t.Errorf("targets %+v: want the ctemplate's copy on the slave once", targets)
	}
	if others, err := SlavesOf(ctx, s.DB, ReplicateCTemplate, tid); err != nil || len(others) != 1 || others[0].ID != slave.ID {
		t.Errorf("servers holding its copies %+v %v; want the slave", others, err)
	}

	// Not on the slave yet: 409 naming server_id, saying so.
	in := &ContainerInput{NetworkID: &nid, Name: Strp("c"), CTemplateID: &tid, ServerID: &slave.ID}
	var ce *ConflictError
	if _, err := s.CreateContainer(ctx, a, in); !errors.As(err, &ce) || ce.Field != "server_id" || !strings.Contains(ce.Msg, "verified copy") {
		t.Fatalf("container on the slave before the copy: %v", err)
	}
	var n int64
	s.DB.Model(&Container{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d containers left by the refusal", n)
	}

	// A guid comparison records the versions only (not a hold's snapshot); no guid, no copy.
	if err := RecordVerified(ctx, s.DB, slave.ID, ReplicateCTemplate, tid, []SnapshotGUID{{"v1", "111"}, {"hold", "999"}, {"v7", "777"}}); err != nil {
		t.Fatal(err)
	}
	if err := RecordCTemplateCopy(ctx, s.DB, CTemplateCopyInput{ServerID: slave.ID, CTemplateID: tid, Version: 1}); !errors.Is(err, ErrGUIDMismatch) {
		t.Errorf("a copy without a guid: %v", err)
	}
	var copies []CTemplateCopy
	s.DB.Find(&copies)
	if len(copies) != 1 || copies[0].ServerID != slave.ID || copies[0].Version != 1 || copies[0].GUID != "111" {
		t.Fatalf("copies %+v; want v1 on the slave", copies)
	}
	res, err := s.CreateContainer(ctx, a, in)
	if err != nil {
		t.Fatalf("container on the slave holding v1: %v", err)
	}
	c := res.Object.(*Container)
	if c.ServerID == nil || *c.ServerID != slave.ID || c.CTemplateVersion != 1 {
		t.Fatalf("container %+v: want v1 on the slave", c)
	}

	// v2 on the master only: a rebase on the slave waits for its copy.
	if err := s.FinishCTemplateUpload(ctx, a, tid, 2, strings.Repeat("b", 64)); err != nil {
		t.Fatal(err)
	}
	s.DB.Model(&Operation{}).Where("id = ?", res.Operation.ID).Update("state", OpSucceeded)
	s.DB.Model(&Container{}).Where("id = ?", c.ID).Update("state", StateReady)
	if _, err := s.RebaseContainer(ctx, a, c.ID, &ContainerRebaseInput{}); !errors.As(err, &ce) || !strings.Contains(ce.Msg, fmt.Sprintf("server %d", slave.ID)) {
		t.Fatalf("rebase on the slave before v2's copy: %v", err)
	}
	if err := RecordCTemplateCopy(ctx, s.DB, CTemplateCopyInput{ServerID: slave.ID, CTemplateID: tid, Version: 2, GUID: "222"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RebaseContainer(ctx, a, c.ID, &ContainerRebaseInput{}); err != nil {
		t.Fatalf("rebase on the slave holding v2: %v", err)
	}

	// A ctemplate's transfer that keeps failing is alerted like a group's.
	for range FailingTransfers {
		op := Operation{NetworkID: &nid, Kind: OpReplicateCTemplate, ObjectType: "ctemplate", ObjectID: tid, State: OpFailed,
			Input: fmt.Sprintf(`{"server_id":%d}`, slave.ID), Error: "stream cut"}
		if err := s.DB.Create(&op).Error; err != nil {
			t.Fatal(err)
		}
	}
	alerts, err := s.Alerts(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(alerts, func(al Alert) bool {
		return al.Code == AlertReplicationFailing && al.Link == fmt.Sprintf("/ctemplates/%d", tid) && strings.Contains(al.Message, "ctemplate")
	}) {
		t.Errorf("alerts %+v: want the ctemplate's failing transfer", alerts)
	}
}
