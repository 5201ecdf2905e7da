package temporalite

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/server/common/config"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// store is where the server keeps its state: one SQLite file, or two PostgreSQL databases
// (the main store and visibility).
type store struct {
	main, visibility *config.SQL // visibility nil: the main store holds it too (SQLite)
	shards           int32
}

func (st *store) visibilityName() string {
	if st.visibility == nil {
		return "default"
	}
	return "visibility"
}

func (st *store) dataStores() map[string]config.DataStore {
	m := map[string]config.DataStore{"default": {SQL: st.main}}
	if st.visibility != nil {
		m["visibility"] = config.DataStore{SQL: st.visibility}
	}
	return m
}

func openStore(o Options) (*store, error) {
	if o.Postgres == "" {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, err
		}
		return &store{shards: 1, main: &config.SQL{
			PluginName:        sqliteplugin.PluginName,
			DatabaseName:      filepath.Join(o.Dir, "temporal.db"),
			ConnectAttributes: map[string]string{"mode": "rwc", "_journal_mode": "wal", "_synchronous": "normal"},
		}}, nil
	}
	main, err := postgresConfig(o.Postgres)
	if err != nil {
		return nil, err
	}
	vis := *main
	vis.DatabaseName = main.DatabaseName + "_visibility"
	vis.ConnectAttributes = maps(main.ConnectAttributes)
	// Several history shards let a production server spread its work; the count is fixed
	// for the life of the database, so it is chosen once here.
	return &store{main: main, visibility: &vis, shards: 4}, nil
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// postgresConfig reads postgres://user:password@host:port/database?attr=… into the SQL
// store settings of Temporal's PostgreSQL plugin (pgx). Query attributes are passed to the
// driver as they are (sslmode, a unix socket directory as host=…).
func postgresConfig(raw string) (*config.SQL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("temporal database: want postgres://user:password@host:port/database, got %q", redact(raw))
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, errors.New("temporal database: the URL names no database (postgres://…/temporal)")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "5432"
	}
	cfg := &config.SQL{
		PluginName:        postgresql.PluginNamePGX,
		DatabaseName:      db,
		ConnectAddr:       net.JoinHostPort(host, port),
		ConnectProtocol:   "tcp",
		User:              u.User.Username(),
		ConnectAttributes: map[string]string{},
		MaxConns:          20,
		MaxIdleConns:      20,
	}
	cfg.Password, _ = u.User.Password()
	for k, v := range u.Query() {
		cfg.ConnectAttributes[k] = v[len(v)-1]
	}
	return cfg, nil
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// setup creates the schema when absent (or upgrades it to the server's version) and
// registers the namespace; repeating it changes nothing.
func (st *store) setup(namespace, logLevel string) error {
	if st.visibility == nil {
		if _, err := os.Stat(st.main.DatabaseName); errors.Is(err, os.ErrNotExist) {
			if err := sqlite.SetupSchema(st.main); err != nil {
				return fmt.Errorf("temporal schema: %w", err)
			}
		}
		ns, err := sqlite.NewNamespaceConfig("active", namespace, false, nil)
		if err != nil {
			return err
		}
		if err := sqlite.CreateNamespaces(st.main, ns); err != nil {
			return fmt.Errorf("temporal namespace: %w", err)
		}
		return nil
	}
	logger := tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: logLevel}))
	for _, s := range []struct {
		cfg  *config.SQL
		name string
	}{{st.main, "postgresql/v12/temporal"}, {st.visibility, "postgresql/v12/visibility"}} {
		if err := pgSchema(s.cfg, s.name, logger); err != nil {
			return fmt.Errorf("temporal schema in database %s: %w", s.cfg.DatabaseName, err)
		}
	}
	return nil
}

// pgSchema makes database cfg hold schema name at the newest version the server knows:
// the database is created when missing, the version table set up at 0.0 the first time,
// then every versioned step after the database's version is applied.
func pgSchema(cfg *config.SQL, name string, logger tlog.Logger) error {
	admin := *cfg
	if err := sqltool.DoCreateDatabase(&admin, "postgres", logger); err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create database: %w", err)
	}
	conn, err := sqltool.NewConnection(cfg, logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ReadSchemaVersion(); err != nil {
		if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: cfg.DatabaseName, SchemaName: name}, logger).Run(); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}
