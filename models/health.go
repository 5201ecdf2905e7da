package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// Health classes: the stable names of the alerts the health check stores, one per kind of
// object it checks. An alert's key names the object ("server/<id>", "tunnel/<id>",
// "container/<id>").
const (
	HealthServer = "server_unreachable"
	HealthTunnel = "tunnel_down"
	// HealthContainer: a container's machine failed or ended while its operator wants it
	// running, judged from the container units its server's agent reports.
	HealthContainer = "container_failed"
)

// Health states of a checked object.
const (
	HealthUnknown = ""
	HealthUp      = "up"
	HealthDown    = "down"
)

// Alert event kinds: an object went down, came back, started or stopped flapping.
const (
	EventDown     = "down"
	EventUp       = "up"
	EventFlapping = "flapping"
	EventStable   = "stable"
)

// HealthState is what the health check knows of one server or tunnel: its state and the
// consecutive results that lead to the next change.
type HealthState struct {
	ID        uint   `gorm:"primaryKey"`
	Key       string `gorm:"column:object_key;size:100;not null;uniqueIndex"`
	Class     string `gorm:"size:40;not null"`
	NetworkID uint   `gorm:"not null;index"`
	ObjectID  uint   `gorm:"not null"`
	Name      string `gorm:"size:200;not null;default:''"`
	State     string `gorm:"size:10;not null;default:''"`
	Fails     int    `gorm:"not null;default:0"`
	Oks       int    `gorm:"not null;default:0"`
	// DownMailed: the users were told it is down, so they get the recovery mail.
	DownMailed bool `gorm:"not null;default:false"`
	Flapping   bool `gorm:"not null;default:false"`
	// Changes are the unix times of its recent state changes, comma-separated.
	Changes   string `gorm:"size:1000;not null;default:''"`
	LastError string `gorm:"size:500;not null;default:''"`
	ChangedAt *time.Time
	UpdatedAt time.Time
}

// AlertEvent is one recorded change of a checked object, mailed (Mailed) to every user
// who can see its network unless it was one of a flapping object's changes.
type AlertEvent struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	Class     string    `gorm:"size:40;not null;index" json:"class"`
	Key       string    `gorm:"column:object_key;size:100;not null;index" json:"key"`
	NetworkID uint      `gorm:"not null;index" json:"network_id"`
	Kind      string    `gorm:"size:20;not null" json:"kind"`
	Name      string    `gorm:"size:200;not null;default:''" json:"name"`
	Message   string    `gorm:"size:1000;not null;default:''" json:"message"`
	Link      string    `gorm:"size:200;not null;default:''" json:"link"`
	Mailed    bool      `gorm:"not null;default:false" json:"mailed"`
	CreatedAt time.Time `json:"created_at"`
}

// HealthRules say when a run of results changes an object's state.
type HealthRules struct {
	// Failures is how many consecutive failed checks make an object down, and how many
	// consecutive good ones make it up again (default 3).
	Failures int
	// FlapChanges state changes within FlapWindow make an object flapping: one mail, and
	// none for its changes until it has been stable for FlapWindow (defaults 4, 10 min).
	FlapChanges int
	FlapWindow  time.Duration
	// Grace is how long after a tunnel came up its servers' failures do not count: its
	// agents are still reconnecting (default 30 s; agents redial within about 13 s).
	Grace time.Duration
}

func (r HealthRules) withDefaults() HealthRules {
	if r.Failures <= 0 {
		r.Failures = 3
	}
	if r.FlapChanges <= 0 {
		r.FlapChanges = 4
	}
	if r.FlapWindow <= 0 {
		r.FlapWindow = 10 * time.Minute
	}
	if r.Grace <= 0 {
		r.Grace = 30 * time.Second
	}
	return r
}

// HealthResult is one check of a server (through its tunnel) or a tunnel. Skip: the
// server could not be checked because its tunnel is failing; it counts neither way, so a
// tunnel down gives one tunnel alert, not one per server.
type HealthResult struct {
	Class     string
	NetworkID uint
	ObjectID  uint
	Name      string
	OK        bool
	Skip      bool
	Error     string
}

// Key is the stable key of the checked object.
func (r HealthResult) Key() string { return HealthKey(r.Class, r.ObjectID) }

// HealthKey is the key of object id of a class.
func HealthKey(class string, id uint) string {
	switch class {
	case HealthTunnel:
		return fmt.Sprintf("tunnel/%d", id)
	case HealthContainer:
		return fmt.Sprintf("container/%d", id)
	}
	return fmt.Sprintf("server/%d", id)
}

// RecordHealth applies a round of results to the stored states and returns the alert
// events the round caused, each stored once. A change from the unknown state (the first
// results after the panel started checking an object) is recorded but mailed to nobody.
func RecordHealth(ctx context.Context, db *gorm.DB, results []HealthResult, rules HealthRules, now time.Time) ([]AlertEvent, error) {
	rules = rules.withDefaults()
	var events []AlertEvent
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, r := range results {
			var st HealthState
			err := tx.Where("object_key = ?", r.Key()).Take(&st).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				st = HealthState{Key: r.Key(), Class: r.Class, NetworkID: r.NetworkID, ObjectID: r.ObjectID}
			} else if err != nil {
				return err
			}
			st.Name, st.NetworkID = r.Name, r.NetworkID
			evs := st.apply(r, rules, now)
			if err := tx.Save(&st).Error; err != nil {
				return err
			}
			for i := range evs {
				if err := tx.Create(&evs[i]).Error; err != nil {
					return err
				}
			}
			if len(evs) > 0 {
				if err := markObject(tx, &st, now); err != nil {
					return err
				}
			}
			events = append(events, evs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record health: %w", err)
	}
	return events, nil
}

// apply counts one result and returns the events it causes.
func (st *HealthState) apply(r HealthResult, rules HealthRules, now time.Time) []AlertEvent {
	if r.Skip {
		st.Fails, st.Oks = 0, 0
		return nil
	}
	if r.OK {
		st.Oks, st.Fails = st.Oks+1, 0
	} else {
		st.Fails, st.Oks = st.Fails+1, 0
		st.LastError = trunc(r.Error, 500)
	}
	recent := st.recentChanges(now, rules.FlapWindow)
	var evs []AlertEvent
	ev := func(kind string, mail bool) {
		evs = append(evs, AlertEvent{Class: st.Class, Key: st.Key, NetworkID: st.NetworkID, Kind: kind, Name: st.Name,
			Message: st.message(kind), Link: st.link(), Mailed: mail})
	}
	next := st.State
	switch {
	case st.State != HealthDown && st.Fails >= rules.Failures:
		next = HealthDown
	case st.State != HealthUp && st.Oks >= rules.Failures:
		next = HealthUp
	}
	if next != st.State {
		from := st.State
		st.State = next
		st.ChangedAt = &now
		if from != HealthUnknown { // a first look is no change of the object
			recent = append(recent, now.Unix())
		}
		switch {
		case from == HealthUnknown && next == HealthUp:
			// A first look finding it up is no news.
		case from == HealthUnknown:
			ev(EventDown, false)
		case !st.Flapping && len(recent) >= rules.FlapChanges:
			st.Flapping = true
			ev(EventFlapping, true)
		case st.Flapping:
			ev(next, false)
		case next == HealthDown:
			st.DownMailed = true
			ev(EventDown, true)
		default:
			ev(EventUp, st.DownMailed)
			st.DownMailed = false
		}
	} else if st.Flapping && (st.ChangedAt == nil || now.Sub(*st.ChangedAt) >= rules.FlapWindow) {
		st.Flapping = false
		st.DownMailed = st.State == HealthDown
		ev(EventStable, true)
	}
	st.Changes = joinTimes(recent)
	return evs
}

func (st *HealthState) recentChanges(now time.Time, window time.Duration) []int64 {
	var out []int64
	for _, f := range strings.Split(st.Changes, ",") {
		if t, err := strconv.ParseInt(f, 10, 64); err == nil && now.Sub(time.Unix(t, 0)) < window {
			out = append(out, t)
		}
	}
	return out
}

func joinTimes(ts []int64) string {
	if len(ts) > 50 {
		ts = ts[len(ts)-50:]
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatInt(t, 10)
	}
	return strings.Join(parts, ",")
}

func (st *HealthState) what() string {
	switch st.Class {
	case HealthTunnel:
		return fmt.Sprintf("tunnel server %q", st.Name)
	case HealthContainer:
		return fmt.Sprintf("container %q", st.Name)
	}
	return fmt.Sprintf("server %q", st.Name)
}

func (st *HealthState) link() string {
	switch st.Class {
	case HealthTunnel:
		return fmt.Sprintf("/tunnels/%d/edit", st.ObjectID)
	case HealthContainer:
		return fmt.Sprintf("/containers/%d", st.ObjectID)
	}
	return fmt.Sprintf("/servers/%d", st.ObjectID)
}

func (st *HealthState) message(kind string) string {
	switch kind {
	case EventDown:
		if st.Class == HealthTunnel {
			return fmt.Sprintf("The %s is down (%s): the panel cannot reach the servers behind it. Check that `clusterducks tunnel` runs.", st.what(), st.LastError)
		}
		if st.Class == HealthContainer {
			return fmt.Sprintf("The %s is not running: %s. Read its journal on its page, then start it again (or stop it, if it is meant to be down).", st.what(), st.LastError)
		}
		return fmt.Sprintf("The %s is unreachable through its tunnel (%s): check its agent and its tunnel port.", st.what(), st.LastError)
	case EventUp:
		if st.Class == HealthContainer {
			return fmt.Sprintf("The %s has recovered: it runs again (or was stopped on purpose).", st.what())
		}
		return fmt.Sprintf("The %s has recovered: the panel reaches it again.", st.what())
	case EventFlapping:
		return fmt.Sprintf("The %s is flapping: it went up and down several times recently. No more mail about it until it is stable.", st.what())
	default:
		return fmt.Sprintf("The %s is stable again; it is %s.", st.what(), map[bool]string{true: "down", false: "up"}[st.State == HealthDown])
	}
}

// markObject writes a server's or tunnel's status after its state changed, so the server
// page and the alerts show it.
func markObject(tx *gorm.DB, st *HealthState, now time.Time) error {
	if st.State != HealthDown || st.Class == HealthContainer {
		// A server's status turns back to "Panel to server OK" with its next stats; a
		// container's status is read live from its agent.
		return nil
	}
	status := trunc(fmt.Sprintf("Unreachable since %s: %s", now.UTC().Format(time.RFC3339), st.LastError), 200)
	if st.Class == HealthTunnel {
		return tx.Model(&Tunnel{}).Where("id = ?", st.ObjectID).Update("status", status).Error
	}
	return tx.Model(&Server{}).Where("id = ?", st.ObjectID).Update("status", status).Error
}

// TunnelSettled reports whether the servers behind tunnel id can be judged at now: the
// tunnel is up, and has been for the rules' grace.
func TunnelSettled(ctx context.Context, db *gorm.DB, id uint, rules HealthRules, now time.Time) (bool, error) {
	rules = rules.withDefaults()
	var st HealthState
	err := db.WithContext(ctx).Where("object_key = ?", HealthKey(HealthTunnel, id)).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.State == HealthUp && (st.ChangedAt == nil || now.Sub(*st.ChangedAt) >= rules.Grace), nil
}

// OpenHealthAlerts lists the objects of networks nids that are down or flapping.
func OpenHealthAlerts(ctx context.Context, db *gorm.DB, nids []uint) ([]HealthState, error) {
	var out []HealthState
	if len(nids) == 0 {
		return out, nil
	}
	err := db.WithContext(ctx).Where("network_id IN ? AND (state = ? OR flapping = ?)", nids, HealthDown, true).Order("id").Find(&out).Error
	return out, err
}

// NetworkWatchers lists the users who can see network nid (its client's users, the users
// it is delegated to and the super-admins): they get its health mail.
func NetworkWatchers(ctx context.Context, db *gorm.DB, nid uint) ([]User, error) {
	db = db.WithContext(ctx)
	var n Network
	if err := db.Take(&n, nid).Error; err != nil {
		return nil, fmt.Errorf("network %d: %w", nid, err)
	}
	var out []User
	err := db.Where("client_id = ? OR role = ? OR id IN (?)", n.ClientID, RoleSuperAdmin,
		db.Model(&Delegation{}).Select("user_id").Where("network_id = ?", nid)).Order("id").Find(&out).Error
	return out, err
}

// HealthNotice is the mail of an alert event.
func HealthNotice(ev *AlertEvent, network, panel string) (subject, body string) {
	where := ev.Link + " on the clusterducks panel"
	if panel != "" {
		where = "https://" + panel + ev.Link
	}
	what := map[string]string{EventDown: "unreachable", EventUp: "recovered", EventFlapping: "flapping", EventStable: "stable"}[ev.Kind]
	switch {
	case ev.Class == HealthTunnel && ev.Kind == EventDown:
		what = "tunnel down"
	case ev.Class == HealthContainer && ev.Kind == EventDown:
		what = "failed"
	}
	subject = fmt.Sprintf("clusterducks: %s %s (network %s)", ev.Name, what, network)
	body = fmt.Sprintf("%s\n\nNetwork: %s\nWhen: %s\nSee %s\n", ev.Message, network, ev.CreatedAt.UTC().Format(time.RFC1123), where)
	return subject, body
}

// healthMigration adds what the tunnels and the health check keep: the tunnel's agent
// address and connected agents, the health states and the alert events.
func healthMigration() *gormigrate.Migration {
	return &gormigrate.Migration{
		ID: "202611300301_tunnel_health",
		Migrate: func(tx *gorm.DB) error {
			m := tx.Migrator()
			for _, col := range []string{"AgentAddr", "Agents", "CheckedAt"} {
				if !m.HasColumn(&healthMigrationTunnel{}, col) {
					if err := m.AddColumn(&healthMigrationTunnel{}, col); err != nil {
						return err
					}
				}
			}
			return m.CreateTable(&healthMigrationState{}, &healthMigrationEvent{})
		},
		Rollback: func(tx *gorm.DB) error {
			m := tx.Migrator()
			if err := m.DropTable(&healthMigrationEvent{}, &healthMigrationState{}); err != nil {
				return err
			}
			for _, col := range []string{"CheckedAt", "Agents", "AgentAddr"} {
				if m.HasColumn(&healthMigrationTunnel{}, col) {
					if err := m.DropColumn(&healthMigrationTunnel{}, col); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
}

// The tables as migration 202611300301 makes them (frozen).
type healthMigrationTunnel struct {
	AgentAddr string `gorm:"size:200;not null;default:''"`
	Agents    string `gorm:"size:2000;not null;default:''"`
	CheckedAt *time.Time
}

func (healthMigrationTunnel) TableName() string { return "tunnels" }

type healthMigrationState struct {
	ID         uint   `gorm:"primaryKey"`
	Key        string `gorm:"column:object_key;size:100;not null;uniqueIndex:idx_health_states_key"`
	Class      string `gorm:"size:40;not null"`
	NetworkID  uint   `gorm:"not null;index:idx_health_states_network_id"`
	ObjectID   uint   `gorm:"not null"`
	Name       string `gorm:"size:200;not null;default:''"`
	State      string `gorm:"size:10;not null;default:''"`
	Fails      int    `gorm:"not null;default:0"`
	Oks        int    `gorm:"not null;default:0"`
	DownMailed bool   `gorm:"not null;default:false"`
	Flapping   bool   `gorm:"not null;default:false"`
	Changes    string `gorm:"size:1000;not null;default:''"`
	LastError  string `gorm:"size:500;not null;default:''"`
	ChangedAt  *time.Time
	UpdatedAt  time.Time
}

func (healthMigrationState) TableName() string { return "health_states" }

type healthMigrationEvent struct {
	ID        uint   `gorm:"primaryKey"`
	Class     string `gorm:"size:40;not null;index:idx_alert_events_class"`
	Key       string `gorm:"column:object_key;size:100;not null;index:idx_alert_events_key"`
	NetworkID uint   `gorm:"not null;index:idx_alert_events_network_id"`
	Kind      string `gorm:"size:20;not null"`
	Name      string `gorm:"size:200;not null;default:''"`
	Message   string `gorm:"size:1000;not null;default:''"`
	Link      string `gorm:"size:200;not null;default:''"`
	Mailed    bool   `gorm:"not null;default:false"`
	CreatedAt time.Time
}

func (healthMigrationEvent) TableName() string { return "alert_events" }
