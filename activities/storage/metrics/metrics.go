// Package metrics holds an agent's own metrics: its iSCSI target (sessions and bytes per
// target, read from the target's atomic counters at scrape time, so the data path pays
// nothing more), its boot endpoint (requests by result, their latency, boots in
// progress) and replication to each slave. Mount Agent.Registry's handler on the agent
// API (or the boot listener).
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	cdmetrics "github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/prometheus/client_golang/prometheus"
)

const ns = cdmetrics.Namespace

// Agent is one agent's metrics, registered on its process registry.
type Agent struct {
	Registry    *cdmetrics.Registry
	Boot        *Boot
	Replication *Replication
	Tunnel      *Tunnel

	mu     sync.Mutex
	target iscsiStats       // nil until the boot path starts its target
	boot   func() BootState // nil until the boot path starts
}

// iscsiStats is what the collector reads: *iscsi.Server.
type iscsiStats interface {
	Stats() []iscsi.TargetStats
	ConnectionCount() int
}

// NewAgent registers the agent's metrics on reg.
func NewAgent(reg *cdmetrics.Registry) *Agent {
	a := &Agent{Registry: reg, Boot: newBoot(reg), Replication: NewReplication(reg), Tunnel: newTunnel(reg)}
	reg.MustRegister(&iscsiCollector{a: a})
	return a
}

// WatchTarget makes the iSCSI metrics read target (the agent's one iSCSI server).
func (a *Agent) WatchTarget(target iscsiStats) {
	a.mu.Lock()
	a.target = target
	a.mu.Unlock()
}

var (
	descSessions = prometheus.NewDesc(ns+"_iscsi_sessions", "Logged-in iSCSI sessions, by target IQN.", []string{"target"}, nil)
	descLogins   = prometheus.NewDesc(ns+"_iscsi_logins_total", "Successful iSCSI logins, by target IQN.", []string{"target"}, nil)
	descLoginErr = prometheus.NewDesc(ns+"_iscsi_login_failures_total", "Refused iSCSI logins, by target IQN.", []string{"target"}, nil)
	descCommands = prometheus.NewDesc(ns+"_iscsi_commands_total", "SCSI commands served, by target IQN.", []string{"target"}, nil)
	descErrors   = prometheus.NewDesc(ns+"_iscsi_command_errors_total", "SCSI commands that ended with a status other than GOOD, by target IQN.", []string{"target"}, nil)
	descRead     = prometheus.NewDesc(ns+"_iscsi_read_bytes_total", "Bytes sent to initiators from the target's LUNs, by target IQN.", []string{"target"}, nil)
	descWritten  = prometheus.NewDesc(ns+"_iscsi_written_bytes_total", "Bytes written to the target's LUNs, by target IQN.", []string{"target"}, nil)
	descConns    = prometheus.NewDesc(ns+"_iscsi_connections", "Open TCP connections to the iSCSI target (logged in or not).", nil, nil)
)

// iscsiCollector turns the target's counters into metrics at scrape time. Targets are
// the exported disks (devices, group heads, volumes): bounded by the inventory.
type iscsiCollector struct{ a *Agent }

func (c *iscsiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descLogins, descLoginErr, descCommands, descErrors, descRead, descWritten, descConns} {
		ch <- d
	}
}

func (c *iscsiCollector) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	t := c.a.target
	c.a.mu.Unlock()
	if t == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(t.ConnectionCount()))
	for _, st := range t.Stats() {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Sessions), st.IQN)
		ch <- prometheus.MustNewConstMetric(descLogins, prometheus.CounterValue, float64(st.Logins), st.IQN)
		ch <- prometheus.MustNewConstMetric(descLoginErr, prometheus.CounterValue, float64(st.LoginFailures), st.IQN)
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(st.Commands), st.IQN)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.Errors), st.IQN)
		ch <- prometheus.MustNewConstMetric(descRead, prometheus.CounterValue, float64(st.BytesRead), st.IQN)
		ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(st.BytesWritten), st.IQN)
	}
}

// Boot counts the boot endpoint's answers; it is the boot service's Observer.
type Boot struct {
	answered   atomic.Int64 // every result together, for the stats report
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	inProgress prometheus.Gauge
	results    *prometheus.CounterVec
	timeToUp   prometheus.Histogram
}

func newBoot(reg prometheus.Registerer) *Boot {
	b := &Boot{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "boot_requests_total",
			Help: "Boot requests answered, by the kind of script sent (sanboot, redirect, retry, reboot, menu, chain)."}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "boot_request_duration_seconds",
			Help:    "Time to answer a boot request, by result (a provisioning waits up to its wait bound).",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, []string{"result"}),
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "boots_in_progress",
			Help: "Boot requests being answered now (a provisioning one can take seconds)."}),
	}
	b.results = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "boot_results_total",
		Help: "Boots served a sanboot script and watched to their end, by result (up, failed, unknown)."}, []string{"result"})
	b.timeToUp = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "boot_time_to_up_seconds",
		Help:    "Time from the sanboot script to up (the check-in, or the bound passed with the session up and reading).",
		Buckets: []float64{5, 10, 20, 30, 45, 60, 75, 90, 120, 180, 300, 600}})
	reg.MustRegister(b.requests, b.latency, b.inProgress, b.results, b.timeToUp)
	return b
}

// BootStarted is called when a device's boot request arrives.
func (b *Boot) BootStarted() { b.inProgress.Inc() }

// BootDone is called when the request was answered with a script of kind result.
func (b *Boot) BootDone(result string, d time.Duration) {
	b.inProgress.Dec()
	b.answered.Add(1)
	b.requests.WithLabelValues(result).Inc()
	b.latency.WithLabelValues(result).Observe(d.Seconds())
}

// BootResult is called when a watched boot is decided; up is its time to up (result up).
func (b *Boot) BootResult(result string, up time.Duration) {
	b.results.WithLabelValues(result).Inc()
	if result == "up" {
		b.timeToUp.Observe(up.Seconds())
	}
}

// Replication is what the replication work updates, per slave server (label "slave", the
// slave's server id: bounded by the network's servers).
type Replication struct {
	// Bytes counts stream bytes sent to the slave.
	Bytes *prometheus.CounterVec
	// Remaining is the estimated size still to send in the running replication (0 when idle).
	Remaining *prometheus.GaugeVec
	// LastSuccess is the Unix time of the slave's last complete replication.
	LastSuccess *prometheus.GaugeVec

	sent atomic.Int64 // every slave together, for the stats report
}

// Tunnel is the agent's session with its network's tunnel (the panel's only way to it).
type Tunnel struct {
	// Up is 1 while the agent has a session with its tunnel.
	Up prometheus.Gauge
	// Sessions counts the sessions established (a restart of the tunnel, a move or a
	// flapping link shows as a rising count).
	Sessions prometheus.Counter
	// PanelConns counts the agent's connections to the panel by the way they went: through
	// the tunnel's session ("tunnel") or straight ("direct", while no session is up).
	PanelConns *prometheus.CounterVec
}

func newTunnel(reg prometheus.Registerer) *Tunnel {
	t := &Tunnel{
		Up: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "tunnel_session_up",
			Help: "1 while the agent has a session with its network's tunnel, else 0."}),
		Sessions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_sessions_total",
			Help: "Sessions the agent established with its network's tunnel."}),
		PanelConns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_panel_connections_total",
			Help: "Connections of the agent's boot view to the panel, by way: through the tunnel or direct."}, []string{"via"}),
	}
	reg.MustRegister(t.Up, t.Sessions, t.PanelConns)
	return t
}

// NewReplication declares the replication metrics on reg.
func NewReplication(reg prometheus.Registerer) *Replication {
	r := &Replication{
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "replication_sent_bytes_total",
			Help: "Replication stream bytes sent to each slave."}, []string{"slave"}),
		Remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "replication_remaining_bytes",
			Help: "Estimated bytes left in each slave's running replication (0 when idle)."}, []string{"slave"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "replication_last_success_timestamp_seconds",
			Help: "Unix time of each slave's last complete replication."}, []string{"slave"}),
	}
	reg.MustRegister(r.Bytes, r.Remaining, r.LastSuccess)
	return r
}

// Sent counts n stream bytes sent to slave (storage.ReplicationMetrics).
func (r *Replication) Sent(slave uint, n int64) {
	r.sent.Add(n)
	r.Bytes.WithLabelValues(Slave(slave)).Add(float64(n))
}

// AddRemaining moves slave's estimate of bytes left by delta (a stream's size when it
// starts, minus what it sends).
func (r *Replication) AddRemaining(slave uint, delta int64) {
	r.Remaining.WithLabelValues(Slave(slave)).Add(float64(delta))
}

// Succeeded records that slave acknowledged a complete replication now.
func (r *Replication) Succeeded(slave uint) {
	r.LastSuccess.WithLabelValues(Slave(slave)).SetToCurrentTime()
}

// Slave is the label value of a slave server.
func Slave(serverID uint) string { return strconv.FormatUint(uint64(serverID), 10) }

// Totals are the figures of the agent's stats report (the panel keeps them as samples
// for the server's charts): counters since the agent started, and sessions now.
type Totals struct {
	ISCSISessions    int64
	BootRequests     int64
	ReplicationBytes int64
}

// Totals reads the agent's counters; the iSCSI sessions are 0 until its target runs.
func (a *Agent) Totals() Totals {
	a.mu.Lock()
	t := a.target
	a.mu.Unlock()
	out := Totals{BootRequests: a.Boot.answered.Load(), ReplicationBytes: a.Replication.sent.Load()}
	if t != nil {
		for _, st := range t.Stats() {
			out.ISCSISessions += int64(st.Sessions)
		}
	}
	return out
}

// BootState is the boot path's admission control and view, read at scrape time.
type BootState struct {
	Provisions, MaxProvisions int
	Logins, MaxLogins         int
	Refused                   uint64
	ReportsWaiting            int
	ViewRevision              uint64
	ViewDevices               int
	ViewAge, ViewLease        time.Duration
	ViewFullLoads, ViewDeltas uint64
	ViewFailures              uint64
	ViewAnswered, ViewPassed  uint64
}

// WatchBoot makes the boot metrics read state (the agent's boot service and view).
func (a *Agent) WatchBoot(state func() BootState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.boot == nil {
		a.Registry.MustRegister(&bootCollector{a: a})
	}
	a.boot = state
}

var (
	descProvisions    = prometheus.NewDesc(ns+"_boot_provisions", "Provisionings (new disks) running now.", nil, nil)
	descMaxProvisions = prometheus.NewDesc(ns+"_boot_provisions_max", "Admission bound on provisionings at once.", nil, nil)
	descBootLogins    = prometheus.NewDesc(ns+"_boot_logins_pending", "Devices told to sanboot whose iSCSI login has not come yet.", nil, nil)
	descMaxLogins     = prometheus.NewDesc(ns+"_boot_logins_max", "Admission bound on devices in their iSCSI login phase.", nil, nil)
	descRefused       = prometheus.NewDesc(ns+"_boot_admission_retries_total", "Boot requests told to come back later by admission control.", nil, nil)
	descReports       = prometheus.NewDesc(ns+"_boot_reports_waiting", "Boot reports the panel has not taken yet.", nil, nil)
	descViewRev       = prometheus.NewDesc(ns+"_bootview_revision", "Revision of the agent's view of its network's boot state.", nil, nil)
	descViewDevices   = prometheus.NewDesc(ns+"_bootview_devices", "Devices in the agent's view.", nil, nil)
	descViewAge       = prometheus.NewDesc(ns+"_bootview_age_seconds", "Time since the panel last confirmed the view.", nil, nil)
	descViewLease     = prometheus.NewDesc(ns+"_bootview_lease_seconds", "How long strict groups boot from an unconfirmed view.", nil, nil)
	descViewFull      = prometheus.NewDesc(ns+"_bootview_full_loads_total", "Full snapshots of the view received from the panel.", nil, nil)
	descViewDeltas    = prometheus.NewDesc(ns+"_bootview_deltas_total", "Changes received from the panel's watch.", nil, nil)
	descViewFailures  = prometheus.NewDesc(ns+"_bootview_watch_failures_total", "Watches of the panel that failed.", nil, nil)
	descViewAnswered  = prometheus.NewDesc(ns+"_bootview_answers_total", "Boot queries answered from the view, by where: view or panel.", []string{"from"}, nil)
)

type bootCollector struct{ a *Agent }

func (c *bootCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProvisions, descMaxProvisions, descBootLogins, descMaxLogins, descRefused, descReports, descViewRev,
		descViewDevices, descViewAge, descViewLease, descViewFull, descViewDeltas, descViewFailures, descViewAnswered} {
		ch <- d
	}
}

func (c *bootCollector) Collect(ch chan<- prometheus.Metric) {
	c.a.mu.Lock()
	f := c.a.boot
	c.a.mu.Unlock()
	if f == nil {
		return
	}
	s := f()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	g(descProvisions, float64(s.Provisions))
	g(descMaxProvisions, float64(s.MaxProvisions))
	g(descBootLogins, float64(s.Logins))
	g(descMaxLogins, float64(s.MaxLogins))
	n(descRefused, s.Refused)
	g(descReports, float64(s.ReportsWaiting))
	g(descViewRev, float64(s.ViewRevision))
	g(descViewDevices, float64(s.ViewDevices))
	g(descViewAge, s.ViewAge.Seconds())
	g(descViewLease, s.ViewLease.Seconds())
	n(descViewFull, s.ViewFullLoads)
	n(descViewDeltas, s.ViewDeltas)
	n(descViewFailures, s.ViewFailures)
	ch <- prometheus.MustNewConstMetric(descViewAnswered, prometheus.CounterValue, float64(s.ViewAnswered), "view")
	ch <- prometheus.MustNewConstMetric(descViewAnswered, prometheus.CounterValue, float64(s.ViewPassed), "panel")
}
