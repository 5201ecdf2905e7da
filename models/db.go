package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	_ "modernc.org/sqlite" // pure-Go SQLite, registered as "sqlite"; the binary stays static
)

// All lists every model, in creation order, for migrations and tests.
func All() []any {
	return []any{
		&Client{}, &User{}, &Network{}, &Delegation{}, &Tunnel{}, &Server{}, &Volume{},
		&Group{}, &GroupVersion{}, &VersionCopy{}, &VolumeCopy{}, &Device{}, &Menu{}, &CTemplate{},
		&CTemplateCopy{}, &Container{}, &VDisk{}, &Settings{}, &APIToken{}, &Session{}, &AuditEvent{}, &Operation{},
	}
}

// Open connects to the database named by dsn: a PostgreSQL URL or key/value string, or
// "sqlite:<path>" for the embedded default of `dev`.
func Open(dsn string) (*gorm.DB, error) {
	cfg := &gorm.Config{
		Logger:                                   logger.New(slogWriter{}, logger.Config{SlowThreshold: time.Second, LogLevel: logger.Warn, IgnoreRecordNotFoundError: true, ParameterizedQueries: true}),
		DisableForeignKeyConstraintWhenMigrating: true,
		TranslateError:                           true,
	}
	var dial gorm.Dialector
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path != ":memory:" && !strings.HasPrefix(path, "file:") {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("database directory: %w", err)
			}
		}
		// WAL and a busy timeout let the panel's readers and its single writer share the file.
		conn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"
		if strings.Contains(path, "?") {
			conn = path + "&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
		}
		dial = sqlite.New(sqlite.Config{DriverName: "sqlite", DSN: conn})
	case dsn == "":
		return nil, errors.New("no database configured: set DATABASE_URL")
	default:
		dial = postgres.Open(dsn)
	}
	db, err := gorm.Open(dial, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if db.Dialector.Name() == "sqlite" {
		// One writer at a time is what SQLite allows; more connections only wait on the lock.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	return db, nil
}

type slogWriter struct{}

func (slogWriter) Printf(format string, args ...any) {
	slog.Warn("database", "msg", fmt.Sprintf(format, args...))
}

// migrations is the ordered, versioned schema history. A shipped migration is never edited:
// later changes append a new one.
func migrations() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		{
			ID: "202611240001_initial",
			Migrate: func(tx *gorm.DB) error {
				return tx.AutoMigrate(All()...)
			},
			Rollback: func(tx *gorm.DB) error {
				all := All()
				for i := len(all) - 1; i >= 0; i-- {
					if err := tx.Migrator().DropTable(all[i]); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			// Volumes can be exported to a maintenance device (a first install). The
			// initial migration creates the tables from today's structs, so on a new
			// database the columns exist already: add only what is missing.
			ID: "202611250001_volume_maintenance",
			Migrate: func(tx *gorm.DB) error {
				m := tx.Migrator()
				for _, col := range []string{"Maintenance", "MaintenanceDeviceID"} {
					if !m.HasColumn(&volumeMaintenance{}, col) {
						if err := m.AddColumn(&volumeMaintenance{}, col); err != nil {
							return err
						}
					}
				}
				return nil
			},
			Rollback: func(tx *gorm.DB) error {
				m := tx.Migrator()
				for _, col := range []string{"MaintenanceDeviceID", "Maintenance"} {
					if m.HasColumn(&volumeMaintenance{}, col) {
						if err := m.DropColumn(&volumeMaintenance{}, col); err != nil {
							return err
						}
					}
				}
				return nil
			},
		},
		caMigration(),
		replicationMigration(),
		groupPendingMigration(),
		serverBandwidthMigration(),
		volumeCopyMigration(),
		healthMigration(),
		transferProgressMigration(),
		bootRevisionMigration(),
		bootHistoryMigration(),
		serverSamplesMigration(),
		serverBootBoundsMigration(),
		addColumnsMigration("202612010105_operation_result", &operationResult{}, "Result"),
		vdisksMigration(),
		bootOutcomesMigration(),
		bootResultsMigration(),
		rolloutsMigration(),
		containersMigration(),
		containerStoppedMigration(),
		ctemplateCopyMigration(),
		vdiskMovingMigration(),
	}
}

// operationResult is the operations table as migration 202612010105 knows it (frozen): a
// bulk action's outcome per device.
type operationResult struct {
	Result string `gorm:"type:text"`
}

func (operationResult) TableName() string { return "operations" }

// volumeMaintenance is the volumes table as migration 202611250001 knows it (frozen: the
// Volume struct may change later, this migration must not).
type volumeMaintenance struct {
	Maintenance         bool `gorm:"not null;default:false"`
	MaintenanceDeviceID *uint
}

func (volumeMaintenance) TableName() string { return "volumes" }

// addColumnsMigration adds columns of a frozen table struct that are missing (the initial
// migration makes new databases from today's structs, where they exist already), and
// drops them on rollback.
func addColumnsMigration(id string, table any, cols ...string) *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: id,
		Migrate: func(tx *gorm.DB) error {
			m := tx.Migrator()
			for _, col := range cols {
				if !m.HasColumn(table, col) {
					if err := m.AddColumn(table, col); err != nil {
						return err
					}
				}
			}
			return nil
		},
		Rollback: func(tx *gorm.DB) error {
			m := tx.Migrator()
			for i := len(cols) - 1; i >= 0; i-- {
				if m.HasColumn(table, cols[i]) {
					if err := m.DropColumn(table, cols[i]); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
}

// createTableMigration creates a frozen table struct's table (unless it exists: the
// initial migration of a new database may have made it), and drops it on rollback.
func createTableMigration(id string, table any) *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: id,
		Migrate: func(tx *gorm.DB) error {
			if tx.Migrator().HasTable(table) {
				return nil
			}
			return tx.Migrator().CreateTable(table)
		},
		Rollback: func(tx *gorm.DB) error { return tx.Migrator().DropTable(table) },
	}
}

func migrator(db *gorm.DB) *gormigrate.Gormigrate {
	return gormigrate.New(db, &gormigrate.Options{TableName: "schema_migrations", IDColumnName: "id", IDColumnSize: 200, UseTransaction: true}, migrations())
}

// Migrate applies the pending migrations; repeating it is a no-op.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := migrator(db.WithContext(ctx)).Migrate(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// PendingMigrations lists the migrations the database has not applied yet.
func PendingMigrations(ctx context.Context, db *gorm.DB) ([]string, error) {
	var applied []string
	if db.Migrator().HasTable("schema_migrations") {
		if err := db.WithContext(ctx).Table("schema_migrations").Pluck("id", &applied).Error; err != nil {
			return nil, err
		}
	}
	done := map[string]bool{}
	for _, id := range applied {
		done[id] = true
	}
	var pending []string
	for _, m := range migrations() {
		if !done[m.ID] {
			pending = append(pending, m.ID)
		}
	}
	return pending, nil
}
