package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

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
	// ReplicationAddr is host:port of the agent's replication endpoint as the agent
	// advertised it; "" means the Replication IP (or iSCSI IP), port 8082.
	ReplicationAddr string `gorm:"size:200;not null;default:''" json:"replication_addr"`
	// BandwidthLimit caps what a slave pulls from its master, in bytes per second (0: unlimited).
	BandwidthLimit int64 `gorm:"not null;default:0" json:"bandwidth_limit"`
	// BootMaxProvisions and BootMaxLogins are the server's admission bounds: new disks it
	// makes at once, devices in their iSCSI login phase at once (0: the agent's default,
	// 32 and 256; an agent started with --boot-max-* keeps its flag).
	BootMaxProvisions int       `gorm:"not null;default:0" json:"boot_max_provisions"`
	BootMaxLogins     int       `gorm:"not null;default:0" json:"boot_max_logins"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// ReplicationAddress is where slaves pull from: the Replication IP, or the iSCSI IP when none is set.
func (s *Server) ReplicationAddress() string {
	if s.ReplicationIP != "" {
		return s.ReplicationIP
	}
	return s.IP
}

// ServerInput is the body of a server create or update.
type ServerInput struct {
	NetworkID      *uint   `field:"network_id,network"`
	Name           *string `field:"name"`
	IP             *string `field:"ip,iscsi_ip"`
	ReplicationIP  *string `field:"replication_ip"`
	Pool           *string `field:"pool,zfs_pool,pool_name"`
	TunnelPort     *int    `field:"tunnel_port"`
	BandwidthLimit *int64  `field:"bandwidth_limit,bandwidth"`
	// Admission bounds (0: the agent's default).
	BootMaxProvisions *int `field:"boot_max_provisions"`
	BootMaxLogins     *int `field:"boot_max_logins"`
}

// Upper limits of the admission bounds: beyond them a bound no longer protects anything.
const (
	maxBootProvisions = 1024
	maxBootLogins     = 65536
)

// checkBootBounds validates the admission bounds of in (nil: unchanged).
func checkBootBounds(in *ServerInput) error {
	if v := in.BootMaxProvisions; v != nil && (*v < 0 || *v > maxBootProvisions) {
		return Invalid("boot_max_provisions", "must be between 1 and %d new disks at once (0 for the agent's default, %d)", maxBootProvisions, wire.DefaultMaxProvisions)
	}
	if v := in.BootMaxLogins; v != nil && (*v < 0 || *v > maxBootLogins) {
		return Invalid("boot_max_logins", "must be between 1 and %d devices logging in at once (0 for the agent's default, %d)", maxBootLogins, wire.DefaultMaxLogins)
	}
	return nil
}

// checkBandwidth validates a bandwidth limit in bytes per second (0: unlimited).
func checkBandwidth(v *int64) error {
	if v != nil && *v < 0 {
		return Invalid("bandwidth_limit", "must be bytes per second, 0 for unlimited")
	}
	return nil
}

func checkPort(field string, v *int) error {
	if v != nil && (*v < 0 || *v > 65535) {
		return Invalid(field, "must be a TCP port between 1 and 65535 (0 for none)")
	}
	return nil
}

func tunnelPortFree(tx *gorm.DB, networkID uint, port int, self uint) error {
	if port == 0 {
		return nil
	}
	var n int64
	if err := tx.Model(&Server{}).Where("network_id = ? AND tunnel_port = ? AND id <> ?", networkID, port, self).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return Conflict("tunnel_port", "tunnel port %d is already used by another server of this network", port)
	}
	return nil
}

// CreateServer registers a storage server within the network's MaxServers. The first server
// of a network becomes its master (the guide). The server's key is returned once.
func (s *Store) CreateServer(ctx context.Context, a *Actor, in *ServerInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	srv := &Server{NetworkID: nid, Role: ServerSlave, Status: "Waiting for agent"}
	if srv.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	if srv.IP, err = s.checkIP("ip", ptrOr(in.IP, ""), true); err != nil {
		return nil, err
	}
	if srv.ReplicationIP, err = s.checkIP("replication_ip", ptrOr(in.ReplicationIP, ""), false); err != nil {
		return nil, err
	}
	if srv.Pool, err = checkPool(in.Pool); err != nil {
		return nil, err
	}
	if err := checkPort("tunnel_port", in.TunnelPort); err != nil {
		return nil, err
	}
	srv.TunnelPort = ptrOr(in.TunnelPort, 0)
	if err := checkBandwidth(in.BandwidthLimit); err != nil {
		return nil, err
	}
	srv.BandwidthLimit = ptrOr(in.BandwidthLimit, 0)
	if err := checkBootBounds(in); err != nil {
		return nil, err
	}
	srv.BootMaxProvisions, srv.BootMaxLogins = ptrOr(in.BootMaxProvisions, 0), ptrOr(in.BootMaxLogins, 0)
	c, err := s.createKeyed(ctx, a, nid, keyed{what: "server", obj: srv, id: &srv.ID, name: &srv.Name, keyHash: &srv.KeyHash,
		selected: func(n *Network) *uint { return n.MasterServerID }, column: "master_server_id",
		check: func(tx *gorm.DB, n *Network) error {
			if err := checkLimit(tx, &Server{}, nid, n.MaxServers, "servers", "max_servers"); err != nil {
				return err
			}
			if err := tunnelPortFree(tx, nid, srv.TunnelPort, 0); err != nil {
				return err
			}
			if n.MasterServerID == nil {
				srv.Role = ServerMaster
			}
			return nil
		},
		inserted: func(err error) error { return serverNameTaken(err, srv.Name) }})
	if err == nil && srv.TunnelPort > 0 {
		s.syncTunnelPorts(ctx, nid)
	}
	return c, err
}

// serverNameTaken is a save's error, or the conflict it means when the name is taken.
func serverNameTaken(err error, name string) error {
	if IsDuplicate(err) {
		return Conflict("name", "a server named %q already exists in this network", name)
	}
	return err
}

// UpdateServer changes a server's name, addresses, pool or tunnel port.
func (s *Store) UpdateServer(ctx context.Context, a *Actor, id uint, in *ServerInput) (*Server, error) {
	srv, err := updateOwned(ctx, s, a, id, "server", in.NetworkID, func(srv *Server) uint { return srv.NetworkID }, func(tx *gorm.DB, srv *Server) error {
		var err error
		if in.Name != nil {
			if srv.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.IP != nil {
			if srv.IP, err = s.checkIP("ip", *in.IP, true); err != nil {
				return err
			}
		}
		if in.ReplicationIP != nil {
			if srv.ReplicationIP, err = s.checkIP("replication_ip", *in.ReplicationIP, false); err != nil {
				return err
			}
		}
		if in.Pool != nil {
			if srv.Pool, err = checkPool(in.Pool); err != nil {
				return err
			}
		}
		if in.TunnelPort != nil {
			if err := checkPort("tunnel_port", in.TunnelPort); err != nil {
				return err
			}
			if err := tunnelPortFree(tx, srv.NetworkID, *in.TunnelPort, srv.ID); err != nil {
				return err
			}
			srv.TunnelPort = *in.TunnelPort
		}
		if err := checkBandwidth(in.BandwidthLimit); err != nil {
			return err
		}
		srv.BandwidthLimit = ptrOr(in.BandwidthLimit, srv.BandwidthLimit)
		if err := checkBootBounds(in); err != nil {
			return err
		}
		srv.BootMaxProvisions = ptrOr(in.BootMaxProvisions, srv.BootMaxProvisions)
		srv.BootMaxLogins = ptrOr(in.BootMaxLogins, srv.BootMaxLogins)
		return nil
	})
	if srv != nil {
		err = serverNameTaken(err, srv.Name) // only the save can find the name taken
	}
	if err == nil && in.TunnelPort != nil {
		s.syncTunnelPorts(ctx, srv.NetworkID)
	}
	return srv, err
}

// RotateServerKey issues a new key for a server (for install.sh -k); the old key stops working.
func (s *Store) RotateServerKey(ctx context.Context, a *Actor, id uint) (string, error) {
	secret := NewSecret("cdk_")
	err := s.tx(ctx, func(tx *gorm.DB) error {
		srv, err := getScoped[Server](ctx, tx, a.scopeNetworkOwned, id, "server")
		if err != nil {
			return err
		}
		if err := tx.Model(srv).Update("key_hash", HashSecret(secret)).Error; err != nil {
			return err
		}
		return audit(tx, a, &srv.NetworkID, "rotate-key", "server", srv.ID, "")
	})
	return secret, err
}

// DeleteServer removes a server. The master can only go while it is the network's last
// server: choose another master first.
func (s *Store) DeleteServer(ctx context.Context, a *Actor, id uint) error {
	var nid uint
	err := deleteOwned(ctx, s, a, id, "server", func(srv *Server) (uint, string) { return srv.NetworkID, srv.Name }, func(tx *gorm.DB, srv *Server) error {
		nid = srv.NetworkID
		n, err := a.lockNetwork(tx, srv.NetworkID, "")
		if err != nil {
			return err
		}
		if n.MasterServerID != nil && *n.MasterServerID == srv.ID {
			var others int64
			if err := tx.Model(&Server{}).Where("network_id = ? AND id <> ?", n.ID, srv.ID).Count(&others).Error; err != nil {
				return err
			}
			if others > 0 {
				return Conflict("", "server %d is the network's master: choose another master server first", srv.ID)
			}
			if err := tx.Model(n).Update("master_server_id", nil).Error; err != nil {
				return err
			}
		}
		if _, err := bumpBoot(tx, srv.NetworkID, AllDevices); err != nil {
			return err
		}
		if err := clearRefs(tx, srv.ID, ref{&Device{}, "server_id"}, ref{&Container{}, "server_id"}); err != nil {
			return err
		}
		if err := tx.Where("server_id = ?", srv.ID).Delete(&VolumeCopy{}).Error; err != nil {
			return err
		}
		if err := tx.Where("server_id = ?", srv.ID).Delete(&ServerSample{}).Error; err != nil {
			return err
		}
		return tx.Where("server_id = ?", srv.ID).Delete(&VersionCopy{}).Error
	})
	if err == nil {
		s.syncTunnelPorts(ctx, nid) // its tunnel port closes
	}
	return err
}

// ServerStats is the body of /servers/<name>/stats.json.
type ServerStats struct {
	ID         uint            `json:"id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	PoolHealth string          `json:"pool_health"`
	PoolSize   int64           `json:"pool_size"`
	PoolFree   int64           `json:"pool_free"`
	StatsAt    any             `json:"stats_at"`
	Stats      json.RawMessage `json:"stats"`
}

// FindServer loads a visible server by id or by name; a name that several visible
// networks use is a conflict that asks for the id.
func (s *Store) FindServer(ctx context.Context, a *Actor, key string) (*Server, error) {
	var list []Server
	q := a.scopeNetworkOwned(s.DB.WithContext(ctx).Model(&Server{}))
	if err := q.Where("name = ?", key).Limit(2).Find(&list).Error; err != nil {
		return nil, err
	}
	switch len(list) {
	case 1:
		return &list[0], nil
	case 2:
		return nil, Conflict("name", "several servers are named %q: use the server's id", key)
	}
	var id uint
	for _, c := range key {
		if c < '0' || c > '9' || id > 1<<28 {
			return nil, NotFound("server")
		}
		id = id*10 + uint(c-'0')
	}
	if key == "" {
		return nil, NotFound("server")
	}
	return GetOwned[Server](ctx, s, a, id, "server")
}

// Stats returns a server's last reported stats.
func (srv *Server) StatsView() ServerStats {
	raw := json.RawMessage(srv.Stats)
	if len(raw) == 0 || !json.Valid(raw) {
		raw = json.RawMessage("{}")
	}
	var at any
	if srv.StatsAt != nil {
		at = srv.StatsAt
	}
	return ServerStats{ID: srv.ID, Name: srv.Name, Status: srv.Status, PoolHealth: srv.PoolHealth,
		PoolSize: srv.PoolSize, PoolFree: srv.PoolFree, StatsAt: at, Stats: raw}
}

// Reachable reports whether the panel's last look at the server got through its tunnel
// (a status of "Panel to server OK", possibly followed by a note about the pool).
func (s *Server) Reachable() bool { return strings.HasPrefix(s.Status, StatusPanelOK) }

// StatusPanelOK is the server status the guide asks to check after install.
const StatusPanelOK = "Panel to server OK"

// PoolMissing is the pool health recorded when the agent finds no pool of the server's name.
const PoolMissing = wire.PoolMissing

// StatsReport is what an agent reports about its pool (a wire message).
type StatsReport = wire.StatsReport

// RecordServerStats stores a server's latest stats, marks it reachable ("Panel to server
// OK") and keeps a sample of its figures for its charts.
func RecordServerStats(ctx context.Context, db *gorm.DB, serverID uint, r *StatsReport) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return recordStats(tx, serverID, r) })
}

func recordStats(tx *gorm.DB, serverID uint, r *StatsReport) error {
	detail := r.Detail
	if len(detail) == 0 || !json.Valid(detail) {
		detail = json.RawMessage("{}")
	}
	status := StatusPanelOK
	switch r.PoolHealth {
	case "ONLINE":
	case PoolMissing:
		status += "; pool missing"
	default:
		status += "; pool " + strings.ToLower(r.PoolHealth)
	}
	now := time.Now()
	res := tx.Model(&Server{}).Where("id = ?", serverID).Updates(map[string]any{
		"status": status, "pool_health": trunc(r.PoolHealth, 40), "pool_size": r.PoolSize, "pool_free": r.PoolFree,
		"stats": string(detail), "stats_at": now,
	})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return NotFound("server")
	}
	return recordSample(tx, serverID, r, now)
}

// ErrBadKey is a server or tunnel key that names none.
var ErrBadKey = errors.New("unknown key")

// ErrBadServerKey is a server key that names no server.
var ErrBadServerKey = ErrBadKey

// ServerByKey finds the server a key was issued for (install.sh -k); ErrBadServerKey when none.
func ServerByKey(ctx context.Context, db *gorm.DB, key string) (*Server, error) {
	return byKey[Server](ctx, db, key, "server")
}

// ServerByCert finds the server an agent certificate speaks for: the server its identity
// names, in the network it names, to which the panel issued the certificate (its SHA-256
// in hex, of the DER) — a deleted server's certificates name none. ErrBadKey when none.
// The caller has checked that the certificate chains to the panel CA.
func ServerByCert(ctx context.Context, db *gorm.DB, networkID, serverID uint, sha256Hex string) (*Server, error) {
	var srv Server
	err := db.WithContext(ctx).Where("id = ? AND network_id = ? AND EXISTS (SELECT 1 FROM agent_certs WHERE agent_certs.server_id = servers.id AND agent_certs.sha256 = ?)",
		serverID, networkID, sha256Hex).Take(&srv).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, fmt.Errorf("server lookup: %w", err)
	}
	return &srv, nil
}

// byKey finds the server or tunnel (what) a key was issued for; ErrBadKey when none.
func byKey[T any](ctx context.Context, db *gorm.DB, key, what string) (*T, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, ErrBadKey
	}
	var v T
	err := db.WithContext(ctx).Where("key_hash = ?", HashSecret(key)).Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, fmt.Errorf("%s lookup: %w", what, err)
	}
	return &v, nil
}

// RegisterAgent records an agent's start for its server (its address, when it gave one)
// and queues the server's bootstrap operation.
func (s *Store) RegisterAgent(ctx context.Context, srv *Server, agentAddr string) (*Operation, error) {
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&Server{}).Where("id = ?", srv.ID).Updates(map[string]any{
			"agent_addr": trunc(agentAddr, 200), "status": "Agent connected; bootstrapping",
		}).Error; err != nil {
			return err
		}
		var err error
		op, err = newOperation(tx, srv.NetworkID, OpServerBootstrap, srv.ID, OperationInput{})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return op, nil
}

// serverBandwidthMigration adds the servers' bandwidth limit (replication pulls).
func serverBandwidthMigration() *gormigrate.Migration {
	return addColumnsMigration("202611300202_server_bandwidth_limit", &serverBandwidth{}, "BandwidthLimit")
}

// serverBandwidth is the servers table as migration 202611300202 knows it (frozen).
type serverBandwidth struct {
	BandwidthLimit int64 `gorm:"not null;default:0"`
}

func (serverBandwidth) TableName() string { return "servers" }

// serverBootBoundsMigration adds the servers' admission bounds.
func serverBootBoundsMigration() *gormigrate.Migration {
	return addColumnsMigration("202612010045_server_boot_bounds", &serverBootBounds{}, "BootMaxProvisions", "BootMaxLogins")
}

// serverBootBounds is the servers table as migration 202612010045 knows it (frozen).
type serverBootBounds struct {
	BootMaxProvisions int `gorm:"not null;default:0"`
	BootMaxLogins     int `gorm:"not null;default:0"`
}

func (serverBootBounds) TableName() string { return "servers" }
