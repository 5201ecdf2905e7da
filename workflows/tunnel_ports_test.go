package workflows

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/tunnel"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// TestTunnelPorts: the network's tunnels take their ports on their own queues, those
// that close ports first (a port moving between tunnels of one machine is free before it
// opens), and a tunnel that cannot open one is reported, not failed.
func TestTunnelPorts(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&panel.Activities{})
	env.RegisterActivity(&tunnel.Activities{})
	Register(env)
	var mu sync.Mutex
	var order []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		order = append(order, info.ActivityType.Name+"@"+info.TaskQueue)
		mu.Unlock()
	})
	env.OnActivity(pa.HealthTargets, mock.Anything, panel.HealthTargetsInput{NetworkID: 3}).Return(&panel.HealthTargetsResult{Tunnels: []panel.TunnelTarget{
		{TunnelID: 1, NetworkID: 3, Ports: []wire.TunnelPort{{ServerID: 5, Port: 9000}}},
		{TunnelID: 2, NetworkID: 3},
	}}, nil).Once()
	env.OnActivity(ta.SyncPorts, mock.Anything, tunnel.SyncPortsInput{}).Return(&tunnel.SyncPortsResult{}, nil).Once()
	env.OnActivity(ta.SyncPorts, mock.Anything, tunnel.SyncPortsInput{Ports: []wire.TunnelPort{{ServerID: 5, Port: 9000}}}).
		Return(&tunnel.SyncPortsResult{Agents: []uint{5}, Error: "port taken"}, nil).Once()
	env.ExecuteWorkflow(TunnelPorts, TunnelPortsInput{NetworkID: 3})
	var res TunnelPortsResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := []string{"HealthTargets@" + PanelQueue, "SyncPorts@" + TunnelQueue(2), "SyncPorts@" + TunnelQueue(1)}
	if len(order) != len(want) {
		t.Fatalf("activities %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("activities %v, want %v", order, want)
		}
	}
	if res.Passes != 1 || len(res.Tunnels) != 2 || res.Tunnels[0].Error != "port taken" || res.Tunnels[0].Ports != 1 || res.Tunnels[1].Ports != 0 {
		t.Errorf("result %+v", res)
	}
}

// TestTunnelPortsClosesDeletedTunnels: a tunnel deleted (no row lists it any more) is told
// to close every port, once even when the input and a signal both name it.
func TestTunnelPortsClosesDeletedTunnels(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&panel.Activities{})
	env.RegisterActivity(&tunnel.Activities{})
	Register(env)
	var queues []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "SyncPorts" {
			queues = append(queues, info.TaskQueue)
		}
	})
	env.OnActivity(pa.HealthTargets, mock.Anything, mock.Anything).Return(&panel.HealthTargetsResult{}, nil)
	env.OnActivity(ta.SyncPorts, mock.Anything, tunnel.SyncPortsInput{}).Return(&tunnel.SyncPortsResult{}, nil)
	env.ExecuteWorkflow(TunnelPorts, TunnelPortsInput{NetworkID: 3, Closed: []uint{9, 9}})
	var res TunnelPortsResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(queues) != 1 || queues[0] != TunnelQueue(9) || len(res.Tunnels) != 1 || res.Tunnels[0].TunnelID != 9 {
		t.Errorf("SyncPorts on %v, result %+v", queues, res)
	}
}
