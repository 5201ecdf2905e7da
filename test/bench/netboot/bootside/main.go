// Command bootside runs the agent's boot side alone (our iSCSI target on loopback and the
// boot service over file-backed disks, no panel) with N exported device targets and prints
// its resident memory before and after exporting them, for BenchmarkAgentRSS200Targets.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

type offline struct{}

func (offline) Boot(context.Context, wire.Query) (*wire.Info, error) { return nil, wire.ErrUnreachable }
func (offline) Booted(context.Context, []wire.Report) error          { return wire.ErrUnreachable }
func (offline) Exports(context.Context) ([]wire.Export, error) {
	return nil, wire.ErrUnreachable
}

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func main() {
	dir := flag.String("dir", "", "directory of the file-backed pool (with groups/1@v1)")
	n := flag.Int("n", 200, "targets to export")
	flag.Parse()
	disks, err := boot.NewFileDisks(*dir)
	if err != nil {
		panic(err)
	}
	target := iscsi.NewServer(iscsi.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go target.Serve(ln) //nolint:errcheck
	svc, err := boot.NewService(boot.Config{ServerID: 1, Portal: ln.Addr().String(), Panel: offline{},
		Provision: &boot.LocalProvisioner{Disks: disks, Target: target}, Disks: disks, Target: target,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	before := rss()
	for i := 1; i <= *n; i++ {
		if _, err := disks.Clone(1, 1, uint(i)); err != nil {
			panic(err)
		}
		p, _, _ := disks.DevicePath(context.Background(), uint(i))
		uuid := fmt.Sprintf("c1d0c1d0-0000-4000-8000-%012x", i)
		if err := svc.Export(wire.DeviceIQN(1, uint(i)), wire.Export{Kind: "device", ID: uint(i), NetworkID: 1, UUID: uuid}, p); err != nil {
			panic(err)
		}
	}
	fmt.Printf("%d %d %d\n", before, rss(), len(target.Targets()))
}
