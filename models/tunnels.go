package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

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
	return s.createKeyed(ctx, a, nid, keyed{what: "tunnel", obj: t, id: &t.ID, name: &t.Alias, keyHash: &t.KeyHash,
		selected: func(n *Network) *uint { return n.TunnelID }, column: "tunnel_id"})
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
func (s *Store) DeleteTunnel(ctx context.Context, a *Actor, id uint) error {
	return deleteOwned(ctx, s, a, id, "tunnel", func(t *Tunnel) (uint, string) { return t.NetworkID, t.Alias }, func(tx *gorm.DB, t *Tunnel) error {
		return clearRefs(tx, t.ID, ref{&Network{}, "tunnel_id"})
	})
}
