// Command targetd serves files over iSCSI with the in-process target, for
// manual checks and benchmarks: targetd -listen 127.0.0.1:3260 -iqn IQN file...
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3260", "address to listen on")
	iqn := flag.String("iqn", "iqn.2026-11.dev.clusterducks:disk", "target name")
	ro := flag.Bool("ro", false, "serve LUNs read-only")
	verbose := flag.Bool("v", false, "log session events")
	sendfile := flag.Bool("sendfile", false, "serve reads with sendfile(2)")
	digests := flag.Bool("digests", false, "prefer CRC32C digests when offered")
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv := iscsi.NewServer(iscsi.Config{Logger: log, Sendfile: *sendfile, PreferDigests: *digests})
	var luns []iscsi.LUNConfig
	for _, p := range flag.Args() {
		luns = append(luns, iscsi.LUNConfig{Path: p, ReadOnly: *ro})
	}
	if err := srv.AddTarget(iscsi.TargetConfig{IQN: *iqn, LUNs: luns}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != iscsi.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
