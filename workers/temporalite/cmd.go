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
	var t TLS
	fs.StringVar(&t.CertFile, "tls-cert", os.Getenv("TEMPORAL_SERVER_TLS_CERT"), "frontend certificate (PEM file): serve the frontend over TLS")
	fs.StringVar(&t.KeyFile, "tls-key", os.Getenv("TEMPORAL_SERVER_TLS_KEY"), "its private key (PEM file)")
	fs.StringVar(&t.CAFile, "tls-ca", os.Getenv("TEMPORAL_SERVER_TLS_CA"), "the CA that signed the certificate (PEM file), for the server's own clients")
	fs.StringVar(&t.ServerName, "tls-server-name", os.Getenv("TEMPORAL_SERVER_TLS_SERVER_NAME"), "a DNS name in the certificate, as clients verify it")
	fs.StringVar(&t.ClientCA, "tls-client-ca", os.Getenv("TEMPORAL_SERVER_TLS_CLIENT_CA"), "require client certificates signed by this CA (mTLS; agents then need one too)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("temporal: --db (or TEMPORAL_DATABASE_URL) is required: postgres://user:password@host:5432/temporal")
	}
	o := Options{IP: *ip, Port: *port, UIPort: *uiPort, Namespace: *namespace, LogLevel: *logLevel, Postgres: *db, RegisterSearchAttributes: true}
	switch {
	case t.CertFile != "" && (t.KeyFile == "" || t.CAFile == "" || t.ServerName == ""):
		return errors.New("temporal: --tls-cert needs --tls-key, --tls-ca and --tls-server-name")
	case t.CertFile != "":
		o.TLS = &t
	case t.KeyFile != "" || t.ClientCA != "":
		return errors.New("temporal: --tls-key and --tls-client-ca need --tls-cert")
	}
	srv, err := Start(o)
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
