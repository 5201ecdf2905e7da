package models

import (
	"context"
	"encoding/json"

	"gorm.io/gorm"
)

// ListOwned lists one page of a network-owned kind the actor sees, optionally in one network.
func ListOwned[T any](ctx context.Context, s *Store, a *Actor, p Page, networkID uint) ([]T, int64, error) {
	if networkID != 0 {
		return listScoped[T](ctx, s.DB, a.scopeNetworkOwned, p, "network_id = ?", networkID)
	}
	return listScoped[T](ctx, s.DB, a.scopeNetworkOwned, p)
}

// GetOwned loads one visible network-owned object.
func GetOwned[T any](ctx context.Context, s *Store, a *Actor, id uint, what string) (*T, error) {
	return getScoped[T](ctx, s.DB, a.scopeNetworkOwned, id, what)
}

func requireNetwork(v *uint) (uint, error) {
	if v == nil || *v == 0 {
		return 0, Invalid("network_id", "is required (the id of the network)")
	}
	return *v, nil
}

// TunnelInput is the body of a tunnel create or update.
type TunnelInput struct {
	NetworkID *uint   `field:"network_id,network"`
	Alias     *string `field:"alias"`
	IP        *string `field:"ip"`
}

// CreateTunnel creates a tunnel server for a network; the network's first tunnel is selected.
func (s *Store) CreateTunnel(ctx context.Context, a *Actor, in *TunnelInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	t := &Tunnel{NetworkID: nid, Status: "Waiting for tunnel"}
	if t.Alias, err = requiredName("alias", in.Alias, 200); err != nil {
		return nil, err
	}
	if t.IP, err = checkIP("ip", ptrOr(in.IP, ""), true); err != nil {
		return nil, err
	}
	var secret string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		secret = NewSecret("cdk_")
		t.KeyHash = HashSecret(secret)
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		if n.TunnelID == nil {
			if err := tx.Model(n).Update("tunnel_id", t.ID).Error; err != nil {
				return err
			}
		}
		return audit(tx, a, &nid, "create", "tunnel", t.ID, t.Alias)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: t, Secret: secret}, nil
}

// UpdateTunnel changes a tunnel's alias or address.
func (s *Store) UpdateTunnel(ctx context.Context, a *Actor, id uint, in *TunnelInput) (*Tunnel, error) {
	var t *Tunnel
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = getScoped[Tunnel](ctx, tx, a.scopeNetworkOwned, id, "tunnel"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != t.NetworkID {
			return Invalid("network_id", "a tunnel cannot move to another network")
		}
		if in.Alias != nil {
			if t.Alias, err = checkName("alias", *in.Alias, 200); err != nil {
				return err
			}
		}
		if in.IP != nil {
			if t.IP, err = checkIP("ip", *in.IP, true); err != nil {
				return err
			}
		}
		if err := tx.Save(t).Error; err != nil {
			return err
		}
		return audit(tx, a, &t.NetworkID, "update", "tunnel", t.ID, "")
	})
	return t, err
}

// DeleteTunnel deletes a tunnel; a network that had selected it has no tunnel afterwards.
func (s *Store) DeleteTunnel(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		t, err := getScoped[Tunnel](ctx, tx, a.scopeNetworkOwned, id, "tunnel")
		if err != nil {
			return err
		}
		if err := tx.Model(&Network{}).Where("tunnel_id = ?", t.ID).Update("tunnel_id", nil).Error; err != nil {
			return err
		}
		if err := tx.Delete(t).Error; err != nil {
			return err
		}
		return audit(tx, a, &t.NetworkID, "delete", "tunnel", t.ID, t.Alias)
	})
}

// ServerInput is the body of a server create or update.
type ServerInput struct {
	NetworkID     *uint   `field:"network_id,network"`
	Name          *string `field:"name"`
	IP            *string `field:"ip,iscsi_ip"`
	ReplicationIP *string `field:"replication_ip"`
	Pool          *string `field:"pool,zfs_pool,pool_name"`
	TunnelPort    *int    `field:"tunnel_port"`
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
	if srv.IP, err = checkIP("ip", ptrOr(in.IP, ""), true); err != nil {
		return nil, err
	}
	if srv.ReplicationIP, err = checkIP("replication_ip", ptrOr(in.ReplicationIP, ""), false); err != nil {
		return nil, err
	}
	if srv.Pool, err = checkPool(in.Pool); err != nil {
		return nil, err
	}
	if err := checkPort("tunnel_port", in.TunnelPort); err != nil {
		return nil, err
	}
	srv.TunnelPort = ptrOr(in.TunnelPort, 0)
	secret := NewSecret("cdk_")
	srv.KeyHash = HashSecret(secret)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, nid, "network_id")
		if err != nil {
			return err
		}
		if err := checkLimit(tx, &Server{}, nid, n.MaxServers, "servers", "max_servers"); err != nil {
			return err
		}
		if err := tunnelPortFree(tx, nid, srv.TunnelPort, 0); err != nil {
			return err
		}
		if n.MasterServerID == nil {
			srv.Role = ServerMaster
		}
		if err := tx.Create(srv).Error; err != nil {
			if IsDuplicate(err) {
				return Conflict("name", "a server named %q already exists in this network", srv.Name)
			}
			return err
		}
		if n.MasterServerID == nil {
			if err := tx.Model(n).Update("master_server_id", srv.ID).Error; err != nil {
				return err
			}
		}
		return audit(tx, a, &nid, "create", "server", srv.ID, srv.Name)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: srv, Secret: secret}, nil
}

// UpdateServer changes a server's name, addresses, pool or tunnel port.
func (s *Store) UpdateServer(ctx context.Context, a *Actor, id uint, in *ServerInput) (*Server, error) {
	var srv *Server
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if srv, err = getScoped[Server](ctx, tx, a.scopeNetworkOwned, id, "server"); err != nil {
			return err
		}
		if in.NetworkID != nil && *in.NetworkID != srv.NetworkID {
			return Invalid("network_id", "a server cannot move to another network")
		}
		if in.Name != nil {
			if srv.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.IP != nil {
			if srv.IP, err = checkIP("ip", *in.IP, true); err != nil {
				return err
			}
		}
		if in.ReplicationIP != nil {
			if srv.ReplicationIP, err = checkIP("replication_ip", *in.ReplicationIP, false); err != nil {
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
		if err := tx.Save(srv).Error; err != nil {
			if IsDuplicate(err) {
				return Conflict("name", "a server named %q already exists in this network", srv.Name)
			}
			return err
		}
		return audit(tx, a, &srv.NetworkID, "update", "server", srv.ID, "")
	})
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
	return s.tx(ctx, func(tx *gorm.DB) error {
		srv, err := getScoped[Server](ctx, tx, a.scopeNetworkOwned, id, "server")
		if err != nil {
			return err
		}
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
		for _, q := range []struct {
			model any
			col   string
		}{{&Device{}, "server_id"}, {&Container{}, "server_id"}} {
			if err := tx.Model(q.model).Where(q.col+" = ?", srv.ID).Update(q.col, nil).Error; err != nil {
				return err
			}
		}
		if err := tx.Where("server_id = ?", srv.ID).Delete(&VersionCopy{}).Error; err != nil {
			return err
		}
		if err := tx.Delete(srv).Error; err != nil {
			return err
		}
		return audit(tx, a, &srv.NetworkID, "delete", "server", srv.ID, srv.Name)
	})
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
