package harness

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"

	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness/pkgs"
	"gorm.io/gorm"
)

// Postgres is a throwaway PostgreSQL cluster (Debian's package) in a temp dir, listening on
// a unix socket only. One is shared by a whole test binary.
type Postgres struct {
	dir    string
	socket string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	next   atomic.Int64

	data, bin string
	cred      *syscall.Credential
	durable   bool // synchronous_commit on: a SIGKILL loses no committed transaction
}

var (
	sharedPG   *Postgres
	sharedErr  error
	sharedOnce sync.Once
)

// MainPostgres is a TestMain body: it runs the tests with a shared PostgreSQL cluster,
// started on first use, and stops it afterwards.
func MainPostgres(m *testing.M) { os.Exit(RunWithPostgres(m)) }

// RunWithPostgres runs the tests like MainPostgres and returns the exit code, for a
// TestMain that has more to clean up.
func RunWithPostgres(m *testing.M) int {
	code := m.Run()
	if sharedPG != nil {
		sharedPG.Stop()
	}
	return code
}

// SharedPostgres returns the test binary's cluster, starting it on first use.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	sharedOnce.Do(func() { sharedPG, sharedErr = StartPostgres() })
	if sharedErr != nil {
		t.Fatalf("postgres: %v", sharedErr)
	}
	return sharedPG
}

func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql")
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartPostgres installs PostgreSQL when missing, runs initdb in a temp dir and starts the
// server on a unix socket. As root it runs the server as the "postgres" user, because
// PostgreSQL refuses to run as root.
func StartPostgres() (*Postgres, error) { return startPostgres(false) }

// StartDurablePostgres is StartPostgres with synchronous commits, as production runs: a
// transaction is in the kernel's hands (the WAL written) before its commit returns, so
// Kill loses none. The fast clusters commit asynchronously, and a SIGKILL there drops the
// last few hundred milliseconds of acknowledged commits — Temporal's among them, which
// leaves a workflow waiting on an activity its store forgot (the chaos test kills
// PostgreSQL, so it needs this one). fsync stays off: a killed process is not a crashed
// kernel, whose page cache keeps what was written.
func StartDurablePostgres() (*Postgres, error) { return startPostgres(true) }

func startPostgres(durable bool) (*Postgres, error) {
	if err := InstallPackages("postgresql"); err != nil {
		return nil, err
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "clusterducks-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, socket: filepath.Join(dir, "sock"), durable: durable}
	if err := os.Mkdir(p.socket, 0o700); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{dir, p.socket} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, pkgs.Tail(out))
	}
	// The port only names the socket file; listen_addresses='' keeps the cluster off TCP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p.data, p.bin, p.cred = data, bin, cred
	if err := p.run(); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// run starts the server on the cluster's data and waits until it answers.
func (p *Postgres) run() error {
	logf, err := os.OpenFile(filepath.Join(p.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	syncCommit := "synchronous_commit=off"
	if p.durable {
		syncCommit = "synchronous_commit=on"
	}
	p.cmd = exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.data, "-k", p.socket, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", syncCommit, "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=128MB")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(p.cmd, p.exited) //nolint:errcheck
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("pgx", p.DSN("postgres"))
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
			return fmt.Errorf("postgres did not start: %v: %s", err, pkgs.Tail(log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends the server and its backends with SIGKILL, as a crash would (the chaos test);
// Restart brings it back on the same data.
func (p *Postgres) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the whole process group: postmaster and backends
	<-p.exited
	os.Remove(filepath.Join(p.data, "postmaster.pid")) //nolint:errcheck
}

// Restart starts the server again after Kill (crash recovery runs at its start).
func (p *Postgres) Restart() error { return p.run() }

// DSN returns the key/value connection string of a database of the cluster.
func (p *Postgres) DSN(database string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", p.socket, p.port, database)
}

// NewDatabase creates an empty database for one test and drops it at the test's end.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.next.Add(1))
	admin, err := sql.Open("pgx", p.DSN("postgres"))
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", p.DSN("postgres"))
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") //nolint:errcheck
	})
	return p.DSN(name)
}

// Stop stops the cluster and removes its files.
func (p *Postgres) Stop() {
	if p.cmd != nil && p.cmd.Process != nil && p.exited != nil {
		p.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck // fast shutdown
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill() //nolint:errcheck
			<-p.exited
		}
	}
	os.RemoveAll(p.dir)
}

// Drivers are the databases API tests run against.
var Drivers = []string{"postgres", "sqlite"}

// NewDB returns a fresh, migrated database with the first client and admin created:
// driver "postgres" (a new database on the shared cluster) or "sqlite" (a file in a temp dir).
func NewDB(t testing.TB, driver string) *gorm.DB {
	t.Helper()
	var dsn string
	switch driver {
	case "postgres":
		dsn = SharedPostgres(t).NewDatabase(t)
	case "sqlite":
		dsn = "sqlite:" + filepath.Join(t.TempDir(), "panel.db")
	default:
		t.Fatalf("unknown driver %q", driver)
	}
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	ctx := context.Background()
	if err := models.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := models.Bootstrap(ctx, db, "admin@example.com"); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return db
}

// Admin returns the first super-admin of db as an Actor.
func Admin(t testing.TB, db *gorm.DB) *models.Actor {
	t.Helper()
	var u models.User
	if err := db.Where("role = ?", models.RoleSuperAdmin).Order("id").Take(&u).Error; err != nil {
		t.Fatalf("admin: %v", err)
	}
	return &models.Actor{User: u}
}

// Token issues an API token for a user and returns the Authorization header value.
func Token(t testing.TB, db *gorm.DB, userID uint) string {
	t.Helper()
	tok, err := models.IssueToken(context.Background(), db, userID, "test")
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return `Token token="` + tok + `"`
}

// URL returns a postgres:// URL of a database of the cluster (over its unix socket), for
// programs that take URLs only (Temporal's PostgreSQL store).
func (p *Postgres) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@localhost:%d/%s?host=%s&sslmode=disable", p.port, database, p.socket)
}

// idBase hands each DistinctIDs call of a test binary its own range of ids.
var idBase atomic.Int64

// DistinctIDs makes the rows a test creates next in db (a PostgreSQL database) take ids
// no other test of the binary uses. Tests of one binary share one Temporal namespace,
// and the agents', tunnels' and workflows' names carry row ids (task queue `server-1`,
// `tunnel-1`): without it, work a finished test left queued there (an activity of its
// last health round) can reach the next test's processes.
func DistinctIDs(t testing.TB, db *gorm.DB) {
	t.Helper()
	base := idBase.Add(1) * 1000
	var seqs []string
	if err := db.Raw("SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()").Scan(&seqs).Error; err != nil {
		t.Fatalf("harness: list sequences: %v", err)
	}
	for _, s := range seqs {
		if err := db.Exec("SELECT setval(?::regclass, ?, false)", s, base).Error; err != nil {
			t.Fatalf("harness: setval %s: %v", s, err)
		}
	}
}
