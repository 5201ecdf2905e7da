// Package containers measures a ctemplate upload through the real parts: a dev panel, its
// tunnel and a storage-lab VM's agent.
package containers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	containerstest "github.com/clusterducks/clusterducks/test/containers"
	"github.com/clusterducks/clusterducks/test/lab"
)

// uploadBytes is the filler in the benchmark's root file system: with busybox, ~200 MB.
const uploadBytes = 198 << 20

// rssKiB reads a /proc/<pid>/status field (VmRSS, VmHWM) in KiB.
func rssKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkCTemplateUpload uploads a ~200 MB root file system tarball through the API
// (streamed: the benchmark never holds it either) and reports the panel's resident memory
// while it passes: idle, the highest sample during the upload, and the difference. The
// issue's bound is 100 MB over idle.
func BenchmarkCTemplateUpload(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	bb, err := containerstest.Busybox(ctx)
	if err != nil {
		b.Fatal(err)
	}
	busybox, err := os.ReadFile(bb)
	if err != nil {
		b.Fatal(err)
	}
	// First pass: the tarball's size and checksum, computed as it is generated.
	h := sha256.New()
	cw := &countWriter{w: h}
	if err := containerstest.WriteRootfs(cw, busybox, uploadBytes); err != nil {
		b.Fatal(err)
	}
	size, sum := cw.n, hex.EncodeToString(h.Sum(nil))

	l, err := lab.StartLabWith(ctx, 1, b.TempDir(), nil, b.Logf, lab.LabOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop()
	p := l.Panel
	waitReported(ctx, b, l)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ct map[string]any
		if err := p.Call(ctx, "POST", "ctemplates.json", map[string]any{"network": l.NetworkID, "name": fmt.Sprintf("big-%d", i)}, &ct); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second) // let the panel settle before reading its idle memory
		idle := rssKiB(p.Pid(), "VmRSS")
		var peak atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				if v := rssKiB(p.Pid(), "VmRSS"); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(containerstest.WriteRootfs(pw, busybox, uploadBytes)) }()
		req, err := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/api/v0.9.2/ctemplates/%v/rootfs?sha256=%s", p.URL, ct["id"], sum), pr)
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Authorization", `Token token="`+p.Token+`"`)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		took := time.Since(start)
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got map[string]any
		json.Unmarshal(body, &got) //nolint:errcheck
		if resp.StatusCode != http.StatusOK || got["version"] != float64(1) {
			b.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		delta := peak.Load() - idle
		b.Logf("upload of %.1f MB in %s (%.1f MB/s); panel RSS idle %.1f MiB, peak during the upload %.1f MiB: +%.1f MiB",
			float64(size)/1e6, took.Round(time.Millisecond), float64(size)/1e6/took.Seconds(), float64(idle)/1024, float64(peak.Load())/1024, float64(delta)/1024)
		b.ReportMetric(float64(delta)/1024, "rss-delta-MiB")
		b.ReportMetric(float64(size)/1e6/took.Seconds(), "MB/s")
		if delta > 100<<10 {
			b.Errorf("the panel's RSS grew by %.1f MiB during the upload: over the 100 MB bound", float64(delta)/1024)
		}
	}
}

// waitReported waits until the lab's server reports through its tunnel with its pool online.
func waitReported(ctx context.Context, b *testing.B, l *lab.Lab) {
	b.Helper()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var st models.ServerStats
		err := l.Panel.Call(ctx, "GET", "servers/"+l.Servers[0].Name+"/stats.json", nil, &st)
		if err == nil && strings.HasPrefix(st.Status, models.StatusPanelOK) && st.PoolHealth == "ONLINE" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server did not report through the tunnel: %+v %v", st, err)
		}
		time.Sleep(time.Second)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
