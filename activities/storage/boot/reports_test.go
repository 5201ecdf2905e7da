package boot

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// reportPanel is fakePanel whose Booted fails with errs, one per call, before it takes
// reports (which it records).
type reportPanel struct {
	fakePanel
	rmu   sync.Mutex
	errs  []error
	calls int
	got   []wire.Report
}

func (p *reportPanel) Booted(_ context.Context, r []wire.Report) error {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	p.calls++
	if len(p.errs) > 0 {
		err := p.errs[0]
		p.errs = p.errs[1:]
		return err
	}
	p.got = append(p.got, r...)
	return nil
}

func (p *reportPanel) state() (calls int, got []wire.Report) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return p.calls, append([]wire.Report(nil), p.got...)
}

// A device that booted does not ask again: its report is the only record of the boot, so
// a panel that cannot be reached for a while (restarted, overloaded, the satellite's link
// down) must still get it once it answers. Only a refusal (4xx) drops it.
func TestBootReportsOutliveAnUnreachablePanel(t *testing.T) {
	unreachable := fmt.Errorf("panel /agent/booted.json: %w: connection refused", wire.ErrUnreachable)
	serverError := fmt.Errorf("%w: %w", wire.ErrUnreachable, &wire.StatusError{Path: wire.PathBooted, Status: http.StatusInternalServerError})
	refused := &wire.StatusError{Path: wire.PathBooted, Status: http.StatusUnprocessableEntity}
	for _, tc := range []struct {
		name      string
		errs      []error
		delivered bool
		calls     int // Booted calls in all
	}{
		{"unreachable twice", []error{unreachable, unreachable}, true, 3},
		{"a server error", []error{serverError}, true, 2},
		{"a timeout", []error{fmt.Errorf("panel: %w: %w", wire.ErrUnreachable, context.DeadlineExceeded)}, true, 2},
		{"refused", []error{refused}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			disks := v1Disks(t)
			panel := &reportPanel{fakePanel: fakePanel{info: info(true, 1)}, errs: tc.errs}
			target := &recordTarget{}
			cache, _ := OpenCache(filepath.Join(t.TempDir(), "cache.json"))
			svc, err := NewService(Config{ServerID: 1, Portal: "10.0.0.1:3260", Panel: panel, Disks: disks, Target: target,
				Provision: &LocalProvisioner{Disks: disks, Target: target}, Cache: cache, ReportRetry: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot ") {
				t.Fatalf("script:\n%s", s)
			}
			if w := svc.ReportsWaiting(); w != 1 { // the first delivery is on the next second
				t.Errorf("%d reports waiting after one boot, want 1", w)
			}
			// Each try waits for the service's next second; a bound on the wait, not a timing.
			for end := time.Now().Add(time.Duration(len(tc.errs)+10) * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if calls, got := panel.state(); calls >= tc.calls && (len(got) > 0 || !tc.delivered) {
					break
				}
			}
			// Read before Close: a stopping agent also reports its watched boot's result
			// (unknown), a second report of the same boot.
			calls, got := panel.state()
			for end := time.Now().Add(2 * time.Second); svc.ReportsWaiting() != 0 && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
			}
			if w := svc.ReportsWaiting(); w != 0 {
				t.Errorf("%d reports waiting once the panel took or refused them, want 0", w)
			}
			if err := svc.Close(); err != nil {
				t.Fatal(err)
			}
			if calls != tc.calls {
				t.Errorf("Booted called %d times, want %d", calls, tc.calls)
			}
			if !tc.delivered {
				if len(got) != 0 {
					t.Errorf("a refused report was sent again: %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].DeviceID != 7 || got[0].Version != 1 || !got[0].Booted() {
				t.Errorf("reports delivered: %+v, want device 7's boot of v1 once", got)
			}
		})
	}
}

// While the panel stays away the queue keeps the newest maxPendingReports, in order.
func TestReportQueueKeepsTheNewest(t *testing.T) {
	var q reportQueue
	dropped := 0
	for i := range maxPendingReports + 3 {
		if q.add(wire.Report{DeviceID: uint(i)}) {
			dropped++
		}
	}
	if len(q.pending) != maxPendingReports || dropped != 3 || q.dropped != 3 ||
		q.pending[0].DeviceID != 3 || q.pending[len(q.pending)-1].DeviceID != maxPendingReports+2 {
		t.Fatalf("kept %d (first %d, last %d), dropped %d/%d", len(q.pending), q.pending[0].DeviceID, q.pending[len(q.pending)-1].DeviceID, dropped, q.dropped)
	}
	q.retry = time.Second
	now := time.Now()
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		q.failed(now)
		if q.pause != want || !q.next.Equal(now.Add(want)) {
			t.Fatalf("pause %s next %s, want %s", q.pause, q.next, want)
		}
	}
	for range 10 {
		q.failed(now)
	}
	if q.pause != maxReportRetry {
		t.Fatalf("pause %s, want at most %s", q.pause, maxReportRetry)
	}
}
