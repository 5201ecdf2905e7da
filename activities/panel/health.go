package panel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
)

// HealthTargetsInput asks for what the health check looks at.
type HealthTargetsInput struct {
	// NetworkID limits the answer to one network's tunnels (TunnelPorts); 0: every tunnel.
	NetworkID uint
}

// TunnelTarget is a tunnel and the ports it should have open.
type TunnelTarget struct {
	TunnelID  uint
	NetworkID uint
	Ports     []wire.TunnelPort
}

// HealthTargetsResult is every tunnel of the panel.
type HealthTargetsResult struct {
	Tunnels []TunnelTarget
}

// HealthTargets lists every tunnel with the tunnel ports it should have open (its
// network's servers' while it is the selected tunnel, none otherwise). Read-only.
func (a *Activities) HealthTargets(ctx context.Context, in HealthTargetsInput) (*HealthTargetsResult, error) {
	var ts []models.Tunnel
	q := a.DB.WithContext(ctx).Order("id")
	if in.NetworkID != 0 {
		q = q.Where("network_id = ?", in.NetworkID)
	}
	if err := q.Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("health targets: %w", err)
	}
	out := &HealthTargetsResult{}
	for i := range ts {
		ports, err := models.TunnelPorts(ctx, a.DB, &ts[i])
		if err != nil {
			return nil, err
		}
		out.Tunnels = append(out.Tunnels, TunnelTarget{TunnelID: ts[i].ID, NetworkID: ts[i].NetworkID, Ports: ports})
	}
	return out, nil
}

// TunnelCheck is how a tunnel answered this round's SyncPorts.
type TunnelCheck struct {
	TunnelID uint
	OK       bool
	Error    string
	Agents   []uint
}

// CheckHealthInput is the round's tunnel answers and the rules.
type CheckHealthInput struct {
	Tunnels []TunnelCheck
	Rules   models.HealthRules
	// AgentTimeout bounds one agent's answer (default 10 s).
	AgentTimeout time.Duration
}

// HealthMail is one mail of an alert event to one user.
type HealthMail struct {
	EventID uint
	UserID  uint
	Subject string
	Body    string
}

// CheckHealthResult is the mails the round's changes call for.
type CheckHealthResult struct {
	Mails []HealthMail
}

// CheckHealth asks every server with a tunnel port for its stats through its network's
// selected tunnel (recording them: "Panel to server OK"), applies the round to the stored
// health states and returns the mails of the changes. A server whose tunnel failed this
// round is not asked (it counts neither way). Repeating it counts the round twice, which
// at worst brings a change one round early.
func (a *Activities) CheckHealth(ctx context.Context, in CheckHealthInput) (*CheckHealthResult, error) {
	if a.Agents == nil {
		return nil, errors.New("check health: this panel worker has no agent client")
	}
	db := a.DB.WithContext(ctx)
	tunnelOK := map[uint]bool{}
	var results []models.HealthResult
	now := time.Now()
	for _, tc := range in.Tunnels {
		var t models.Tunnel
		if err := db.Take(&t, tc.TunnelID).Error; err != nil {
			continue // deleted meanwhile
		}
		tunnelOK[t.ID] = tc.OK
		results = append(results, models.HealthResult{Class: models.HealthTunnel, NetworkID: t.NetworkID, ObjectID: t.ID, Name: t.Alias, OK: tc.OK, Error: tc.Error})
		ids := make([]string, len(tc.Agents))
		for i, id := range tc.Agents {
			ids[i] = strconv.FormatUint(uint64(id), 10)
		}
		upd := map[string]any{"checked_at": now}
		if tc.OK {
			upd["agents"] = strings.Join(ids, ",")
			upd["status"] = fmt.Sprintf("Running; %d agent(s) connected", len(tc.Agents))
		}
		if err := db.Model(&models.Tunnel{}).Where("id = ?", t.ID).Updates(upd).Error; err != nil {
			return nil, err
		}
	}
	var nets []models.Network
	if err := db.Where("tunnel_id IS NOT NULL").Order("id").Find(&nets).Error; err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	for _, n := range nets {
		var t models.Tunnel
		if err := db.Take(&t, *n.TunnelID).Error; err != nil {
			continue
		}
		var srvs []models.Server
		if err := db.Where("network_id = ? AND tunnel_port > 0", n.ID).Order("id").Find(&srvs).Error; err != nil {
			return nil, err
		}
		// Its servers' failures count only behind a tunnel that answered this round and
		// has been up for a while (its agents reconnect meanwhile): a tunnel down gives one
		// tunnel alert, not one per server. Their answers always count.
		settled, err := models.TunnelSettled(ctx, a.DB, t.ID, in.Rules, now)
		if err != nil {
			return nil, err
		}
		for _, s := range srvs {
			r := models.HealthResult{Class: models.HealthServer, NetworkID: n.ID, ObjectID: s.ID, Name: s.Name}
			if !tunnelOK[t.ID] {
				r.Skip = true
				results = append(results, r)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st wire.StatsReport
				actx, cancel := context.WithTimeout(ctx, cmp.Or(in.AgentTimeout, 10*time.Second))
				err := a.Agents.Get(actx, &t, s.TunnelPort, wire.AgentPathStats, &st)
				cancel()
				if err == nil {
					err = models.RecordServerStats(ctx, a.DB, s.ID, &st)
				}
				r.OK, r.Skip = err == nil, err != nil && !settled
				if err != nil {
					r.Error = err.Error()
				}
				// Its containers are judged from the units it reported; a server that did
				// not answer says nothing of them (its own alert covers them).
				var cs []models.Container
				var cerr error
				if err == nil && st.Containers != nil {
					cerr = db.Where("server_id = ? AND state = ?", s.ID, models.StateReady).Order("id").Find(&cs).Error
				}
				mu.Lock()
				results = append(results, r)
				results = append(results, models.ContainerHealth(cs, st.Containers)...)
				if cerr != nil && firstErr == nil {
					firstErr = fmt.Errorf("containers of server %d: %w", s.ID, cerr)
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	events, err := models.RecordHealth(ctx, a.DB, results, in.Rules, now)
	if err != nil {
		return nil, err
	}
	out := &CheckHealthResult{}
	st, err := models.LoadSettings(ctx, a.DB)
	if err != nil {
		return nil, err
	}
	for i := range events {
		ev := &events[i]
		if !ev.Mailed {
			continue
		}
		var n models.Network
		if err := db.Take(&n, ev.NetworkID).Error; err != nil {
			continue
		}
		users, err := models.NetworkWatchers(ctx, a.DB, ev.NetworkID)
		if err != nil {
			return nil, err
		}
		subject, body := models.HealthNotice(ev, n.Name, st.PanelHostname)
		for _, u := range users {
			out.Mails = append(out.Mails, HealthMail{EventID: ev.ID, UserID: u.ID, Subject: subject, Body: body})
		}
	}
	return out, nil
}
