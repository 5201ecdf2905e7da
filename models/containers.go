package models

import "time"

// CTemplate is a container root file system template under iscsi/ctemplates.
type CTemplate struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Name      string    `gorm:"size:200;not null" json:"name"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Container is a clone of a ctemplate run on a storage server.
type Container struct {
	ID          uint      `gorm:"primaryKey" json:"id"`
	NetworkID   uint      `gorm:"not null;index" json:"network_id"`
	Name        string    `gorm:"size:200;not null" json:"name"`
	CTemplateID uint      `gorm:"column:ctemplate_id;not null" json:"ctemplate_id"`
	ServerID    *uint     `json:"server_id"`
	State       string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// VDisk is a persistent data disk under vdisks, attached to a device as a second LUN.
type VDisk struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Name      string `gorm:"size:200;not null" json:"name"`
	SizeGiB   int64  `gorm:"column:size_gib;not null" json:"size"`
	DeviceID  *uint  `json:"device_id"`
	// ServerID is where its zvol <pool>/vdisks/<id> lives: its device's server when it was
	// made, else the network's master.
	ServerID  *uint     `json:"server_id"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
