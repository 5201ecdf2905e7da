package replication

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
	"github.com/clusterducks/clusterducks/test/replication"
	"github.com/clusterducks/clusterducks/workflows"
)

// BenchmarkFullSendProfile shows where a full send's time goes inside the two guests: it
// replicates fullMiB twice to one slave, samples top in both guests meanwhile, and takes a
// 15 s CPU profile of both agents (--debug-listen), written to REPL_PROFILE_DIR (default a
// temporary directory; read them with `go tool pprof -top`). Raw zfs send | zfs receive of
// the same snapshot follows each, with top again. A diagnosis, not a figure to compare.
func BenchmarkFullSendProfile(b *testing.B) {
	dir := os.Getenv("REPL_PROFILE_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	const debug = "127.0.0.1:6060"
	r := replication.StartRig(b, 1, "--log-zfs", "--debug-listen", debug)
	r.PauseReconcile(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range 2 {
			vid, gid := r.Volume(fmt.Sprintf("profile-%d-%d", i, k), fullMiB)
			snap := fmt.Sprintf("%s/iscsi/volumes/%d@group-%d", r.Master.Pool, vid, gid)
			r.E.AgentTimeline(r.Master)
			r.E.AgentTimeline(r.Slaves[0])
			tm, ts := top(r.Master, 24), top(r.Slaves[0], 24)
			pm := profile(r.Master, debug, filepath.Join(dir, fmt.Sprintf("master-%d-%d.pprof", i, k)))
			ps := profile(r.Slaves[0], debug, filepath.Join(dir, fmt.Sprintf("slave-%d-%d.pprof", i, k)))
			start := time.Now()
			if _, err := r.Replicate(b, 0, workflows.ReplicateVolume, vid, fmt.Sprintf("group-%d", gid))(); err != nil {
				b.Fatal(err)
			}
			b.Logf("replication of %s: %s", snap, time.Since(start))
			b.Logf("profiles: %s; %s", pm(), ps())
			b.Logf("master top:\n%s\nslave top:\n%s", tm(), ts())
			b.Log(r.E.AgentTimeline(r.Master))
			b.Log(r.E.AgentTimeline(r.Slaves[0]))
			tm, ts = top(r.Master, 12), top(r.Slaves[0], 12)
			took := raw(b, r, r.Slaves[0], fmt.Sprintf("%s/rawprofile-%d-%d", r.Slaves[0].Pool, i, k), snap)
			b.Logf("raw zfs send | zfs receive: %s", took)
			b.Logf("master top:\n%s\nslave top:\n%s", tm(), ts())
		}
	}
}

// BenchmarkProbeBesideAgents sends the same snapshot of a product volume three ways in
// the replication rig, the agents running: the product's replication, raw zfs send | zfs
// receive, and the kernel-TLS probe splicing zfs send's pipe as the master's agent does
// (both through the host relay). It tells whether a full send's time beyond the probe's
// in BenchmarkKernelTLSInGuests is the product's path or the rig around it.
func BenchmarkProbeBesideAgents(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	probe := buildProbe(ctx, b, "ktlsprobe")
	r := replication.StartRig(b, 1, "--log-zfs")
	r.PauseReconcile(b)
	m, s := r.Master, r.Slaves[0]
	for _, vm := range []*lab.Server{m, s} {
		if err := os.WriteFile(filepath.Join(vm.Share, "ktlsprobe"), probe, 0o755); err != nil {
			b.Fatal(err)
		}
		if out, err := vm.Exec(ctx, "sh", "-c", "cp /mnt/host/ktlsprobe /usr/local/bin/ && modprobe tls"); err != nil {
			b.Fatalf("%v %s", err, out)
		}
	}
	b.Logf("load: %s", loadAverage())
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		for k := range samples {
			vid, gid := r.Volume(fmt.Sprintf("beside-%d-%d", i, k), fullMiB)
			snap := fmt.Sprintf("%s/iscsi/volumes/%d@group-%d", m.Pool, vid, gid)
			start := time.Now()
			if _, err := r.Replicate(b, 0, workflows.ReplicateVolume, vid, fmt.Sprintf("group-%d", gid))(); err != nil {
				b.Fatal(err)
			}
			times["product"] = append(times["product"], time.Since(start))
			times["raw"] = append(times["raw"], raw(b, r, s, fmt.Sprintf("%s/raw-%d-%d", s.Pool, i, k), snap))

			took, recvOut := throughRelay(b, "probe",
				func(port int) (string, error) {
					return s.Exec(ctx, "bash", "-c", fmt.Sprintf("ktlsprobe -role client -addr %s:%d -- zfs receive -F -u %s/probe-%d-%d", lab.GuestHostIP, port, s.Pool, i, k))
				},
				func(port int) (string, error) {
					return m.Exec(ctx, "bash", "-c", fmt.Sprintf("ktlsprobe -role server -splice plain -addr %s:%d -- zfs send -c %s 2>&1", lab.GuestHostIP, port, snap))
				})
			times["probe"] = append(times["probe"], took)
			b.Logf("sample %d: product %s, raw %s, probe %s (%s)", k, times["product"][k], times["raw"][k], times["probe"][k], strings.TrimSpace(recvOut))
		}
	}
	for _, mode := range []string{"product", "raw", "probe"} {
		md := median(times[mode])
		b.Logf("%-8s median %s (%.2f× raw time) samples %v", mode, md, md.Seconds()/median(times["raw"]).Seconds(), times[mode])
	}
	b.Logf("load: %s", loadAverage())
}

// top samples the guest's busiest processes every 3 s for secs seconds (in the
// background; the returned func waits for the samples).
func top(vm *lab.Server, secs int) func() string {
	var out string
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
		defer cancel()
		o, err := vm.Exec(ctx, "sh", "-c", fmt.Sprintf("top -b -d 3 -n %d -w 180 | grep -E '^top|^%%Cpu|^ *[0-9]+ .* (R|S|D) ' | grep -vE ' 0[.][0-9] +[0-9.]+ +[0-9:.]+ '", secs/3))
		if err != nil {
			o += err.Error()
		}
		out = o
	})
	return func() string { wg.Wait(); return out }
}

// profile takes a 15 s CPU profile of the guest's agent, 3 s from now, into path on the host.
func profile(vm *lab.Server, debug, path string) func() string {
	var out string
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		time.Sleep(3 * time.Second)
		name := filepath.Base(path)
		py := fmt.Sprintf("import urllib.request,shutil;shutil.copyfileobj(urllib.request.urlopen('http://%s/debug/pprof/profile?seconds=15',timeout=40),open('/mnt/host/%s','wb'))", debug, name)
		if o, err := vm.Exec(ctx, "python3", "-c", py); err != nil {
			out = fmt.Sprintf("%s: %v %s", name, err, o)
			return
		}
		data, err := os.ReadFile(filepath.Join(vm.Share, name))
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		out = fmt.Sprintf("%s (%v)", path, err)
	})
	return func() string { wg.Wait(); return out }
}
