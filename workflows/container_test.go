package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
)

func TestContainerCreate(t *testing.T) {
	in := storage.ContainerInput{Pool: "tank", ContainerID: 5, CTemplateID: 2, Version: 1, MemoryMB: 64, Autostart: true, Command: "echo hi"}
	for _, c := range []struct {
		name     string
		err      error
		wantFail bool
	}{
		{"runs", nil, false},
		{"start fails: unit removed, clone to the erator", errors.New("start cd-container-5.service: job failed"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t)
			if c.wantFail {
				s.onTrash(false)
				s.env.OnActivity(sa.RemoveContainer, mock.Anything, storage.RemoveContainerInput{ContainerID: 5}).
					Return(&storage.ContainerResult{}, nil).Once()
			}
			s.env.OnActivity(sa.CreateContainer, mock.Anything, in).
				Return(&storage.ContainerResult{Dataset: "tank/iscsi/containers/5", Unit: "cd-container-5.service"}, c.err)
			s.env.ExecuteWorkflow(ContainerCreate, ContainerCreateInput{OperationID: 3, ServerID: 1, Container: in})
			o := s.outcome(t)
			if o.Failed != c.wantFail || (s.env.GetWorkflowError() != nil) != c.wantFail {
				t.Fatalf("outcome %+v, workflow error %v", o, s.env.GetWorkflowError())
			}
			if c.wantFail {
				s.env.AssertExpectations(t)
				if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/iscsi/containers/5" || s.trashed[0].Kind != "container" {
					t.Fatalf("undo: trashed %+v", s.trashed)
				}
			} else if len(s.trashed) != 0 || !strings.Contains(o.Message, "cd-container-5.service") {
				t.Fatalf("outcome %+v, trashed %+v", o, s.trashed)
			}
		})
	}
}

func TestContainerAct(t *testing.T) {
	s := newSuite(t)
	s.env.OnActivity(sa.ContainerAction, mock.Anything, storage.ContainerActionInput{ContainerID: 5, Action: "stop"}).
		Return(&wire.ContainerStatus{ActiveState: "inactive", SubState: "dead"}, nil).Once()
	s.env.ExecuteWorkflow(ContainerAct, ContainerActInput{OperationID: 4, ContainerID: 5, ServerID: 1, Action: "stop"})
	if o := s.outcome(t); o.Failed || !strings.Contains(o.Message, "stop: inactive (dead)") {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestContainerDelete(t *testing.T) {
	s := newSuite(t)
	s.onTrash(false)
	s.env.OnActivity(sa.RemoveContainer, mock.Anything, storage.RemoveContainerInput{ContainerID: 5}).
		Return(&storage.ContainerResult{Unit: "cd-container-5.service"}, nil).Once()
	s.env.ExecuteWorkflow(ContainerDelete, DeleteInput{OperationID: 6, ObjectID: 5, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(s.trashed) != 1 || s.trashed[0].Dataset != "tank/iscsi/containers/5" || s.trashed[0].Kind != "container" {
		t.Fatalf("trash = %+v", s.trashed)
	}
}

// TestContainerRebase: stop, the old clone into the erator, a clone of the new version
// started in its place; when the new version does not start, the new clone goes into the
// erator (filed older than the old one), the old clone is restored and runs again, and
// the operation fails.
func TestContainerRebase(t *testing.T) {
	to := storage.ContainerInput{Pool: "tank", ContainerID: 5, CTemplateID: 2, Version: 3, MemoryMB: 64, Command: "echo hi"}
	from := to
	from.Version = 1
	for _, c := range []struct {
		name     string
		err      error
		wantFail bool
	}{
		{"rebased", nil, false},
		{"the new version does not start: the old one is back", errors.New("start cd-container-5.service: job failed"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t)
			s.onTrash(false)
			s.env.OnActivity(sa.ContainerAction, mock.Anything, storage.ContainerActionInput{ContainerID: 5, Action: "stop"}).
				Return(&wire.ContainerStatus{ActiveState: "inactive"}, nil).Once()
			s.env.OnActivity(sa.CreateContainer, mock.Anything, to).
				Return(&storage.ContainerResult{Dataset: "tank/iscsi/containers/5", Unit: "cd-container-5.service"}, c.err)
			if c.wantFail {
				s.env.OnActivity(sa.RemoveContainer, mock.Anything, storage.RemoveContainerInput{ContainerID: 5}).
					Return(&storage.ContainerResult{}, nil).Once()
				s.env.OnActivity(sa.Restore, mock.Anything, storage.RestoreInput{Pool: "tank", Kind: "container", ID: 5, Target: "tank/iscsi/containers/5"}).
					Return(&storage.RestoreResult{To: "tank/iscsi/containers/5"}, nil).Once()
				s.env.OnActivity(sa.CreateContainer, mock.Anything, from).
					Return(&storage.ContainerResult{Dataset: "tank/iscsi/containers/5", Unit: "cd-container-5.service"}, nil).Once()
			}
			s.env.ExecuteWorkflow(ContainerRebase, ContainerRebaseInput{OperationID: 3, ServerID: 1, Container: to, From: 1})
			o := s.outcome(t)
			if o.Failed != c.wantFail || (s.env.GetWorkflowError() != nil) != c.wantFail {
				t.Fatalf("outcome %+v, workflow error %v", o, s.env.GetWorkflowError())
			}
			s.env.AssertExpectations(t)
			if len(s.trashed) == 0 || s.trashed[0].Dataset != "tank/iscsi/containers/5" || s.trashed[0].Kind != "container" {
				t.Fatalf("the old clone was not moved: %+v", s.trashed)
			}
			if !c.wantFail {
				if len(s.trashed) != 1 || !strings.Contains(o.Message, "v3") || !strings.Contains(o.Message, "v1 clone is in the erator") {
					t.Fatalf("outcome %+v, trashed %+v", o, s.trashed)
				}
				return
			}
			if len(s.trashed) != 2 || s.trashed[1].Unix != s.trashed[0].Unix-1 {
				t.Fatalf("undo: the new clone must be filed just before the old one: %+v", s.trashed)
			}
		})
	}
}

// TestCTemplateBuild: the build runs on the ctemplate's server with its own bounds and
// reports where it came from; a refused build fails the operation (the agent has undone it).
func TestCTemplateBuild(t *testing.T) {
	b := storage.BuildCTemplateInput{Pool: "tank", CTemplateID: 4, Version: 1, Suite: "bookworm"}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"built", nil},
		{"no apt source", typed(fmt.Errorf("no deb source: %w", activities.ErrNoAptSource))},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t)
			calls := 0
			s.env.OnActivity(sa.BuildCTemplate, mock.Anything, b).Return(
				func(ctx context.Context, _ storage.BuildCTemplateInput) (*storage.BuildCTemplateResult, error) {
					calls++
					info := activity.GetInfo(ctx)
					if info.TaskQueue != ServerQueue(2) || info.StartToCloseTimeout != buildRun {
						t.Errorf("build on %s within %s", info.TaskQueue, info.StartToCloseTimeout)
					}
					if c.err != nil {
						return nil, c.err
					}
					return &storage.BuildCTemplateResult{Snapshot: "tank/iscsi/ctemplates/4@v1", Mirror: "http://deb.debian.org/debian"}, nil
				})
			s.env.ExecuteWorkflow(CTemplateBuild, CTemplateBuildInput{OperationID: 8, ServerID: 2, Build: b})
			o := s.outcome(t)
			if c.err == nil {
				if o.Failed || !strings.Contains(o.Message, "ctemplates/4@v1 built from http://deb.debian.org/debian") {
					t.Fatalf("outcome %+v", o)
				}
				// The version is brought to the network's other servers, as a publish does.
				if want := (panel.QueueReplicationInput{Kind: ReplicateCTemplate, ObjectID: 4, Snapshot: "v1"}); len(s.queued) != 1 || s.queued[0] != want {
					t.Errorf("queued %+v, want %+v", s.queued, want)
				}
				return
			}
			if len(s.queued) != 0 {
				t.Errorf("a failed build queued %+v", s.queued)
			}
			if !o.Failed || calls != 1 || !strings.Contains(o.Error, "no deb source") {
				t.Fatalf("outcome %+v after %d calls, want one failed call", o, calls)
			}
		})
	}
	if _, err := dispatch[models.OpCTemplateBuild](recorded{ID: 8, Object: 4, OperationInput: models.OperationInput{ServerID: 2, Pool: "tank", Number: 1}}); err == nil {
		t.Error("a build without a suite was dispatched")
	}
}

// TestCTemplateDeleteMovesCopies: a ctemplate's dataset goes into its server's erator, and
// each other server's copy into that server's, after the transfer bringing it there is
// cancelled.
func TestCTemplateDeleteMovesCopies(t *testing.T) {
	s := newSuite(t)
	s.onTrash(false)
	s.slaves = []panel.Slave{{ID: 3, Pool: "sat"}}
	s.env.ExecuteWorkflow(CTemplateDelete, DeleteInput{OperationID: 6, ObjectID: 4, ServerID: 1, Pool: "tank"})
	if err := s.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(s.trashed) != 2 || s.trashed[0].Dataset != "tank/iscsi/ctemplates/4" || s.trashed[1].Dataset != "sat/iscsi/ctemplates/4" ||
		s.trashed[1].Kind != "ctemplate" || s.trashed[1].Pool != "sat" {
		t.Fatalf("trash = %+v", s.trashed)
	}
	if !slices.Contains(s.cancelled, ReplicateID(3, ReplicateCTemplate, 4)) {
		t.Errorf("cancelled %v: the transfer to server 3 was not", s.cancelled)
	}
	if o := s.outcome(t); o.Failed || !strings.Contains(o.Message, "the copies on 1 slaves too") {
		t.Errorf("outcome %+v", o)
	}
}
