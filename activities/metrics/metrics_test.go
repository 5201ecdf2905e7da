package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/test/harness"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.StopTemporal()
	os.Exit(code)
}

func probe(ctx workflow.Context, fail bool) (string, error) {
	if fail {
		return "", temporal.NewNonRetryableApplicationError("probe asked to fail", "Probe", nil)
	}
	return "ok", nil
}

// scrape reads the registry through its HTTP handler and parses the text format, as
// Prometheus would.
func scrape(t *testing.T, r *metrics.Registry) harness.Metrics {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return harness.ParseMetrics(t, rec.Body)
}

// Through a real Temporal server: a client made with the registry's options reports the
// SDK's metrics and our workflow outcomes, by type and outcome, once per execution.
func TestWorkflowAndSDKMetrics(t *testing.T) {
	reg := metrics.New("panel", "test")
	var opts client.Options
	reg.ClientOptions(&opts)
	c := harness.Temporal(t).NewClientWithOptions(opts)
	defer c.Close()
	q := harness.TaskQueue(t)
	w := worker.New(c, q, worker.Options{})
	w.RegisterWorkflowWithOptions(probe, workflow.RegisterOptions{Name: "MetricsProbe"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	before := scrape(t, reg)
	if before.Sum("clusterducks_build_info", map[string]string{"role": "panel", "version": "test"}) != 1 {
		t.Errorf("build info missing: %v", before["clusterducks_build_info"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, fail := range []bool{false, false, true} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: q}, "MetricsProbe", fail)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		err = run.Get(ctx, &out)
		var appErr *temporal.ApplicationError
		if fail != errors.As(err, &appErr) {
			t.Fatalf("probe(fail=%v): %v", fail, err)
		}
	}
	wants := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"clusterducks_workflow_outcomes_total", map[string]string{"workflow_type": "MetricsProbe", "outcome": "completed"}, 2},
		{"clusterducks_workflow_outcomes_total", map[string]string{"workflow_type": "MetricsProbe", "outcome": "failed"}, 1},
		{"clusterducks_workflow_duration_seconds", map[string]string{"workflow_type": "MetricsProbe"}, 3},
		{"temporal_workflow_completed", map[string]string{"workflow_type": "MetricsProbe"}, 2},
		{"temporal_workflow_failed", map[string]string{"workflow_type": "MetricsProbe"}, 1},
	}
	// The worker counts a workflow's end as it reports it to the server, so a caller
	// waiting on the run may see the end a moment before the count: scrape until the
	// counts are there (or the bound passes).
	var after harness.Metrics
	var wrong []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after, wrong = scrape(t, reg), nil
		for _, tc := range wants {
			if got := after.Sum(tc.name, tc.labels); got != tc.want {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
	if got := after.Sum("temporal_request", nil); got <= 0 {
		t.Errorf("temporal_request did not move: %v", got)
	}
	// Sticky queues (host:uuid) fold into one label value.
	for _, m := range after["temporal_workflow_task_execution_latency_seconds"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "task_queue" && l.GetValue() != q && l.GetValue() != "sticky" && l.GetValue() != "" {
				t.Errorf("unbounded task_queue label %q", l.GetValue())
			}
		}
	}
}
