package iscsi_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type footprint struct {
	goroutines int
	heap       uint64
	fds        int
}

func measure() footprint {
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return footprint{goroutines: runtime.NumGoroutine(), heap: ms.HeapInuse, fds: len(fds)}
}

// loopbackDialer spreads connections over 127.0.0.0/8 source addresses so
// 100,000 short connections do not exhaust one address's ephemeral ports.
func loopbackDialer(i int) *net.Dialer {
	ip := net.IPv4(127, 0, byte(1+i/250%250), byte(1+i%250))
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
}

// TestNoLeaks logs in and out 100,000 times and drops 10,000 sessions right
// after (or during) a 1 MiB read, then checks that goroutines, heap and file
// descriptors are back to where they started and that logins still work.
// ISCSI_LEAK_CYCLES and ISCSI_LEAK_DROPS change the counts.
func TestNoLeaks(t *testing.T) {
	cycles := envInt("ISCSI_LEAK_CYCLES", 100000)
	drops := envInt("ISCSI_LEAK_DROPS", 10000)
	if raceEnabled && os.Getenv("ISCSI_LEAK_CYCLES") == "" {
		// The race detector slows each cycle ~10x; the full counts run without it.
		cycles, drops = 10000, 1000
	}
	srv, addr := startOurs(t, iscsi.Config{})
	disk := newDisk(t, "leak.img", 64<<20)
	if err := srv.AddTarget(iscsi.TargetConfig{IQN: ourIQN, LUNs: []iscsi.LUNConfig{{Path: disk}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := func(worker, i int) initiator.Options {
		return initiator.Options{
			InitiatorName: fmt.Sprintf("iqn.2026-11.dev.clusterducks:leak-%d", worker),
			TargetName:    ourIQN,
			ISID:          [6]byte{0x80, 0, 0, byte(worker), byte(i >> 8), byte(i)},
			Dialer:        loopbackDialer(worker*100000 + i),
		}
	}
	// Warm up pools and runtime structures before the baseline.
	for i := range 50 {
		s, err := initiator.Dial(ctx, addr, opts(99, i))
		if err != nil {
			t.Fatal(err)
		}
		s.Read(ctx, 0, 0, 512, make([]byte, 1<<20))
		s.Logout(ctx)
	}
	waitIdle(t, srv)
	base := measure()

	const workers = 8
	run := func(n int, each func(w, i int) error) time.Duration {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n || ctx.Err() != nil {
						return
					}
					if err := each(w, i); err != nil {
						firstErr.CompareAndSwap(nil, fmt.Errorf("cycle %d: %w", i, err))
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("did not finish in time: %v", ctx.Err())
		}
		return time.Since(start)
	}
	d := run(cycles, func(w, i int) error {
		s, err := initiator.Dial(ctx, addr, opts(w, i))
		if err != nil {
			return err
		}
		return s.Logout(ctx)
	})
	t.Logf("%d login/logout cycles in %v (%.0f/s)", cycles, d.Round(time.Millisecond), float64(cycles)/d.Seconds())
	var readBufs [workers][]byte
	for i := range readBufs {
		readBufs[i] = make([]byte, 1<<20)
	}
	d = run(drops, func(w, i int) error {
		s, err := initiator.Dial(ctx, addr, opts(w, i))
		if err != nil {
			return err
		}
		if i%2 == 0 {
			// Drop with the read complete.
			if err := s.Read(ctx, 0, uint64(i%64)*2048, 512, readBufs[w]); err != nil {
				return err
			}
			return s.Abort()
		}
		// Drop while the target is still sending the 1 MiB.
		go s.Read(ctx, 0, uint64(i%64)*2048, 512, make([]byte, 1<<20))
		time.Sleep(50 * time.Microsecond)
		s.Abort()
		return nil
	})
	t.Logf("%d abrupt drops after 1 MiB reads in %v", drops, d.Round(time.Millisecond))
	waitIdle(t, srv)
	after := measure()
	t.Logf("baseline: %d goroutines, %.1f MiB heap, %d fds; after: %d goroutines, %.1f MiB heap, %d fds",
		base.goroutines, float64(base.heap)/(1<<20), base.fds, after.goroutines, float64(after.heap)/(1<<20), after.fds)
	if after.goroutines > base.goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", base.goroutines, after.goroutines)
	}
	if after.heap > base.heap+16<<20 {
		t.Errorf("heap grew from %d to %d bytes", base.heap, after.heap)
	}
	if after.fds > base.fds+5 {
		t.Errorf("file descriptors grew from %d to %d", base.fds, after.fds)
	}
	if n := srv.SessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	st := srv.Stats()[0]
	if want := uint64(cycles + drops + 50); st.Logins != want || st.Sessions != 0 {
		t.Errorf("stats: %d logins (want %d), %d sessions", st.Logins, want, st.Sessions)
	}
	// Logins keep working.
	s := dial(t, addr, ourIQN)
	if err := s.Read(ctx, 0, 0, 512, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	s.Logout(ctx)
}

// waitIdle waits until the target has no connections left.
func waitIdle(t *testing.T, srv *iscsi.Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for srv.ConnectionCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", srv.ConnectionCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
