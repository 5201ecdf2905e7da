// Package replication benchmarks replication between storage-lab VMs against the raw
// `zfs send | zfs receive` over the same path (guest → host loopback → guest) in the same
// run, and the fan-out of one volume to two slaves. It prints figures; nothing is timed
// against a bound.
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 90m ./test/bench/replication/
package replication

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	"github.com/clusterducks/clusterducks/test/replication"
	"github.com/clusterducks/clusterducks/workflows"
)

func TestMain(m *testing.M) { harness.MainPostgresTemporal(m) }

// samples and fullMiB default to 3 runs of 128 MiB; REPL_BENCH_SAMPLES and
// REPL_BENCH_MIB make a quicker run on a loaded machine.
var (
	samples = envInt("REPL_BENCH_SAMPLES", 3)
	fullMiB = envInt("REPL_BENCH_MIB", 128)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// hostBusy is the CPU time the host's cores spent on anything but idling, waiting for
// I/O and steal since boot (user, nice, system, irq, softirq; guests run in user time),
// from /proc/stat's first line: the difference over a send is what the send cost the
// host, guests included.
func hostBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal (not ours); guest times are in user already
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// relay pairs one connection from the sending guest with one from the receiving guest on
// host loopback, both ways: the raw baseline's path is the replication's (both guests dial
// the host). done gives the bytes relayed from the sender (-1 when a guest never dialed).
func relay(b *testing.B) (sendPort, recvPort int, done <-chan int64) {
	b.Helper()
	ls, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	lr, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan int64, 1)
	go func() {
		defer ls.Close()
		defer lr.Close()
		cs, err := ls.Accept()
		if err != nil {
			ch <- -1
			return
		}
		cr, err := lr.Accept()
		if err != nil {
			cs.Close()
			ch <- -1
			return
		}
		ch <- join(cs.(*net.TCPConn), cr.(*net.TCPConn))
	}()
	return ls.Addr().(*net.TCPAddr).Port, lr.Addr().(*net.TCPAddr).Port, ch
}

// join copies between the sender's and the receiver's connections both ways (spliced by
// the kernel) until the sender's side ends, closes both, and returns the bytes sent.
func join(cs, cr *net.TCPConn) int64 {
	back := make(chan struct{})
	go func() {
		_, _ = io.Copy(cs, cr)
		_ = cs.CloseWrite()
		close(back)
	}()
	n, _ := io.Copy(cr, cs)
	_ = cr.CloseWrite()
	select {
	case <-back:
	case <-time.After(10 * time.Second):
	}
	cs.Close()
	cr.Close()
	return n
}

// raw times `zfs send args | zfs receive dest` through the host relay (bash's /dev/tcp).
func raw(b *testing.B, r *replication.Rig, slave *lab.Server, dest string, args string) time.Duration {
	b.Helper()
	took, _ := throughRelay(b, "raw "+args,
		func(port int) (string, error) {
			return r.E.GuestErrOn(slave, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && zfs receive -F -u %s <&3", lab.GuestHostIP, port, dest))
		},
		func(port int) (string, error) {
			return r.E.GuestErrOn(r.Master, "bash", "-c", fmt.Sprintf("zfs send -c %s >/dev/tcp/%s/%d", args, lab.GuestHostIP, port))
		})
	return took
}

// throughRelay runs recv in the background with the host relay's receiving port and,
// once it had half a second to connect, send with the relay's sending port. It returns
// the time from the start until both ended, and what the receiver printed; either side
// failing fails b.
func throughRelay(b *testing.B, what string, recv, send func(port int) (string, error)) (time.Duration, string) {
	b.Helper()
	sp, rp, done := relay(b)
	start := time.Now()
	var wg sync.WaitGroup
	var recvOut string
	var recvErr error
	wg.Go(func() { recvOut, recvErr = recv(rp) })
	// The receiver must be connected before the sender's bytes are relayed.
	time.Sleep(500 * time.Millisecond)
	if out, err := send(sp); err != nil {
		b.Fatalf("%s: send: %v %s", what, err, out)
	}
	wg.Wait()
	took := time.Since(start)
	if recvErr != nil {
		b.Fatalf("%s: receive: %v %s", what, recvErr, recvOut)
	}
	<-done
	return took, recvOut
}

func report(b *testing.B, name string, ours, bare []time.Duration) {
	mo, mb := median(ours), median(bare)
	b.ReportMetric(mo.Seconds(), name+"-s")
	b.ReportMetric(mb.Seconds(), name+"-raw-s")
	b.ReportMetric(mo.Seconds()/mb.Seconds(), name+"-ratio")
	b.Logf("%s: replication median %s, raw zfs send|recv median %s, ratio %.2f (samples %v / %v)", name, mo, mb, mo.Seconds()/mb.Seconds(), ours, bare)
}

// BenchmarkReplication: full (128 MiB) and small incremental (1 MiB) replication to one
// slave vs raw, then one volume to two slaves at once vs to one.
func BenchmarkReplication(b *testing.B) {
	// Each zfs command the agents run is logged with its duration, for the incrementals'
	// timelines; the reconcile schedule is paused so each sample's transfer runs alone.
	r := replication.StartRig(b, 2, "--log-zfs")
	r.PauseReconcile(b)
	b.Logf("load: %s", loadAverage())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ours, bare, incOurs, incBare, oursCPU, bareCPU []time.Duration
		for k := 0; k < samples; k++ {
			vid, gid := r.Volume(fmt.Sprintf("full-%d-%d", i, k), fullMiB)
			vds := fmt.Sprintf("%s/iscsi/volumes/%d", r.Master.Pool, vid)
			start, busy0 := time.Now(), hostBusy()
			if _, err := r.Replicate(b, 0, workflows.ReplicateVolume, vid, fmt.Sprintf("group-%d", gid))(); err != nil {
				b.Fatal(err)
			}
			ours, oursCPU = append(ours, time.Since(start)), append(oursCPU, hostBusy()-busy0)
			rawDS := fmt.Sprintf("%s/rawbench-%d-%d", r.Slaves[0].Pool, i, k)
			busy0 = hostBusy()
			bare = append(bare, raw(b, r, r.Slaves[0], rawDS, fmt.Sprintf("%s@group-%d", vds, gid)))
			bareCPU = append(bareCPU, hostBusy()-busy0)

			// A small incremental: 1 MiB changed, a second group snapshots the volume again.
			r.Fill(vds, 300, 1)
			_, gid2 := r.Group(vid, fmt.Sprintf("inc-%d-%d", i, k))
			r.E.AgentTimeline(r.Master) // the incremental's commands are those logged after here
			r.E.AgentTimeline(r.Slaves[0])
			start = time.Now()
			if _, err := r.Replicate(b, 0, workflows.ReplicateVolume, vid, fmt.Sprintf("group-%d", gid2))(); err != nil {
				b.Fatal(err)
			}
			incOurs = append(incOurs, time.Since(start))
			// Where the incremental's fixed cost goes (activities' waits and runs).
			r.Timeline(b, workflows.ReplicateID(r.SlaveIDs[0], workflows.ReplicateVolume, vid))
			b.Log(r.E.AgentTimeline(r.Master))
			b.Log(r.E.AgentTimeline(r.Slaves[0]))
			incBare = append(incBare, raw(b, r, r.Slaves[0], rawDS, fmt.Sprintf("-i @group-%d %s@group-%d", gid, vds, gid2)))
		}
		report(b, "full", ours, bare)
		// What the host's cores spent on each full send, guests included (raw's half
		// second of waiting for the receiver is idle): with both cores that busy already,
		// a send that costs more CPU cannot take less time.
		cores := float64(runtime.NumCPU())
		b.Logf("full: host CPU median %s for ours (%.2f of %d cores), %s for raw (%.2f of %d cores); ours can take no less than %.2f× raw time on these cores",
			median(oursCPU), median(oursCPU).Seconds()/median(ours).Seconds(), runtime.NumCPU(),
			median(bareCPU), median(bareCPU).Seconds()/median(bare).Seconds(), runtime.NumCPU(),
			median(oursCPU).Seconds()/cores/median(bare).Seconds())
		report(b, "incremental", incOurs, incBare)

		// Fan-out: the same volume to both slaves at once, against one slave alone.
		vid, gid := r.Volume(fmt.Sprintf("fan-%d", i), fullMiB)
		snap := fmt.Sprintf("group-%d", gid)
		start := time.Now()
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		for s := range 2 {
			wait := r.Replicate(b, s, workflows.ReplicateVolume, vid, snap)
			wg.Go(func() {
				if _, err := wait(); err != nil {
					b.Error(err)
				}
				took[s] = time.Since(start)
			})
		}
		wg.Wait()
		all := time.Since(start)
		b.ReportMetric(all.Seconds(), "fanout2-s")
		b.Logf("fan-out of %d MiB to 2 slaves: both done in %s (slave 1 %s, slave 2 %s); one slave alone (full median) %s, ratio %.2f",
			fullMiB, all, took[0], took[1], median(ours), all.Seconds()/median(ours).Seconds())
	}
	b.Logf("load: %s", loadAverage())
}
