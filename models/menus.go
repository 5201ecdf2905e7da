package models

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Menu is a per-network iPXE menu; Items holds a JSON list of entries.
type Menu struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Name      string    `gorm:"size:200;not null" json:"name"`
	Items     string    `gorm:"type:text;not null;default:'[]'" json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MenuItem is one entry of an iPXE menu.
type MenuItem struct {
	Type    string `json:"type"` // group, local, chain
	Label   string `json:"label"`
	GroupID uint   `json:"group_id,omitempty"`
	URL     string `json:"url,omitempty"`
}

// MenuView is a menu with its items decoded, as the API shows it.
type MenuView struct {
	Menu
	Items []MenuItem `json:"items"`
}

// View decodes a menu's items.
func (m *Menu) View() MenuView {
	v := MenuView{Menu: *m, Items: []MenuItem{}}
	_ = json.Unmarshal([]byte(m.Items), &v.Items)
	return v
}

// MenuInput is the body of a menu create or update.
type MenuInput struct {
	NetworkID *uint       `field:"network_id,network"`
	Name      *string     `field:"name"`
	Items     *[]MenuItem `field:"items"`
}

// MaxMenuURL bounds a chain item's URL (browsers and iPXE handle far less than the
// request body's megabyte).
const MaxMenuURL = 2048

func checkMenuItems(tx *gorm.DB, networkID uint, items []MenuItem) (string, error) {
	if len(items) > 100 {
		return "", Invalid("items", "a menu holds at most 100 items")
	}
	for i := range items {
		it := &items[i]
		label, err := checkName("items", it.Label, 100)
		if err != nil {
			return "", Invalid("items", "item %d needs a label of 1 to 100 characters", i+1)
		}
		it.Label = label
		switch it.Type {
		case "group":
			if err := refInNetwork(tx, &Group{}, &it.GroupID, networkID, "items", "group"); err != nil || it.GroupID == 0 {
				return "", Invalid("items", "item %d: group %d is not in network %d", i+1, it.GroupID, networkID)
			}
			it.URL = ""
		case "local":
			it.GroupID, it.URL = 0, ""
		case "chain":
			if len(it.URL) > MaxMenuURL {
				return "", Invalid("items", "item %d: url must be at most %d characters", i+1, MaxMenuURL)
			}
			// The URL goes into an iPXE script: one line, printable, with a host.
			u, err := url.Parse(it.URL)
			if !strings.HasPrefix(it.URL, "http://") && !strings.HasPrefix(it.URL, "https://") || err != nil || u.Host == "" ||
				strings.IndexFunc(it.URL, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
				return "", Invalid("items", "item %d: url must be an http:// or https:// address", i+1)
			}
			it.GroupID = 0
		default:
			return "", Invalid("items", "item %d: type must be group, local or chain", i+1)
		}
	}
	b, err := json.Marshal(items)
	return string(b), err
}

// CreateMenu creates an iPXE menu for a network.
func (s *Store) CreateMenu(ctx context.Context, a *Actor, in *MenuInput) (*Created, error) {
	nid, err := requireNetwork(in.NetworkID)
	if err != nil {
		return nil, err
	}
	m := &Menu{NetworkID: nid, Items: "[]"}
	if m.Name, err = requiredName("name", in.Name, 200); err != nil {
		return nil, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if _, err := a.lockNetwork(tx, nid, "network_id"); err != nil {
			return err
		}
		if in.Items != nil {
			if m.Items, err = checkMenuItems(tx, nid, *in.Items); err != nil {
				return err
			}
		}
		if err := tx.Create(m).Error; err != nil {
			return err
		}
		return audit(tx, a, &nid, "create", "menu", m.ID, m.Name)
	})
	if err != nil {
		return nil, err
	}
	v := m.View()
	return &Created{Object: &v}, nil
}

// UpdateMenu changes a menu's name or items.
func (s *Store) UpdateMenu(ctx context.Context, a *Actor, id uint, in *MenuInput) (*MenuView, error) {
	m, err := updateOwned(ctx, s, a, id, "menu", in.NetworkID, func(m *Menu) uint { return m.NetworkID }, func(tx *gorm.DB, m *Menu) error {
		var err error
		if in.Name != nil {
			if m.Name, err = checkName("name", *in.Name, 200); err != nil {
				return err
			}
		}
		if in.Items != nil {
			if m.Items, err = checkMenuItems(tx, m.NetworkID, *in.Items); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v := m.View()
	return &v, nil
}

// DeleteMenu deletes a menu; devices and networks that chose it fall back to none.
func (s *Store) DeleteMenu(ctx context.Context, a *Actor, id uint) error {
	return deleteOwned(ctx, s, a, id, "menu", func(m *Menu) (uint, string) { return m.NetworkID, m.Name }, func(tx *gorm.DB, m *Menu) error {
		if _, err := bumpBoot(tx, m.NetworkID, AllDevices); err != nil {
			return err
		}
		return clearRefs(tx, m.ID, ref{&Device{}, "menu_id"}, ref{&Network{}, "default_menu_id"})
	})
}
