// Package metrics is the Prometheus side of every clusterducks process: one registry per
// process (never the global one) with build info and the Go runtime and process
// collectors, its /metrics handler, the Temporal SDK's own metrics adapted to it
// (temporal_*), and our workflow outcomes and durations. Our names start with
// clusterducks_; every label has a bounded set of values (never a MAC, a user or an id
// that grows with use). It imports no panel or agent package, so both link it.
package metrics

import (
	"net/http"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// Namespace prefixes every metric of ours.
const Namespace = "clusterducks"

// Registry is a process's metrics.
type Registry struct {
	*prometheus.Registry
	sdk       *sdkHandler
	workflows *workflowMetrics
}

// New returns the registry of one process; role is "panel", "agent" or "tunnel"; version
// is the release ("" for the module version the binary was built as).
func New(role, version string) *Registry {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; its labels say which build and role this process runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": rev, "role": role, "goversion": runtime.Version()},
	})
	info.Set(1)
	reg.MustRegister(info)
	return &Registry{Registry: reg, sdk: newSDKHandler(reg), workflows: newWorkflowMetrics(reg)}
}

// Handler serves the registry in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{Registry: r.Registry})
}

// ClientOptions makes a Temporal client (and the workers made from it) report here: the
// SDK's metrics and our workflow outcome interceptor. A nil registry changes nothing.
func (r *Registry) ClientOptions(o *client.Options) {
	if r == nil {
		return
	}
	o.MetricsHandler = r.sdk
	o.Interceptors = append(o.Interceptors, &workflowInterceptor{m: r.workflows})
}
