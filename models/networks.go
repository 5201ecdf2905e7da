package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

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
	MaxVDisks      int       `gorm:"column:max_vdisks;not null;default:0" json:"max_vdisks"`
	MaxContainers  int       `gorm:"column:max_containers;not null;default:0" json:"max_containers"`
	TunnelID       *uint     `json:"tunnel_id"`
	MasterServerID *uint     `json:"master_server_id"`
	DefaultGroupID *uint     `json:"default_group_id"`
	DefaultMenuID  *uint     `json:"default_menu_id"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// NetworkInput is the body of a network create or update.
type NetworkInput struct {
	Name           *string `field:"name"`
	ClientID       *uint   `field:"client_id,client"`
	MaxServers     *int    `field:"max_servers"`
	MaxDevices     *int    `field:"max_devices"`
	MaxVolumes     *int    `field:"max_volumes"`
	MaxGroups      *int    `field:"max_groups"`
	MaxVDisks      *int    `field:"max_vdisks"`
	MaxContainers  *int    `field:"max_containers"`
	TunnelID       *uint   `field:"tunnel_id,tunnel"`
	MasterServerID *uint   `field:"master_server_id,master_server,master"`
	DefaultGroupID *uint   `field:"default_group_id,default_group"`
	DefaultMenuID  *uint   `field:"default_menu_id,default_menu"`
}

func (in *NetworkInput) checkLimits() error {
	for _, l := range []struct {
		f string
		v *int
	}{{"max_servers", in.MaxServers}, {"max_devices", in.MaxDevices}, {"max_volumes", in.MaxVolumes}, {"max_groups", in.MaxGroups}, {"max_vdisks", in.MaxVDisks}, {"max_containers", in.MaxContainers}} {
		if err := checkLimitValue(l.f, l.v); err != nil {
			return err
		}
	}
	return nil
}

// ListNetworks lists the networks the actor sees.
func (s *Store) ListNetworks(ctx context.Context, a *Actor, p Page) ([]Network, int64, error) {
	return listScoped[Network](ctx, s.DB, a.scopeNetworks, p)
}

// GetNetwork loads a visible network.
func (s *Store) GetNetwork(ctx context.Context, a *Actor, id uint) (*Network, error) {
	return getScoped[Network](ctx, s.DB, a.scopeNetworks, id, "network")
}

// CreateNetwork creates a network for a client the actor administers, within the
// client's MaxNetworks. Its tunnel, master server and default group are chosen later,
// once they exist (the guide's order).
func (s *Store) CreateNetwork(ctx context.Context, a *Actor, in *NetworkInput) (*Created, error) {
	name, err := requiredName("name", in.Name, 200)
	if err != nil {
		return nil, err
	}
	if err := in.checkLimits(); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		f string
		v *uint
	}{{"tunnel_id", in.TunnelID}, {"master_server_id", in.MasterServerID}, {"default_group_id", in.DefaultGroupID}, {"default_menu_id", in.DefaultMenuID}} {
		if nonZero(r.v) != nil {
			return nil, Invalid(r.f, "can only be set on an existing network: create the network first")
		}
	}
	n := &Network{
		Name: name, ClientID: ptrOr(nonZero(in.ClientID), a.ClientID),
		MaxServers: ptrOr(in.MaxServers, 0), MaxDevices: ptrOr(in.MaxDevices, 0),
		MaxVolumes: ptrOr(in.MaxVolumes, 0), MaxGroups: ptrOr(in.MaxGroups, 0),
		MaxVDisks: ptrOr(in.MaxVDisks, 0), MaxContainers: ptrOr(in.MaxContainers, 0),
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		c, err := getScoped[Client](ctx, tx, a.allClients, n.ClientID, "client")
		if err != nil {
			return &NotFoundFieldError{Field: "client_id", What: "client"}
		}
		if !a.CanAdminClient(c.ID) {
			return Forbidden("only an admin of the client can create its networks")
		}
		if c.MaxNetworks > 0 {
			if tx.Dialector.Name() == "postgres" {
				if err := tx.Exec("SELECT id FROM clients WHERE id = ? FOR UPDATE", c.ID).Error; err != nil {
					return err
				}
			}
			var count int64
			if err := tx.Model(&Network{}).Where("client_id = ?", c.ID).Count(&count).Error; err != nil {
				return err
			}
			if count >= int64(c.MaxNetworks) {
				return Conflict("max_networks", "client %d has reached its limit of %d networks (max_networks)", c.ID, c.MaxNetworks)
			}
		}
		if err := tx.Create(n).Error; err != nil {
			return err
		}
		return audit(tx, a, &n.ID, "create", "network", n.ID, name)
	})
	if err != nil {
		return nil, err
	}
	return &Created{Object: n}, nil
}

// UpdateNetwork changes a network. Limits and the owning client are a super-admin's or
// the client admin's; the tunnel, master server, default group and menu must be objects
// of this network. Choosing a master makes it the master and the others slaves.
func (s *Store) UpdateNetwork(ctx context.Context, a *Actor, id uint, in *NetworkInput) (*Network, error) {
	var n *Network
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if n, err = a.lockNetwork(tx, id, ""); err != nil {
			return NotFound("network")
		}
		admin := a.CanAdminClient(n.ClientID)
		if in.ClientID != nil && *in.ClientID != n.ClientID {
			if !a.SuperAdmin() {
				return Forbidden("only a super-admin can move a network to another client")
			}
			if _, err := getScoped[Client](ctx, tx, a.allClients, *in.ClientID, "client"); err != nil {
				return &NotFoundFieldError{Field: "client_id", What: "client"}
			}
			n.ClientID = *in.ClientID
		}
		if in.MaxServers != nil || in.MaxDevices != nil || in.MaxVolumes != nil || in.MaxGroups != nil || in.MaxVDisks != nil || in.MaxContainers != nil {
			if !admin {
				return Forbidden("only an admin of the client can change network limits")
			}
			if err := in.checkLimits(); err != nil {
				return err
			}
			n.MaxServers, n.MaxDevices = ptrOr(in.MaxServers, n.MaxServers), ptrOr(in.MaxDevices, n.MaxDevices)
			n.MaxVolumes, n.MaxGroups = ptrOr(in.MaxVolumes, n.MaxVolumes), ptrOr(in.MaxGroups, n.MaxGroups)
			n.MaxVDisks = ptrOr(in.MaxVDisks, n.MaxVDisks)
			n.MaxContainers = ptrOr(in.MaxContainers, n.MaxContainers)
		}
		if in.Name != nil {
			if n.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		refs := []struct {
			in    *uint
			dst   **uint
			model any
			field string
			what  string
		}{
			{in.TunnelID, &n.TunnelID, &Tunnel{}, "tunnel_id", "tunnel"},
			{in.MasterServerID, &n.MasterServerID, &Server{}, "master_server_id", "server"},
			{in.DefaultGroupID, &n.DefaultGroupID, &Group{}, "default_group_id", "group"},
			{in.DefaultMenuID, &n.DefaultMenuID, &Menu{}, "default_menu_id", "menu"},
		}
		for _, r := range refs {
			if r.in == nil {
				continue
			}
			if err := refInNetwork(tx, r.model, r.in, n.ID, r.field, r.what); err != nil {
				return err
			}
			*r.dst = nonZero(r.in)
		}
		if in.MasterServerID != nil {
			if err := setMaster(tx, n.ID, n.MasterServerID); err != nil {
				return err
			}
		}
		if err := tx.Save(n).Error; err != nil {
			return err
		}
		return audit(tx, a, &n.ID, "update", "network", n.ID, "")
	})
	if err == nil && in.TunnelID != nil {
		s.syncTunnelPorts(ctx, n.ID) // the new tunnel opens the ports, the old one closes them
	}
	return n, err
}

// setMaster gives the master role to one server of a network and the slave role to the rest.
func setMaster(tx *gorm.DB, networkID uint, master *uint) error {
	if err := tx.Model(&Server{}).Where("network_id = ?", networkID).Update("role", ServerSlave).Error; err != nil {
		return err
	}
	if master == nil {
		return nil
	}
	return tx.Model(&Server{}).Where("id = ?", *master).Update("role", ServerMaster).Error
}

// DeleteNetwork deletes an empty network (no servers, volumes, groups, devices).
func (s *Store) DeleteNetwork(ctx context.Context, a *Actor, id uint) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, id, "")
		if err != nil {
			return NotFound("network")
		}
		if !a.CanAdminClient(n.ClientID) {
			return Forbidden("only an admin of the client can delete its networks")
		}
		for _, dep := range []struct {
			model any
			what  string
		}{{&Server{}, "servers"}, {&Volume{}, "volumes"}, {&Group{}, "groups"}, {&Device{}, "devices"}, {&Container{}, "containers"}, {&VDisk{}, "vdisks"}} {
			var c int64
			if err := tx.Model(dep.model).Where("network_id = ?", n.ID).Count(&c).Error; err != nil {
				return err
			}
			if c > 0 {
				return Conflict("", "network %d still has %d %s: delete them first", n.ID, c, dep.what)
			}
		}
		for _, m := range []any{&Tunnel{}, &Menu{}, &Delegation{}, &CTemplate{}} {
			if err := tx.Where("network_id = ?", n.ID).Delete(m).Error; err != nil {
				return err
			}
		}
		if err := tx.Delete(n).Error; err != nil {
			return err
		}
		return audit(tx, a, nil, "delete", "network", n.ID, n.Name)
	})
}
