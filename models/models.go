// Package models holds the panel's data: the GORM structs of the guide's hierarchy, their
// ownership scopes, the versioned migrations, and the validation and business rules that
// the REST API and the web dashboard share (one code path, so a page can never do what
// the API refuses).
package models

import (
	"time"
)

// Roles a user can hold. A super-admin sees everything; an admin manages its client's
// users and networks; a user works inside the networks it can see.
const (
	RoleSuperAdmin = "superadmin"
	RoleAdmin      = "admin"
	RoleUser       = "user"
)

// Client is the highest level of ownership: it owns users and networks.
type Client struct {
	ID          uint      `gorm:"primaryKey" json:"id"`
	Name        string    `gorm:"size:200;not null" json:"name"`
	MaxNetworks int       `gorm:"not null;default:0" json:"max_networks"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// User is a person who logs in to the panel or calls the API.
type User struct {
	ID           uint      `gorm:"primaryKey" json:"id"`
	ClientID     uint      `gorm:"not null;index" json:"client_id"`
	Email        string    `gorm:"size:254;not null;uniqueIndex" json:"email"`
	Name         string    `gorm:"size:200;not null;default:''" json:"name"`
	Role         string    `gorm:"size:20;not null;default:'user'" json:"role"`
	PasswordHash string    `gorm:"size:200;not null" json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// SuperAdmin reports whether the user sees every object of the panel.
func (u *User) SuperAdmin() bool { return u.Role == RoleSuperAdmin }

// Network groups servers, devices, volumes, groups, menus and containers; it is owned by a client.
// Limits of 0 mean unlimited.
type Network struct {
	ID             uint      `gorm:"primaryKey" json:"id"`
	ClientID       uint      `gorm:"not null;index" json:"client_id"`
	Name           string    `gorm:"size:200;not null" json:"name"`
	MaxServers     int       `gorm:"not null;default:0" json:"max_servers"`
	MaxDevices     int       `gorm:"not null;default:0" json:"max_devices"`
	MaxVolumes     int       `gorm:"not null;default:0" json:"max_volumes"`
	MaxGroups      int       `gorm:"not null;default:0" json:"max_groups"`
	TunnelID       *uint     `json:"tunnel_id"`
	MasterServerID *uint     `json:"master_server_id"`
	DefaultGroupID *uint     `json:"default_group_id"`
	DefaultMenuID  *uint     `json:"default_menu_id"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Delegation gives a non-superadmin user of another client access to a network (the guide's "pilot" icon).
type Delegation struct {
	NetworkID uint      `gorm:"primaryKey" json:"network_id"`
	UserID    uint      `gorm:"primaryKey;index" json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Tunnel is a tunnel server that relays the panel's requests to the network's nodes.
type Tunnel struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Alias     string    `gorm:"size:200;not null" json:"alias"`
	IP        string    `gorm:"size:64;not null" json:"ip"`
	KeyHash   string    `gorm:"size:64;not null;default:''" json:"-"`
	Status    string    `gorm:"size:200;not null;default:''" json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Server roles inside a network.
const (
	ServerMaster = "master"
	ServerSlave  = "slave"
)

// Server is a storage server: a ZFS pool, an agent, an iSCSI target and a boot endpoint.
type Server struct {
	ID            uint       `gorm:"primaryKey" json:"id"`
	NetworkID     uint       `gorm:"not null;index;uniqueIndex:idx_server_name" json:"network_id"`
	Name          string     `gorm:"size:200;not null;uniqueIndex:idx_server_name" json:"name"`
	IP            string     `gorm:"size:64;not null" json:"ip"`
	ReplicationIP string     `gorm:"size:64;not null;default:''" json:"replication_ip"`
	Pool          string     `gorm:"size:200;not null" json:"pool"`
	TunnelPort    int        `gorm:"not null;default:0" json:"tunnel_port"`
	Role          string     `gorm:"size:20;not null;default:'slave'" json:"role"`
	KeyHash       string     `gorm:"size:64;not null;index" json:"-"`
	Status        string     `gorm:"size:200;not null;default:'Waiting for agent'" json:"status"`
	Stats         string     `gorm:"type:text;not null;default:''" json:"-"`
	StatsAt       *time.Time `json:"stats_at"`
	PoolHealth    string     `gorm:"size:40;not null;default:''" json:"pool_health"`
	PoolSize      int64      `gorm:"not null;default:0" json:"pool_size"`
	PoolFree      int64      `gorm:"not null;default:0" json:"pool_free"`
	AgentAddr     string     `gorm:"size:200;not null;default:''" json:"agent_addr"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// ReplicationAddress is where slaves pull from: the Replication IP, or the iSCSI IP when none is set.
func (s *Server) ReplicationAddress() string {
	if s.ReplicationIP != "" {
		return s.ReplicationIP
	}
	return s.IP
}

// Object states of volumes, groups and other datasets that a workflow creates.
const (
	StatePending  = "pending"
	StateReady    = "ready"
	StateFailed   = "failed"
	StateDeleting = "deleting"
	StateDeleted  = "deleted"
)

// Volume is a thin zvol on the network's master: the base disk groups are cloned from.
type Volume struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Alias     string `gorm:"size:200;not null" json:"alias"`
	SizeGiB   int64  `gorm:"column:size_gib;not null" json:"vol_size"`
	// Maintenance: MaintenanceDeviceID boots the volume itself read-write (to install the
	// first OS).
	Maintenance         bool      `gorm:"not null;default:false" json:"maintenance"`
	MaintenanceDeviceID *uint     `json:"maintenance_device_id"`
	State               string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// Group is a clone of a volume where the OS is installed; devices boot its versions.
type Group struct {
	ID                  uint      `gorm:"primaryKey" json:"id"`
	NetworkID           uint      `gorm:"not null;index" json:"network_id"`
	Name                string    `gorm:"size:200;not null" json:"name"`
	VolumeID            uint      `gorm:"not null;index" json:"volume_id"`
	StrictVersioning    bool      `gorm:"not null;default:false" json:"strict_versioning"`
	LazyLocks           bool      `gorm:"not null;default:false" json:"lazy_locks"`
	AssignedVersionID   *uint     `json:"assigned_version_id"`
	Maintenance         bool      `gorm:"not null;default:false" json:"maintenance"`
	MaintenanceDeviceID *uint     `json:"maintenance_device_id"`
	State               string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// GroupVersion is a published snapshot of a group head, <pool>/iscsi/groups/<id>@v<N>.
type GroupVersion struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	GroupID   uint      `gorm:"not null;uniqueIndex:idx_group_version" json:"group_id"`
	Number    int       `gorm:"not null;uniqueIndex:idx_group_version" json:"number"`
	GUID      string    `gorm:"size:40;not null;default:''" json:"guid"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	Note      string    `gorm:"size:500;not null;default:''" json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// VersionCopy records that a server holds a group version (its received guid matches the master's).
type VersionCopy struct {
	VersionID  uint      `gorm:"primaryKey" json:"version_id"`
	ServerID   uint      `gorm:"primaryKey;index" json:"server_id"`
	GUID       string    `gorm:"size:40;not null" json:"guid"`
	ReceivedAt time.Time `json:"received_at"`
}

// Device is a diskless machine known by its MAC; it boots its own clone of a group version.
type Device struct {
	ID              uint       `gorm:"primaryKey" json:"id"`
	NetworkID       uint       `gorm:"not null;index;uniqueIndex:idx_device_mac" json:"network_id"`
	MAC             string     `gorm:"size:17;not null;uniqueIndex:idx_device_mac" json:"mac"`
	Name            string     `gorm:"size:200;not null;default:''" json:"name"`
	UUID            string     `gorm:"size:64;not null;default:''" json:"uuid"`
	GroupID         *uint      `gorm:"index" json:"group_id"`
	MenuID          *uint      `json:"menu_id"`
	Locked          bool       `gorm:"not null;default:false" json:"locked"`
	CloneVersionID  *uint      `json:"clone_version_id"`
	BootedVersionID *uint      `json:"booted_version_id"`
	ServerID        *uint      `json:"server_id"`
	LastBootAt      *time.Time `json:"last_boot_at"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// Menu is a per-network iPXE menu; Items holds a JSON list of entries.
type Menu struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Name      string    `gorm:"size:200;not null" json:"name"`
	Items     string    `gorm:"type:text;not null;default:'[]'" json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

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
	ID        uint      `gorm:"primaryKey" json:"id"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Name      string    `gorm:"size:200;not null" json:"name"`
	SizeGiB   int64     `gorm:"column:size_gib;not null" json:"size"`
	DeviceID  *uint     `json:"device_id"`
	State     string    `gorm:"size:20;not null;default:'pending'" json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Settings holds the panel-wide settings; there is one row, id 1.
type Settings struct {
	ID            uint      `gorm:"primaryKey" json:"-"`
	PanelHostname string    `gorm:"size:253;not null;default:''" json:"panel_hostname"`
	SMTPHost      string    `gorm:"column:smtp_host;size:253;not null;default:''" json:"smtp_host"`
	SMTPPort      int       `gorm:"column:smtp_port;not null;default:587" json:"smtp_port"`
	SMTPUser      string    `gorm:"column:smtp_user;size:253;not null;default:''" json:"smtp_user"`
	SMTPPassword  string    `gorm:"column:smtp_password;size:253;not null;default:''" json:"-"`
	SMTPFrom      string    `gorm:"column:smtp_from;size:254;not null;default:''" json:"smtp_from"`
	SMTPTLS       string    `gorm:"column:smtp_tls;size:20;not null;default:'starttls'" json:"smtp_tls"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// SMTPConfigured reports whether the panel can send mail.
func (s *Settings) SMTPConfigured() bool { return s.SMTPHost != "" && s.SMTPFrom != "" }

// APIToken authenticates API calls; only its SHA-256 is stored.
type APIToken struct {
	ID         uint       `gorm:"primaryKey" json:"id"`
	UserID     uint       `gorm:"not null;index" json:"user_id"`
	Hash       string     `gorm:"size:64;not null;uniqueIndex" json:"-"`
	Label      string     `gorm:"size:100;not null;default:''" json:"label"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastIP     string     `gorm:"size:64;not null;default:''" json:"last_ip"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Session is a dashboard login; its id is stored hashed, the cookie holds the secret.
type Session struct {
	ID        string    `gorm:"primaryKey;size:64" json:"-"`
	UserID    uint      `gorm:"not null;index" json:"user_id"`
	CSRF      string    `gorm:"size:64;not null" json:"-"`
	IP        string    `gorm:"size:64;not null;default:''" json:"ip"`
	ExpiresAt time.Time `gorm:"index" json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// AuditEvent records who changed what.
type AuditEvent struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	UserID    *uint     `gorm:"index" json:"user_id"`
	NetworkID *uint     `gorm:"index" json:"network_id"`
	Action    string    `gorm:"size:40;not null" json:"action"`
	Object    string    `gorm:"size:40;not null" json:"object"`
	ObjectID  uint      `gorm:"not null;default:0" json:"object_id"`
	IP        string    `gorm:"size:64;not null;default:''" json:"ip"`
	Detail    string    `gorm:"size:1000;not null;default:''" json:"detail"`
	CreatedAt time.Time `gorm:"index" json:"created_at"`
}

// Operation states.
const (
	OpQueued    = "queued"
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
)

// Operation links an object to the workflow that does its long work, with live progress.
type Operation struct {
	ID         uint       `gorm:"primaryKey" json:"id"`
	NetworkID  *uint      `gorm:"index" json:"network_id"`
	Kind       string     `gorm:"size:40;not null" json:"kind"`
	ObjectType string     `gorm:"size:40;not null" json:"object_type"`
	ObjectID   uint       `gorm:"not null" json:"object_id"`
	WorkflowID string     `gorm:"size:200;not null;default:'';index" json:"workflow_id"`
	RunID      string     `gorm:"size:100;not null;default:''" json:"run_id"`
	State      string     `gorm:"size:20;not null;default:'queued'" json:"state"`
	Step       string     `gorm:"size:200;not null;default:''" json:"step"`
	Percent    int        `gorm:"not null;default:0" json:"percent"`
	Message    string     `gorm:"size:1000;not null;default:''" json:"message"`
	Error      string     `gorm:"size:1000;not null;default:''" json:"error"`
	Input      string     `gorm:"type:text;not null;default:''" json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// All lists every model, in creation order, for migrations and tests.
func All() []any {
	return []any{
		&Client{}, &User{}, &Network{}, &Delegation{}, &Tunnel{}, &Server{}, &Volume{},
		&Group{}, &GroupVersion{}, &VersionCopy{}, &Device{}, &Menu{}, &CTemplate{},
		&Container{}, &VDisk{}, &Settings{}, &APIToken{}, &Session{}, &AuditEvent{}, &Operation{},
	}
}
