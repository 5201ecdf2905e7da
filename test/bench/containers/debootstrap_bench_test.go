package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/lab"
)

// waitOperation polls operation op (an answer's "operation") until it ends, and fails the
// benchmark unless it succeeded.
func waitOperation(ctx context.Context, b *testing.B, p *lab.DevPanel, op map[string]any, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		var got map[string]any
		if err := p.Call(ctx, "GET", fmt.Sprintf("operations/%v.json", op["id"]), nil, &got); err == nil {
			switch got["state"] {
			case models.OpSucceeded:
				return
			case models.OpFailed, models.OpCancelled:
				b.Fatalf("operation %v: %v", op["id"], got)
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("operation %v did not end within %s", op["id"], within)
		}
		time.Sleep(2 * time.Second)
	}
}

// BenchmarkCTemplateDebootstrap builds a ctemplate on a systemd storage-lab server with
// debootstrap (bookworm, from the archive in the guest's own apt sources: the machine's
// mirror) and runs a container from it that prints its Debian version; it reports the
// build's time. A benchmark, not a test: in an emulated (TCG) VM the build takes many
// minutes. The lab image has no debootstrap: apt installs it in the guest first, as
// install.sh's operator would on a server.
func BenchmarkCTemplateDebootstrap(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	l, err := lab.StartLabWith(ctx, 1, b.TempDir(), nil, b.Logf, lab.LabOptions{Systemd: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop()
	p, srv := l.Panel, l.Servers[0]
	waitReported(ctx, b, l)
	if out, err := srv.Exec(ctx, "sh", "-c", "command -v debootstrap || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }"); err != nil {
		b.Fatalf("debootstrap in the guest: %v: %s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var ct map[string]any
		if err := p.Call(ctx, "POST", "ctemplates.json", map[string]any{"network": l.NetworkID, "name": fmt.Sprintf("bookworm-%d", i), "debootstrap": "bookworm"}, &ct); err != nil {
			b.Fatal(err)
		}
		waitOperation(ctx, b, p, ct["operation"].(map[string]any), 80*time.Minute)
		took := time.Since(start)
		used, _ := srv.Exec(ctx, "zfs", "get", "-H", "-o", "value", "used", fmt.Sprintf("%s/iscsi/ctemplates/%v", srv.Pool, ct["id"]))
		b.Logf("ctemplate %v built by debootstrap in %s (%s)", ct["id"], took.Round(time.Second), strings.TrimSpace(used))
		b.ReportMetric(took.Seconds(), "build-s")

		var c map[string]any
		if err := p.Call(ctx, "POST", "containers.json", map[string]any{"network": l.NetworkID, "name": fmt.Sprintf("deb-%d", i), "ctemplate": ct["id"],
			"command": "echo debian $(cat /etc/debian_version)"}, &c); err != nil {
			b.Fatal(err)
		}
		waitOperation(ctx, b, p, c["operation"].(map[string]any), 10*time.Minute)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var st map[string]any
			err := p.Call(ctx, "GET", fmt.Sprintf("containers/%v/status.json?lines=20", c["id"]), nil, &st)
			journal, _ := json.Marshal(st["journal"])
			if err == nil && strings.Contains(string(journal), "debian 12.") {
				b.Logf("the container printed: %s", journal)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the container from the built ctemplate printed no Debian version: %v %v", st, err)
			}
			time.Sleep(2 * time.Second)
		}
	}
}
