package replication

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

// BenchmarkCiphersInGuest runs tlsprobe in one lab VM (TCG, like the replication's
// guests): what sealing 16 KiB records costs per cipher, and loopback TCP plainly and
// over TLS 1.3 and 1.2 with each cipher, three times with Go's own view of the CPU and
// three times with AES instructions hidden from Go (run it with -v: the log is long). It tells how much of replication's
// gap to raw `zfs send | zfs receive` the stream's encryption can explain.
func BenchmarkCiphersInGuest(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vms := probeVMs(ctx, b, "tlsprobe", "tlsprobe")
	b.Logf("load: %s", loadAverage())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// GODEBUG=cpu.aes=off: Go then believes the CPU has no AES instructions, and its
		// TLS 1.3 picks ChaCha20-Poly1305 (there is no other way to choose a 1.3 suite).
		envs := []string{"", "GODEBUG=cpu.aes=off"}
		if e := os.Getenv("TLSPROBE_ENVS"); e != "" { // e.g. "GODEBUG=cpu.avx2=off;GODEBUG=cpu.avx=off"
			envs = strings.Split(e, ";")
		}
		for _, env := range envs {
			for run := 1; run <= 3; run++ {
				out, err := vms[0].Exec(ctx, "sh", "-c", "cp /mnt/host/tlsprobe /tmp/tlsprobe && chmod +x /tmp/tlsprobe && "+env+" /tmp/tlsprobe -mib 48")
				if err != nil {
					b.Fatalf("tlsprobe: %v\n%s", err, out)
				}
				b.Logf("run %d in the guest %s:\n%s", run, env, out)
			}
		}
	}
	b.Logf("load: %s", loadAverage())
}

// probeVMs builds the probe command in ./<probe> and boots one lab VM per name with it on
// the share (/mnt/host/<probe>); they stop when b ends.
func probeVMs(ctx context.Context, b *testing.B, probe string, names ...string) []*lab.Server {
	data := buildProbe(ctx, b, probe)
	var opts []lab.Options
	for _, n := range names {
		opts = append(opts, lab.Options{Name: n, Files: map[string][]byte{probe: data}, Logf: b.Logf})
	}
	vms, err := lab.StartServers(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range vms {
		b.Cleanup(func() { _ = v.Stop() })
	}
	return vms
}

// buildProbe builds the probe command ./probe statically and returns the binary.
func buildProbe(ctx context.Context, b *testing.B, probe string) []byte {
	bin := filepath.Join(b.TempDir(), probe)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./"+probe)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", probe, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
