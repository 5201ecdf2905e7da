package workflows

import (
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/stretchr/testify/mock"
)

func TestVDiskCreate(t *testing.T) {
	for _, c := range []struct {
		name      string
		attachErr error
		wantFail  bool
	}{
		{"served as LUN 1", nil, false},
		{"attach fails: the zvol goes to the erator", typed(activities.ErrDatasetNotFound), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t)
			s.env.RegisterActivity(&storage.Devices{})
			if c.wantFail {
				s.onTrash(false)
			}
			s.env.OnActivity(sa.CreateVDisk, mock.Anything, storage.VDiskInput{Pool: "tank", VDiskID: 5, Size: 2 << 30}).
				Return(&storage.VolumeResult{Dataset: "tank/vdisks/5", Created: true, Volsize: 2 << 30}, nil).Once()
			s.env.OnActivity(da.AttachVDisk, mock.Anything, storage.AttachVDiskInput{NetworkID: 1, VDiskID: 5, To: 9, Pool: "tank"}).
				Return(&storage.AttachVDiskResult{}, c.attachErr).Once()
			s.env.ExecuteWorkflow(VDiskCreate, VDiskCreateInput{OperationID: 3, VDiskID: 5, NetworkID: 1, DeviceID: 9, ServerID: 1, Pool: "tank", SizeGiB: 2})
			o := s.outcome(t)
			if o.Failed != c.wantFail || (s.env.GetWorkflowError() != nil) != c.wantFail {
				t.Fatalf("outcome %+v, workflow error %v", o, s.env.GetWorkflowError())
			}
			if c.wantFail {
				if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/vdisks/5" || s.trashed[0].Kind != "vdisk" {
					t.Fatalf("undo = %+v", s.trashed)
				}
			} else if len(s.trashed) != 0 || !strings.Contains(o.Message, "created tank/vdisks/5 (2 GiB)") {
				t.Fatalf("outcome %+v, trashed %+v", o, s.trashed)
			}
		})
	}
}

func TestVDiskAttachRefusedWhileBooted(t *testing.T) {
	s := newSuite(t)
	s.env.RegisterActivity(&storage.Devices{})
	s.env.OnActivity(da.AttachVDisk, mock.Anything, storage.AttachVDiskInput{NetworkID: 1, VDiskID: 5, From: 9, To: 10, Pool: "tank"}).
		Return(nil, typed(activities.ErrDeviceBooted)).Once()
	s.env.ExecuteWorkflow(VDiskAttach, VDiskAttachInput{OperationID: 4, VDiskID: 5, NetworkID: 1, From: 9, To: 10, ServerID: 1, Pool: "tank"})
	if o := s.outcome(t); !o.Failed || !strings.Contains(o.Error, "booted") {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestVDiskDelete(t *testing.T) {
	s := newSuite(t)
	s.onTrash(false)
	s.env.ExecuteWorkflow(VDiskDelete, DeleteInput{OperationID: 6, ObjectID: 5, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/vdisks/5" || s.trashed[0].Kind != "vdisk" {
		t.Fatalf("trash = %+v", s.trashed)
	}
}

// A deleted vdisk's backups on the other servers go to their erators too.
func TestVDiskDeleteMovesItsBackups(t *testing.T) {
	s := newSuite(t)
	s.slaves = []panel.Slave{{ID: 2, Pool: "sat"}}
	s.onTrash(false)
	s.env.ExecuteWorkflow(VDiskDelete, DeleteInput{OperationID: 6, ObjectID: 5, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(s.trashed) != 2 || s.trashed[0].Dataset != "tank/vdisks/5" || s.trashed[1].Dataset != "sat/vdisks/5" || s.trashed[1].Kind != "vdisk" {
		t.Fatalf("trash = %+v", s.trashed)
	}
}
