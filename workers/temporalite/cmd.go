package temporalite

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

// Run is `clusterducks temporal`: the Temporal server of the production topology, on
// PostgreSQL, for sites that do not run a Temporal cluster of their own (any Temporal
// cluster works: panels and agents only need TEMPORAL_ADDRESS). Its state is in the
// PostgreSQL database of --db (schema created or upgraded at start); several panels and
// every agent use it. It runs until ctx ends.
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("temporal", flag.ContinueOnError)
	db := fs.String("db", os.Getenv("TEMPORAL_DATABASE_URL"), "PostgreSQL URL of the server's database: postgres://user:password@host:5432/temporal?sslmode=verify-full (visibility goes to temporal_visibility)")
	ip := fs.String("ip", cmp.Or(os.Getenv("TEMPORAL_IP"), "127.0.0.1"), "address the frontend, the services and the Web UI listen on")
	port := fs.Int("port", 7233, "frontend gRPC port (-1: any free port)")
	uiPort := fs.Int("ui-port", 0, "Web UI port (default: port+1000; -1: no UI)")
	namespace := fs.String("namespace", cmp.Or(os.Getenv("TEMPORAL_NAMESPACE"), "default"), "namespace registered at start")
	logLevel := fs.String("log-level", "warn", "the server's log level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("temporal: --db (or TEMPORAL_DATABASE_URL) is required: postgres://user:password@host:5432/temporal")
	}
	srv, err := Start(Options{IP: *ip, Port: *port, UIPort: *uiPort, Namespace: *namespace, LogLevel: *logLevel, Postgres: *db})
	if err != nil {
		return err
	}
	fmt.Printf("temporal: frontend %s, namespace %s", srv.Address, srv.Namespace)
	if srv.UIURL != "" {
		fmt.Printf(", web UI %s", srv.UIURL)
	}
	fmt.Println()
	<-ctx.Done()
	srv.Stop()
	return nil
}
