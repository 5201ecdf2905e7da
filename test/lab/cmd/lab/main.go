// Command lab starts storage-server VMs of the storage lab (package test/lab) and keeps
// them running until Ctrl-C.
//
//	go run ./test/lab/cmd/lab -n 2
//	go run ./test/lab/cmd/lab -panel http://127.0.0.1:8080 -key s1.key -key s2.key
//	go run ./test/lab/cmd/lab exec lab1 zpool status
//
// The first run on a machine builds the image (12–15 minutes); later runs reuse it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
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
	n := flag.Int("n", 1, "number of storage servers (ignored with -key: one per key)")
	prefix := flag.String("name", "lab", "name prefix: servers are <name>1, <name>2, …")
	panel := flag.String("panel", "", "panel URL as seen from the host; with -key, each server runs `clusterducks agent`")
	var keys keyFiles
	flag.Var(&keys, "key", "server key file for one agent (repeat for more servers)")
	flag.Parse()
	if len(keys) > 0 && *panel == "" {
		fmt.Fprintln(os.Stderr, "lab: -key needs -panel")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
	start := time.Now()
	var servers []*lab.Server
	var err error
	if len(keys) > 0 {
		var kb [][]byte
		for _, k := range keys {
			b, err := os.ReadFile(k)
			if err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
				os.Exit(1)
			}
			kb = append(kb, b)
		}
		servers, err = lab.StartAgents(ctx, *prefix, *panel, kb, logf)
	} else {
		opts := make([]lab.Options, *n)
		for i := range opts {
			opts[i] = lab.Options{Name: fmt.Sprintf("%s%d", *prefix, i+1), Logf: logf}
		}
		servers, err = lab.StartServers(ctx, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
			}
		}
	}()
	fmt.Printf("%d storage server(s) ready in %s\n\n", len(servers), time.Since(start).Round(time.Second))
	printServers(servers)
	fmt.Printf("\nRun a command in one: go run ./test/lab/cmd/lab exec %s zpool status\nCtrl-C stops everything.\n", servers[0].Name)

	died := make(chan *lab.Server, len(servers))
	for _, s := range servers {
		go func() { <-s.Done(); died <- s }()
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping")
	case s := <-died:
		fmt.Fprintf(os.Stderr, "lab: %s's qemu exited; stopping the rest\n%s", s.Name, s.Log("console.log"))
	}
}

func printServers(servers []*lab.Server) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPOOL\tUUID\tFORWARDS (guest port -> host)\tSTATE DIR")
	for _, s := range servers {
		var ports []int
		for g := range s.Ports() {
			ports = append(ports, g)
		}
		sort.Ints(ports)
		var fwd []string
		for _, g := range ports {
			fwd = append(fwd, fmt.Sprintf("%d->%s", g, s.Addr(g)))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Pool, s.UUID, strings.Join(fwd, " "), s.Dir)
	}
	w.Flush()
	fmt.Printf("\nIn the guests the host is %s; guest logs are in <state dir>/share (command.log, init.log).\n", lab.GuestHostIP)
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
