package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// sdkLabels are the Temporal SDK tags kept as labels; the others (client name and
// version, nexus names) are constant or unbounded here and are dropped. Every SDK metric
// carries all of them (empty when the SDK did not set one): a Prometheus metric needs one
// label set.
var sdkLabels = []string{"namespace", "task_queue", "workflow_type", "activity_type", "operation",
	"worker_type", "poller_type", "failure_reason", "cause"}

// sdkVecs holds the SDK's metrics, made on first use under their SDK names (which start
// with temporal_). Shared by every handler derived with WithTags.
type sdkVecs struct {
	reg        prometheus.Registerer
	mu         sync.Mutex
	counters   map[string]*prometheus.CounterVec
	gauges     map[string]*prometheus.GaugeVec
	histograms map[string]*prometheus.HistogramVec
}

// sdkHandler adapts the SDK's client.MetricsHandler to a Prometheus registry.
type sdkHandler struct {
	vecs   *sdkVecs
	labels prometheus.Labels
}

var _ client.MetricsHandler = (*sdkHandler)(nil)

func newSDKHandler(reg prometheus.Registerer) *sdkHandler {
	labels := prometheus.Labels{}
	for _, l := range sdkLabels {
		labels[l] = ""
	}
	return &sdkHandler{vecs: &sdkVecs{reg: reg, counters: map[string]*prometheus.CounterVec{},
		gauges: map[string]*prometheus.GaugeVec{}, histograms: map[string]*prometheus.HistogramVec{}}, labels: labels}
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	labels := make(prometheus.Labels, len(h.labels))
	for k, v := range h.labels {
		labels[k] = v
	}
	for k, v := range tags {
		if _, keep := labels[k]; !keep {
			continue
		}
		// A sticky queue is named after a host and a random id: one label value for all.
		if k == "task_queue" && strings.Contains(v, ":") {
			v = "sticky"
		}
		labels[k] = v
	}
	return &sdkHandler{vecs: h.vecs, labels: labels}
}

// sdkName makes an SDK metric name a valid Prometheus one (they already are, but a
// future SDK name with a dot must not panic the worker).
func sdkName(name string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(name)
}

// vec returns the collector registered for an SDK name, made and registered by mk on
// first use; false when the name clashes with one already registered.
func vec[V prometheus.Collector](v *sdkVecs, m map[string]V, name string, mk func(name string) V) (V, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := m[name]
	if !ok {
		c = mk(sdkName(name))
		if err := v.reg.Register(c); err != nil {
			return c, false
		}
		m[name] = c
	}
	return c, true
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	c, ok := vec(h.vecs, h.vecs.counters, name, func(n string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: n, Help: "Temporal SDK counter " + name + "."}, sdkLabels)
	})
	if !ok {
		return nopMetric{}
	}
	return counter{c.With(h.labels)}
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	g, ok := vec(h.vecs, h.vecs.gauges, name, func(n string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: "Temporal SDK gauge " + name + "."}, sdkLabels)
	})
	if !ok {
		return nopMetric{}
	}
	return gauge{g.With(h.labels)}
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	hv, ok := vec(h.vecs, h.vecs.histograms, name, func(n string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n + "_seconds",
			Help: "Temporal SDK timer " + name + ".", Buckets: durationBuckets}, sdkLabels)
	})
	if !ok {
		return nopMetric{}
	}
	return timer{hv.With(h.labels)}
}

// durationBuckets span a fast activity to a long replication, in seconds.
var durationBuckets = []float64{0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 60, 300, 1800, 7200}

type counter struct{ c prometheus.Counter }

func (c counter) Inc(n int64) {
	if n > 0 {
		c.c.Add(float64(n))
	}
}

type gauge struct{ g prometheus.Gauge }

func (g gauge) Update(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

func (t timer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }

// nopMetric stands in for a metric whose name clashed with one already registered.
type nopMetric struct{}

func (nopMetric) Inc(int64)            {}
func (nopMetric) Update(float64)       {}
func (nopMetric) Record(time.Duration) {}

// workflowMetrics are the outcomes and durations of the workflows this process's workers
// run, by workflow type (a bounded set: the types registered in workflows/).
type workflowMetrics struct {
	outcomes *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newWorkflowMetrics(reg prometheus.Registerer) *workflowMetrics {
	m := &workflowMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "workflow_outcomes_total",
			Help: "Workflow executions finished on this worker, by type and outcome (completed, failed, continued)."},
			[]string{"workflow_type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "workflow_duration_seconds",
			Help: "From a workflow's start to its end, by type and outcome.", Buckets: durationBuckets},
			[]string{"workflow_type", "outcome"}),
	}
	reg.MustRegister(m.outcomes, m.duration)
	return m
}

// workflowInterceptor records each workflow's outcome when its code returns. As a client
// interceptor it reaches every worker made from the client.
type workflowInterceptor struct {
	interceptor.InterceptorBase
	m *workflowMetrics
}

func (i *workflowInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, m: i.m}
}

type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	m *workflowMetrics
}

func (w *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	out, err := w.Next.ExecuteWorkflow(ctx, in)
	// A replayed end was counted when it first ran; workflow.Now is replay-safe.
	if workflow.IsReplaying(ctx) {
		return out, err
	}
	info := workflow.GetInfo(ctx)
	outcome := "completed"
	switch {
	case workflow.IsContinueAsNewError(err):
		outcome = "continued"
	case err != nil:
		outcome = "failed"
	}
	t := info.WorkflowType.Name
	w.m.outcomes.WithLabelValues(t, outcome).Inc()
	w.m.duration.WithLabelValues(t, outcome).Observe(workflow.Now(ctx).Sub(info.WorkflowStartTime).Seconds())
	return out, err
}
