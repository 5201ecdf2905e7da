package models

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"gorm.io/gorm"
)

// Tunnel is a tunnel server that relays the panel's requests to the network's nodes.
type Tunnel struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	NetworkID uint   `gorm:"not null;index" json:"network_id"`
	Alias     string `gorm:"size:200;not null" json:"alias"`
	IP        string `gorm:"size:64;not null" json:"ip"`
	KeyHash   string `gorm:"size:64;not null;default:''" json:"-"`
	Status    string `gorm:"size:200;not null;default:''" json:"status"`
	// AgentAddr is where the tunnel process listens for agents, as it registered it.
	AgentAddr string `gorm:"size:200;not null;default:''" json:"agent_addr"`
	// Agents lists the servers whose agents had a session at the last health check
	// (comma-separated ids), CheckedAt when that was.
	Agents    string     `gorm:"size:2000;not null;default:''" json:"-"`
	CheckedAt *time.Time `json:"checked_at"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
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
	if t.IP, err = s.checkIP("ip", ptrOr(in.IP, ""), true); err != nil {
		return nil, err
	}
	c, err := s.createKeyed(ctx, a, nid, keyed{what: "tunnel", obj: t, id: &t.ID, name: &t.Alias, keyHash: &t.KeyHash,
		selected: func(n *Network) *uint { return n.TunnelID }, column: "tunnel_id"})
	if err == nil {
		s.syncTunnelPorts(ctx, nid) // the network's first tunnel is selected at once
	}
	return c, err
}

// UpdateTunnel changes a tunnel's alias or address.
func (s *Store) UpdateTunnel(ctx context.Context, a *Actor, id uint, in *TunnelInput) (*Tunnel, error) {
	return updateOwned(ctx, s, a, id, "tunnel", in.NetworkID, func(t *Tunnel) uint { return t.NetworkID }, func(tx *gorm.DB, t *Tunnel) error {
		var err error
		if in.Alias != nil {
			if t.Alias, err = checkName("alias", *in.Alias, 200); err != nil {
				return err
			}
		}
		if in.IP != nil {
			if t.IP, err = s.checkIP("ip", *in.IP, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteTunnel deletes a tunnel; a network that had selected it has no tunnel afterwards.
// Its process, if it still runs, is told to close every port.
func (s *Store) DeleteTunnel(ctx context.Context, a *Actor, id uint) error {
	var nid uint
	err := deleteOwned(ctx, s, a, id, "tunnel", func(t *Tunnel) (uint, string) { return t.NetworkID, t.Alias }, func(tx *gorm.DB, t *Tunnel) error {
		nid = t.NetworkID
		return clearRefs(tx, t.ID, ref{&Network{}, "tunnel_id"})
	})
	if err == nil {
		s.syncTunnelPorts(ctx, nid, id)
	}
	return err
}

// TunnelPortSyncer moves tunnel ports as soon as a change to them commits: an Engine that
// is also a TunnelPortSyncer is told of every server added, deleted or given another
// port, and of every change of a network's tunnel. It starts (or signals) the network's
// TunnelPorts workflow and logs what it could not do: the health round's sync converges
// the ports anyway, so the change that caused it never fails for it.
type TunnelPortSyncer interface {
	// SyncTunnelPorts: closed are tunnels of the network just deleted, which close every port.
	SyncTunnelPorts(ctx context.Context, networkID uint, closed ...uint)
}

// syncTunnelPorts tells the engine that network nid's tunnel ports changed.
func (s *Store) syncTunnelPorts(ctx context.Context, nid uint, closed ...uint) {
	if ts, ok := s.Engine.(TunnelPortSyncer); ok && nid != 0 {
		ts.SyncTunnelPorts(ctx, nid, closed...)
	}
}

// TunnelByKey finds the tunnel a key was issued for; ErrBadKey when none.
func TunnelByKey(ctx context.Context, db *gorm.DB, key string) (*Tunnel, error) {
	return byKey[Tunnel](ctx, db, key, "tunnel")
}

// RegisterTunnel records a tunnel process's start and where it listens for agents.
func RegisterTunnel(ctx context.Context, db *gorm.DB, t *Tunnel, agentAddr string) error {
	t.AgentAddr, t.Status = trunc(agentAddr, 200), "Tunnel connected"
	return db.WithContext(ctx).Model(&Tunnel{}).Where("id = ?", t.ID).
		Updates(map[string]any{"agent_addr": t.AgentAddr, "status": t.Status}).Error
}

// TunnelPorts lists the tunnel ports tunnel t should have open: those of its network's
// servers while it is the network's selected tunnel, none otherwise.
func TunnelPorts(ctx context.Context, db *gorm.DB, t *Tunnel) ([]wire.TunnelPort, error) {
	db = db.WithContext(ctx)
	var n Network
	if err := db.Take(&n, t.NetworkID).Error; err != nil {
		return nil, fmt.Errorf("tunnel %d's network: %w", t.ID, err)
	}
	out := []wire.TunnelPort{}
	if n.TunnelID == nil || *n.TunnelID != t.ID {
		return out, nil
	}
	var srvs []Server
	if err := db.Where("network_id = ? AND tunnel_port > 0", n.ID).Order("id").Find(&srvs).Error; err != nil {
		return nil, fmt.Errorf("tunnel %d's servers: %w", t.ID, err)
	}
	for _, s := range srvs {
		out = append(out, wire.TunnelPort{ServerID: s.ID, Port: s.TunnelPort})
	}
	return out, nil
}

// AgentEndpoint is where agents dial the tunnel: its registered listen address, with the
// tunnel's IP for an unspecified host; "" before the tunnel process registered.
func (t *Tunnel) AgentEndpoint() string {
	host, port, err := net.SplitHostPort(t.AgentAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = t.IP
	}
	return net.JoinHostPort(host, port)
}

// SelectedTunnel returns network nid's selected tunnel, nil when it has none.
func SelectedTunnel(ctx context.Context, db *gorm.DB, nid uint) (*Tunnel, error) {
	var n Network
	if err := db.WithContext(ctx).Take(&n, nid).Error; err != nil {
		return nil, fmt.Errorf("network %d: %w", nid, err)
	}
	if n.TunnelID == nil {
		return nil, nil
	}
	var t Tunnel
	if err := db.WithContext(ctx).Take(&t, *n.TunnelID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("tunnel %d: %w", *n.TunnelID, err)
	}
	return &t, nil
}

// TunnelEndpointFor is where the agents of network nid dial their tunnel, "" when none.
func TunnelEndpointFor(ctx context.Context, db *gorm.DB, nid uint) (string, error) {
	t, err := SelectedTunnel(ctx, db, nid)
	if err != nil || t == nil {
		return "", err
	}
	return t.AgentEndpoint(), nil
}

// ConnectedAgents is the server ids of Agents.
func (t *Tunnel) ConnectedAgents() []uint {
	var out []uint
	for _, f := range strings.Split(t.Agents, ",") {
		if id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32); err == nil {
			out = append(out, uint(id))
		}
	}
	return out
}
