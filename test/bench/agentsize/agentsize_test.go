// Package agentsize measures the storage-server agent's binary: built alone (cmd/agent,
// which links only workers/storage) the way the build task builds clusterducks, static and
// trimmed, it shows what the agent carries; the wire contract keeps the panel's database,
// SQL drivers and web framework out of it.
//
//	go test -run '^$' -bench AgentSize -benchtime 1x ./test/bench/agentsize/
package agentsize

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkAgentSize reports the agent binary's size in bytes and the number of packages
// it links.
func BenchmarkAgentSize(b *testing.B) {
	// go test puts its own GOROOT/bin first on the PATH.
	goBin := "go"
	out := filepath.Join(b.TempDir(), "agent")
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./cmd/agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, msg)
		}
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	list := exec.Command(goBin, "list", "-deps", "./cmd/agent")
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	deps, err := list.Output()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "bytes")
	b.ReportMetric(float64(len(strings.Fields(string(deps)))), "packages")
	b.Logf("agent binary: %d bytes (%.1f MiB), %d packages", fi.Size(), float64(fi.Size())/(1<<20), len(strings.Fields(string(deps))))
}
