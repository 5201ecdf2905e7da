package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// PanelCA is the panel's certificate authority, which signs the agents' client
// certificates: one row (id 1), made the first time the panel needs it and kept for good,
// since every agent certificate chains to it. Every panel behind the load balancer signs
// with the same one.
type PanelCA struct {
	ID        uint   `gorm:"primaryKey"`
	CertPEM   string `gorm:"type:text;not null"`
	KeyPEM    string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

// TableName keeps the name migration 202611300001 made.
func (PanelCA) TableName() string { return "panel_cas" }

// AgentCert is a certificate the panel CA issued to a server's agent, so the panel knows
// which certificates speak for a server (to pin them, and to tell a renewal from a restart).
type AgentCert struct {
	ID       uint      `gorm:"primaryKey"`
	ServerID uint      `gorm:"not null;index"`
	Serial   string    `gorm:"size:64;not null;uniqueIndex"`   // hex
	SHA256   string    `gorm:"column:sha256;size:64;not null"` // of the DER, hex
	NotAfter time.Time `gorm:"not null"`
	// CreatedAt is when it was issued.
	CreatedAt time.Time
}

// TableName keeps the name migration 202611300001 made.
func (AgentCert) TableName() string { return "agent_certs" }

// LoadPanelCA returns the panel's CA, making it with create when the database has none
// yet. Two panels making it at once keep one: the loser reads the winner's.
func LoadPanelCA(ctx context.Context, db *gorm.DB, create func() (certPEM, keyPEM string, err error)) (*PanelCA, error) {
	db = db.WithContext(ctx)
	var ca PanelCA
	err := db.Take(&ca, 1).Error
	if err == nil {
		return &ca, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("load the panel CA: %w", err)
	}
	certPEM, keyPEM, err := create()
	if err != nil {
		return nil, fmt.Errorf("create the panel CA: %w", err)
	}
	ca = PanelCA{ID: 1, CertPEM: certPEM, KeyPEM: keyPEM}
	if err := db.Create(&ca).Error; err != nil {
		if !IsDuplicate(err) {
			return nil, fmt.Errorf("store the panel CA: %w", err)
		}
		if err := db.Take(&ca, 1).Error; err != nil {
			return nil, fmt.Errorf("load the panel CA: %w", err)
		}
	}
	return &ca, nil
}

// RecordAgentCert stores that the CA issued c.
func RecordAgentCert(ctx context.Context, db *gorm.DB, c *AgentCert) error {
	if err := db.WithContext(ctx).Create(c).Error; err != nil {
		return fmt.Errorf("record the certificate of server %d: %w", c.ServerID, err)
	}
	return nil
}

// AgentCerts lists the certificates issued to a server's agent, oldest first.
func AgentCerts(ctx context.Context, db *gorm.DB, serverID uint) ([]AgentCert, error) {
	var out []AgentCert
	err := db.WithContext(ctx).Where("server_id = ?", serverID).Order("id").Find(&out).Error
	return out, err
}

// caMigration adds the panel CA and the issued agent certificates.
func caMigration() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611300001_panel_ca",
		Migrate: func(tx *gorm.DB) error {
			return tx.Migrator().CreateTable(&caMigrationCA{}, &caMigrationCert{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable(&caMigrationCert{}, &caMigrationCA{})
		},
	}
}

// caMigrationCA and caMigrationCert are the tables as migration 202611300001 makes them
// (frozen: PanelCA and AgentCert may change later, this migration must not).
type caMigrationCA struct {
	ID        uint   `gorm:"primaryKey"`
	CertPEM   string `gorm:"type:text;not null"`
	KeyPEM    string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

func (caMigrationCA) TableName() string { return "panel_cas" }

type caMigrationCert struct {
	ID        uint      `gorm:"primaryKey"`
	ServerID  uint      `gorm:"not null;index:idx_agent_certs_server_id"`
	Serial    string    `gorm:"size:64;not null;uniqueIndex:idx_agent_certs_serial"`
	SHA256    string    `gorm:"column:sha256;size:64;not null"`
	NotAfter  time.Time `gorm:"not null"`
	CreatedAt time.Time
}

func (caMigrationCert) TableName() string { return "agent_certs" }
