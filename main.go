// Command clusterducks is the control panel, the storage-server agent and the tunnel of
// clusterducks; main only dispatches sub-commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/clusterducks/clusterducks/workers/dev"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/storage"
	"github.com/clusterducks/clusterducks/workers/temporalite"
	"github.com/clusterducks/clusterducks/workers/tunnel"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.9.2-dev"

const usage = `usage: clusterducks <command> [flags]

commands:
  dev       panel with an embedded SQLite database, for a laptop (--data, --listen)
  panel     production panel on PostgreSQL (DATABASE_URL)
  migrate   apply pending database migrations (DATABASE_URL or --db)
  admin     reset-password --email E-MAIL: a new password for a user who lost it
  agent     storage-server agent: --panel URL --key FILE (the server key from the panel)
  temporal  Temporal server on PostgreSQL for the production topology (--db URL)
  version   print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "dev":
		err = dev.Run(ctx, args)
	case "panel":
		err = panel.Run(ctx, args)
	case "agent":
		err = storage.Run(ctx, args, version)
	case "temporal":
		err = temporalite.Run(ctx, args)
	case "tunnel":
		err = tunnel.Run(ctx, args, version)
	case "migrate":
		err = panel.Migrate(ctx, args)
	case "admin":
		err = panel.Admin(ctx, args)
	case "version", "--version", "-v":
		fmt.Println("clusterducks", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterducks:", err)
		os.Exit(1)
	}
}
