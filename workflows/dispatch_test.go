package workflows

import (
	"reflect"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// registered collects the workflows Register registers on the panel worker.
type registered map[uintptr]bool

func (r registered) RegisterWorkflow(w any) { r[reflect.ValueOf(w).Pointer()] = true }
func (r registered) RegisterWorkflowWithOptions(w any, _ workflow.RegisterOptions) {
	r.RegisterWorkflow(w)
}
func (r registered) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}

// TestEveryOperationKindHasAWorkflow: every kind the store can record (models.OperationKinds)
// plans, from a complete recorded input alone, to a workflow the panel worker registers,
// with an id and an input of the type the workflow takes. A kind added without its entry
// here fails (as device-delete once stayed queued for ever).
func TestEveryOperationKindHasAWorkflow(t *testing.T) {
	reg := registered{}
	Register(reg)
	kinds := models.OperationKinds()
	if len(kinds) < 12 {
		t.Fatalf("only %d operation kinds declared: %v", len(kinds), kinds)
	}
	nid := uint(3)
	in := &models.OperationInput{ServerID: 1, Pool: "tank", SizeGiB: 2, VolumeID: 4, VersionID: 5, Number: 1, Before: 100, RolloutID: 6,
		Devices: []models.BulkDevice{{ID: 7, ServerID: 1, Pool: "tank"}}, Action: "start", Container: &models.ContainerSpec{CTemplateID: 2, Version: 2},
		FromVersion: 1, Suite: "bookworm"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, err := Plan(&models.Operation{ID: 9, NetworkID: &nid, Kind: kind, ObjectID: 7}, in)
			if err != nil {
				t.Fatalf("no workflow: %v", err)
			}
			if s.WorkflowID == "" || s.Queue != PanelQueue || !reg[reflect.ValueOf(s.Workflow).Pointer()] {
				t.Fatalf("planned %+v: want an id, the panel queue and a registered workflow", s)
			}
			if want := reflect.TypeOf(s.Workflow).In(1); reflect.TypeOf(s.Input) != want {
				t.Fatalf("input %T, the workflow takes %v", s.Input, want)
			}
			if s.Update != "" && (s.UpdateID == "" || s.UpdateArg == nil) {
				t.Fatalf("update %q without its id or argument: %+v", s.Update, s)
			}
		})
	}
	if _, err := Plan(&models.Operation{Kind: "volume-explode"}, in); err == nil || !strings.Contains(err.Error(), "no workflow") {
		t.Fatalf("an undeclared kind: %v", err)
	}
}

// TestPlanNeedsTheRecordedInput: an input without its server, or without what its kind
// needs, starts nothing (the engine leaves the operation queued with the reason).
func TestPlanNeedsTheRecordedInput(t *testing.T) {
	for _, tc := range []struct {
		kind string
		in   models.OperationInput
		want string
	}{
		{models.OpVolumeDelete, models.OperationInput{}, "no server and pool"},
		{models.OpVolumeCreate, models.OperationInput{ServerID: 1, Pool: "tank"}, "vol_size"},
		{models.OpGroupCreate, models.OperationInput{ServerID: 1, Pool: "tank"}, "volume_id"},
		{models.OpGroupPublish, models.OperationInput{ServerID: 1, Pool: "tank", Number: 2}, "version_id"},
	} {
		if _, err := Plan(&models.Operation{ID: 1, Kind: tc.kind, ObjectID: 2}, &tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %+v: %v, want %q", tc.kind, tc.in, err, tc.want)
		}
	}
}

// TestPlanCarriesTheFirstStep: the workflows that leave their first step to the engine
// plan it, with the text the run answers in its progress query.
func TestPlanCarriesTheFirstStep(t *testing.T) {
	nid := uint(3)
	in := &models.OperationInput{ServerID: 1, Pool: "tank", SizeGiB: 2, VolumeID: 4, VersionID: 5, Number: 6}
	for kind, want := range map[string]models.WorkflowProgress{
		models.OpVolumeCreate: {Step: "create", Percent: 10, Message: "creating thin zvol tank/iscsi/volumes/7 of 2 GiB on server 1"},
		models.OpGroupCreate:  {Step: "clone", Percent: 10, Message: "cloning volume 4 into tank/iscsi/groups/7"},
		models.OpGroupPublish: {Step: "snapshot", Percent: 10, Message: "snapshotting tank/iscsi/groups/7@v6"},
	} {
		s, err := Plan(&models.Operation{ID: 9, NetworkID: &nid, Kind: kind, ObjectID: 7}, in)
		if err != nil {
			t.Fatal(err)
		}
		if s.First == nil || *s.First != want {
			t.Errorf("%s: first step %+v, want %+v", kind, s.First, want)
		}
	}
}
