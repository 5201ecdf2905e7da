package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	dto "github.com/prometheus/client_model/go"
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
func scrape(t *testing.T, r *metrics.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the counter (or histogram count) of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	var sum float64
	found := false
next:
	for _, m := range f.Metric {
		for k, v := range want {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return sum
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
	if value(before, "clusterducks_build_info", map[string]string{"role": "panel", "version": "test"}) != 1 {
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
	after := scrape(t, reg)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"clusterducks_workflow_outcomes_total", map[string]string{"workflow_type": "MetricsProbe", "outcome": "completed"}, 2},
		{"clusterducks_workflow_outcomes_total", map[string]string{"workflow_type": "MetricsProbe", "outcome": "failed"}, 1},
		{"clusterducks_workflow_duration_seconds", map[string]string{"workflow_type": "MetricsProbe"}, 3},
		{"temporal_workflow_completed", map[string]string{"workflow_type": "MetricsProbe"}, 2},
		{"temporal_workflow_failed", map[string]string{"workflow_type": "MetricsProbe"}, 1},
	} {
		if got := value(after, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := value(after, "temporal_request", nil); got <= 0 {
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
