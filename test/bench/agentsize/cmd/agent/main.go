// Command agent is the storage-server agent alone (what `clusterducks agent` runs), for
// measuring what the agent links: the real binary holds every sub-command.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/clusterducks/clusterducks/workers/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := storage.Run(ctx, os.Args[1:], "agentsize"); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}
