// Command lab is `task lab`: a dev panel (embedded Temporal, SQLite) plus N storage-server
// VMs of the storage lab (package test/lab), each running `clusterducks agent` registered
// as a server of the network "Lab", until Ctrl-C.
//
//	go run ./test/lab/cmd/lab -n 2              # panel + 2 registered servers
//	go run ./test/lab/cmd/lab -bare -n 3        # 3 VMs with an empty pool, no panel
//	go run ./test/lab/cmd/lab -panel http://127.0.0.1:8080 -key s1.key -key s2.key
//	go run ./test/lab/cmd/lab exec lab1 zpool status
//	go run ./test/lab/cmd/lab image             # only build (or find) the image
//
// The first run on a machine builds the image (12–15 minutes); later runs reuse it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "exec" {
		os.Exit(execCmd(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "image" {
		// Builds ahead of a test run, so the build's 10-30 minutes are not a test's timeout.
		img, err := lab.EnsureImage(context.Background(), func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		if err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			os.Exit(1)
		}
		fmt.Println(img.Root)
		os.Exit(0)
	}
	os.Exit(run())
}

// run starts everything and blocks until Ctrl-C; deferred stops run before the exit.
func run() int {
	n := flag.Int("n", 1, "number of storage servers (ignored with -key: one per key)")
	prefix := flag.String("name", "lab", "name prefix: servers are <name>1, <name>2, …")
	panel := flag.String("panel", "", "an already running panel's URL as seen from the host; with -key, each server runs `clusterducks agent`")
	var keys keyFiles
	flag.Var(&keys, "key", "server key file for one agent on -panel (repeat for more servers)")
	bare := flag.Bool("bare", false, "only the VMs: no panel, no agent")
	data := flag.String("data", "", "the dev panel's data directory (default: a fresh one, removed at exit)")
	flag.Parse()
	if len(keys) > 0 && *panel == "" {
		fmt.Fprintln(os.Stderr, "lab: -key needs -panel")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
	// Said at once: the first run waits minutes for things that print nothing meanwhile.
	logf("lab: starting %d storage server(s). It needs root (qemu, the image build); the first run on a machine builds "+
		"the storage image (12-15 min on 2 idle cores, cached in %s, one build at a time) and compiles clusterducks "+
		"(up to ~12 min with a cold Go cache); then each VM boots in 40-100 s.", *n, lab.CacheDir)
	if os.Geteuid() != 0 {
		logf("lab: not running as root: the image build and qemu's networking will fail; run it with sudo")
	}
	start := time.Now()
	var servers []*lab.Server
	var devPanel *lab.DevPanel
	var networkID uint
	var err error
	switch {
	case !*bare && *panel == "":
		// The VMs are new at each run, so is the panel's database: its servers are these VMs.
		if *data == "" {
			dir, err := os.MkdirTemp("", "clusterducks-lab-panel-")
			if err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
				return 1
			}
			defer os.RemoveAll(dir)
			*data = dir
		}
		var l *lab.Lab
		l, err = lab.StartLab(ctx, *n, *data, os.Stdout, logf)
		if err == nil {
			servers, devPanel, networkID = l.Servers, l.Panel, l.NetworkID
			defer devPanel.Stop() //nolint:errcheck
		}
	case len(keys) > 0:
		var kb [][]byte
		for _, k := range keys {
			b, err := os.ReadFile(k)
			if err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
				return 1
			}
			kb = append(kb, b)
		}
		servers, err = lab.StartAgents(ctx, *prefix, *panel, kb, logf)
	default:
		opts := make([]lab.Options, *n)
		for i := range opts {
			opts[i] = lab.Options{Name: fmt.Sprintf("%s%d", *prefix, i+1), Logf: logf}
		}
		servers, err = lab.StartServers(ctx, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
			}
		}
	}()
	fmt.Printf("\n%d storage server(s) ready in %s\n\n", len(servers), time.Since(start).Round(time.Second))
	printServers(servers)
	if devPanel != nil {
		fmt.Printf("\nPanel %s (token above); the servers are in network \"Lab\" and run `clusterducks agent`\n"+
			"(its log: <state dir>/share/command.log).\n", devPanel.URL)
		if devPanel.TemporalUI != "" {
			fmt.Printf("Temporal UI %s/ (the workflows behind every operation)\n", devPanel.TemporalUI)
		}
	}
	if devPanel != nil || len(keys) > 0 {
		printDevice(servers[0], networkID)
	}
	fmt.Printf("\nRun a command in one: go run ./test/lab/cmd/lab exec %s zpool status\nCtrl-C stops everything.\n", servers[0].Name)

	died := make(chan *lab.Server, len(servers))
	for _, s := range servers {
		go func() { <-s.Done(); died <- s }()
	}
	var panelDone <-chan struct{}
	if devPanel != nil {
		panelDone = devPanel.Done()
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping")
	case s := <-died:
		fmt.Fprintf(os.Stderr, "lab: %s's qemu exited; stopping the rest\n%s", s.Name, s.Log("console.log"))
	case <-panelDone:
		fmt.Fprintln(os.Stderr, "lab: the panel exited; stopping the servers")
	}
	return 0
}

func printServers(servers []*lab.Server) {
	for _, s := range servers {
		fmt.Printf("%s  pool %s  uuid %s\n  state dir %s\n", s.Name, s.Pool, s.UUID, s.Dir)
		for _, f := range s.Forwards() {
			fmt.Println("  " + f)
		}
	}
	fmt.Printf("\nIn the guests the host is %s; guest logs are in <state dir>/share (command.log, init.log).\n", lab.GuestHostIP)
}

// printDevice prints a ready-to-paste qemu command that netboots a new device from the
// first server, and what the network needs before that device boots a disk. networkID
// is the lab's network, 0 when the panel is another's.
func printDevice(s *lab.Server, networkID uint) {
	d := lab.NewDeviceVM(s.DeviceBootURL())
	network := "<network id>"
	if networkID != 0 {
		network = fmt.Sprint(networkID)
	}
	fmt.Printf("\nNetboot a device into the lab from %s (iPXE on its own user network; needs qemu-system-x86 and ipxe-qemu;\n"+
		"quit with Ctrl-A X; it ends by itself when the device reboots; another server: its boot forward's URL):\n\n  %s\n\n"+
		"Unknown to the panel, it joins the network's default group; without one it is told it is not registered.\n"+
		"Register it first (POST /api/v0.9.2/devices.json {\"network\": %s, \"mac\": %q}) and put a volume in\n"+
		"maintenance for it, or give the network a default group with a version. Another device: change -uuid and mac.\n",
		s.Name, d.Command(), network, d.MAC)
}

// execCmd runs one command in a running server of another lab process.
func execCmd(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lab exec NAME COMMAND [ARG...]")
		return 2
	}
	s, err := lab.Find(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := s.Exec(ctx, args[1], args[2:]...)
	fmt.Print(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if e, ok := err.(*lab.ExecError); ok {
			return e.ExitCode
		}
		return 1
	}
	return 0
}
