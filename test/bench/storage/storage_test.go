// Package storage benchmarks the storage operations end to end (API → Temporal →
// panel worker → agent in a storage lab VM → zfs) against the bare zfs commands in the
// same guest, and a burst of concurrent group publishes.
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./test/bench/storage/
package storage

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	storagetest "github.com/clusterducks/clusterducks/test/storage"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

const samples = 8

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkStorage reports, for volume create and group publish, the median end-to-end
// time through the API next to the median time of the bare zfs command in the guest and
// their ratio (the orchestration overhead); then 50 concurrent publishes across 5 groups.
//
// The bare commands are the agent's own, on datasets at the same depth as the agent's:
// <pool>/benchbare/volumes/… and <pool>/benchbare/groups/… beside <pool>/iscsi/volumes/…
// and <pool>/iscsi/groups/…. A zvol one level nearer the pool is made faster in the lab
// guest (a median of 11 ms over the runs of 2026-12-03, 0–33 ms a run; guestCosts logs it
// each run), which the bare side was given until that day.
func BenchmarkStorage(b *testing.B) {
	e := storagetest.Start(b)
	// The agent runs as a server's does, without debug logging: its --log-zfs lines (each
	// zfs command and each activity with its duration) are written to the lab's shared
	// folder, a few hundred microseconds of the guest's each, on the path of every sample.
	// STORAGE_BENCH_AGENT_LOG=1 turns them on for the timelines.
	if os.Getenv("STORAGE_BENCH_AGENT_LOG") != "" {
		e.AgentFlags = []string{"--log-zfs"}
	}
	tc := harness.TemporalClient(b)
	nid, _ := e.Network("bench", 1)
	pool := e.VM.Pool
	guestCosts(b, e)
	// The agent runs zfs as a server does, unless CD_BENCH_SHIM is set: then through the
	// harness's fault-injection shim (a shell in front of each of its zfs commands, for
	// the tests that slow a step; guestCosts logs its price).
	if os.Getenv("CD_BENCH_SHIM") != "" {
		e.Shim(e.VM)
		b.Log("the agent runs zfs through the harness shim (CD_BENCH_SHIM set)")
	} else {
		b.Log("the agent runs the real zfs (CD_BENCH_SHIM unset)")
	}
	// Each sample starts from a quiet guest: a zvol made or cloned by the sample before
	// (by the agent or by hand) has udev work to finish (its /dev/zvol links) on the same
	// two emulated CPUs, which would be charged to whatever runs next.
	settle := func() { e.Guest("udevadm", "settle", "--timeout=30") }
	// The bare side's layout, made ahead as the agent's is at bootstrap.
	e.Guest("zfs", "create", "-p", pool+"/benchbare/volumes")
	e.Guest("zfs", "create", "-p", pool+"/benchbare/groups")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Volume create: API (202 → operation succeeded) vs `zfs create -s -V 1G`.
		var api, bare []time.Duration
		var volID uint
		for k := 0; k < samples; k++ {
			settle()
			start := time.Now()
			v := e.Must(http.StatusAccepted, "POST", "/volumes.json", map[string]any{"network": nid, "Alias": fmt.Sprintf("bench %d-%d", i, k), "vol_size": 1})
			accepted := time.Now()
			op := e.WaitOK(storagetest.OpID(v))
			api = append(api, took(start, op))
			timeline(b, tc, "volume-create", start, accepted, op)
			b.Log(e.AgentTimeline(e.VM))
			volID = storagetest.ID(v, "id")
			settle()
			bare = append(bare, time.Duration(e.GuestNanos(fmt.Sprintf("zfs create -p -s -V 1073741824 %s/benchbare/volumes/v%d-%d", pool, i, k))))
		}
		report(b, "volume-create", api, bare)

		// Group create: API vs `zfs snapshot` of the volume and `zfs clone` of it.
		api, bare = nil, nil
		for k := 0; k < samples; k++ {
			settle()
			start := time.Now()
			g := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": nid, "Name": fmt.Sprintf("bench clone %d-%d", i, k), "VolumeID": volID})
			accepted := time.Now()
			op := e.WaitOK(storagetest.OpID(g))
			api = append(api, took(start, op))
			timeline(b, tc, "group-create", start, accepted, op)
			b.Log(e.AgentTimeline(e.VM))
			settle()
			bare = append(bare, time.Duration(e.GuestNanos(fmt.Sprintf("zfs snapshot %[1]s/benchbare/volumes/v%[2]d-0@g%[3]d && zfs clone -p %[1]s/benchbare/volumes/v%[2]d-0@g%[3]d %[1]s/benchbare/groups/g%[2]d-clone%[3]d", pool, i, k))))
		}
		report(b, "group-create", api, bare)

		// Group publish: API vs `zfs snapshot`.
		g := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": nid, "Name": fmt.Sprintf("bench %d", i), "VolumeID": volID})
		e.WaitOK(storagetest.OpID(g))
		gid := storagetest.ID(g, "id")
		e.Guest("zfs", "create", "-p", "-s", "-V", "1073741824", fmt.Sprintf("%s/benchbare/groups/g%d", pool, i))
		api, bare = nil, nil
		for k := 0; k < samples; k++ {
			settle()
			start := time.Now()
			p := e.Must(http.StatusAccepted, "POST", fmt.Sprintf("/groups/%d/publish.json", gid), nil)
			accepted := time.Now()
			op := e.WaitOK(storagetest.OpID(p))
			api = append(api, took(start, op))
			timeline(b, tc, "group-publish", start, accepted, op)
			b.Log(e.AgentTimeline(e.VM))
			settle()
			bare = append(bare, time.Duration(e.GuestNanos(fmt.Sprintf("zfs snapshot %s/benchbare/groups/g%d@v%d", pool, i, k+1))))
		}
		report(b, "group-publish", api, bare)
		if i == 0 {
			traceOps(b, e, nid, volID, gid)
		}

		// 50 concurrent publishes across 5 groups.
		var groups []uint
		for k := 0; k < 5; k++ {
			g := e.Must(http.StatusAccepted, "POST", "/groups.json", map[string]any{"network": nid, "Name": fmt.Sprintf("burst %d-%d", i, k), "VolumeID": volID})
			e.WaitOK(storagetest.OpID(g))
			groups = append(groups, storagetest.ID(g, "id"))
		}
		settle()
		start := time.Now()
		var wg sync.WaitGroup
		ops := make([]uint, 50)
		for k := range ops {
			wg.Go(func() {
				status, p := e.Call("POST", fmt.Sprintf("/groups/%d/publish.json", groups[k%5]), nil)
				if status != http.StatusAccepted {
					b.Errorf("publish %d: %d %v", k, status, p)
					return
				}
				ops[k] = storagetest.OpID(p)
			})
		}
		wg.Wait()
		accepted := time.Since(start)
		var total time.Duration
		for _, id := range ops {
			if id != 0 {
				total = max(total, took(start, e.WaitOK(id)))
			}
		}
		for _, gid := range groups {
			var vs []models.GroupVersion
			e.DB.Where("group_id = ? AND state = ? AND guid <> ''", gid, models.StateReady).Order("number").Find(&vs)
			if len(vs) != 10 || vs[0].Number != 1 || vs[9].Number != 10 {
				b.Errorf("group %d: %d ready versions with guids, want v1..v10", gid, len(vs))
			}
		}
		// The same burst as bare commands: 50 snapshots started at once in the guest.
		for k := 0; k < 5; k++ {
			e.Guest("zfs", "create", "-p", "-s", "-V", "1073741824", fmt.Sprintf("%s/benchbare/groups/burst%d-%d", pool, i, k))
		}
		settle()
		bareBurst := time.Duration(e.GuestNanos(fmt.Sprintf(
			`for k in $(seq 0 49); do zfs snapshot %s/benchbare/groups/burst%d-$((k %% 5))@b$k & done; wait`, pool, i)))
		b.ReportMetric(total.Seconds(), "burst50-s")
		b.ReportMetric(50/total.Seconds(), "burst50-publish/s")
		b.ReportMetric(bareBurst.Seconds(), "burst50-zfs-s")
		b.ReportMetric(total.Seconds()/bareBurst.Seconds(), "burst50-ratio")
		b.Logf("50 concurrent publishes across 5 groups: all accepted in %s, all done in %s (%.1f publishes/s); the same 50 bare zfs snapshots at once in the guest: %s (ratio %.1f)",
			accepted.Round(time.Millisecond), total.Round(time.Millisecond), 50/total.Seconds(), bareBurst.Round(time.Millisecond), total.Seconds()/bareBurst.Seconds())
	}
}

// took is the time from start to the operation's end as the panel recorded it, so the
// benchmark's own polling does not count.
func took(start time.Time, op models.Operation) time.Duration {
	if op.FinishedAt == nil {
		return time.Since(start)
	}
	return op.FinishedAt.Sub(start)
}

func report(b *testing.B, name string, api, bare []time.Duration) {
	for k := range api {
		b.Logf("%s sample %d: API %s, bare %s", name, k, api[k].Round(time.Millisecond), bare[k].Round(time.Millisecond))
	}
	ma, mb := median(api), median(bare)
	ratio := float64(ma) / float64(mb)
	b.ReportMetric(ma.Seconds()*1000, name+"-api-ms")
	b.ReportMetric(mb.Seconds()*1000, name+"-zfs-ms")
	b.ReportMetric(ratio, name+"-ratio")
	b.Logf("%s: API end to end median %s (min %s, max %s) vs bare zfs in the guest median %s: ratio %.1f",
		name, ma.Round(time.Millisecond), minOf(api).Round(time.Millisecond), maxOf(api).Round(time.Millisecond), mb.Round(time.Millisecond), ratio)
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}
