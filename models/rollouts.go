package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// A rollout (issue 18) publishes a strict group's next version to a few canary devices
// first: the group stays pinned to the version it assigned, the canaries alone are served
// the new one (NetworkBoot.Canaries), and only when they came up within the thresholds is
// the new version assigned to the whole group. Canaries that fail roll it back: their
// previous disks come back from the erator and the operator is told once.

// Rollout states.
const (
	RolloutWaiting    = "waiting"     // the version is being published
	RolloutCanary     = "canary"      // the canaries are served the new version
	RolloutSucceeded  = "succeeded"   // the whole group assigns the new version
	RolloutRolledBack = "rolled-back" // the canaries failed the thresholds
	RolloutAborted    = "aborted"     // an operator stopped it
)

// Rollout defaults: every canary up, p95 time to up no worse than 1.5 times the previous
// version's, canaries waited for 30 minutes.
const (
	DefaultRolloutMinUp  = 100
	DefaultRolloutP95    = 1.5
	DefaultRolloutWait   = 30 * time.Minute
	maxRolloutWait       = 24 * time.Hour
	maxRolloutNamedCount = 1000
)

// Rollout is a group version's rollout in waves: its canaries, thresholds and outcome.
type Rollout struct {
	ID        uint `gorm:"primaryKey" json:"id"`
	NetworkID uint `gorm:"not null;index" json:"network_id"`
	GroupID   uint `gorm:"not null;index" json:"group_id"`
	VersionID uint `gorm:"not null;uniqueIndex" json:"version_id"`
	Number    int  `gorm:"not null" json:"number"`
	// PreviousID is the version the group assigned when the rollout began (v<Previous>);
	// Follow: the group followed its newest version then (and does again on success).
	PreviousID uint   `gorm:"not null" json:"previous_version_id"`
	Previous   int    `gorm:"not null" json:"previous"`
	Follow     bool   `gorm:"not null;default:false" json:"follow_newest"`
	State      string `gorm:"size:20;not null;default:'waiting'" json:"state"`
	Paused     bool   `gorm:"not null;default:false" json:"paused"`
	// Named canaries (a JSON list of device ids) or a percentage of the group's devices.
	Named   string `gorm:"type:text;not null;default:''" json:"-"`
	Percent int    `gorm:"not null;default:0" json:"percent"`
	// Canaries chosen when the wave began (a JSON list of device ids).
	Canaries     string  `gorm:"type:text;not null;default:''" json:"-"`
	MinUpPercent int     `gorm:"not null;default:100" json:"min_up_percent"`
	MaxP95Factor float64 `gorm:"not null;default:1.5" json:"max_p95_factor"`
	WaitSeconds  int     `gorm:"not null;default:1800" json:"wait_seconds"`
	// UserID is the operator who published: the one mailed on a rollback.
	UserID      *uint      `json:"user_id"`
	OperationID uint       `gorm:"not null;default:0" json:"operation_id"`
	WaveAt      *time.Time `json:"wave_at"`
	// Report: the measured figures (success) or why it rolled back, with the devices.
	Report    string    `gorm:"type:text;not null;default:''" json:"report"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// CanaryIDs is Canaries decoded, for the API.
	CanaryIDs []uint `gorm:"-" json:"canaries"`
}

// Active says whether the rollout has not ended yet.
func (r *Rollout) Active() bool { return r.State == RolloutWaiting || r.State == RolloutCanary }

func (r *Rollout) decode() {
	r.CanaryIDs = idList(r.Canaries)
}

func idList(s string) []uint {
	ids := []uint{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &ids)
	}
	return ids
}

func idJSON(ids []uint) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

// RolloutInput is the optional "rollout" of a publish: canaries by name (device ids) or a
// percentage of the group's devices, and thresholds (defaults when absent).
type RolloutInput struct {
	Devices      []uint   `json:"devices"`
	Percent      *int     `json:"percent"`
	MinUpPercent *int     `json:"min_up_percent"`
	MaxP95Factor *float64 `json:"max_p95_factor"`
	WaitMinutes  *int     `json:"wait_minutes"`
}

// newRollout checks a publish's rollout input and returns the row it asks for (without
// its group, versions and operation).
func newRollout(in *RolloutInput) (*Rollout, error) {
	r := &Rollout{State: RolloutWaiting, MinUpPercent: DefaultRolloutMinUp, MaxP95Factor: DefaultRolloutP95, WaitSeconds: int(DefaultRolloutWait / time.Second)}
	switch {
	case len(in.Devices) > 0 && in.Percent != nil:
		return nil, Invalid("rollout.percent", "give either canary devices or a percentage, not both")
	case len(in.Devices) > maxRolloutNamedCount:
		return nil, Invalid("rollout.devices", "names %d devices: at most %d", len(in.Devices), maxRolloutNamedCount)
	case len(in.Devices) > 0:
		ids := slices.Clone(in.Devices)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if ids[0] == 0 {
			return nil, Invalid("rollout.devices", "device ids start at 1")
		}
		r.Named = idJSON(ids)
	case in.Percent == nil:
		return nil, Invalid("rollout.devices", "name canary devices, or give a percentage of the group's devices")
	case *in.Percent < 1 || *in.Percent > 100:
		return nil, Invalid("rollout.percent", "must be from 1 to 100")
	default:
		r.Percent = *in.Percent
	}
	if in.MinUpPercent != nil {
		if *in.MinUpPercent < 1 || *in.MinUpPercent > 100 {
			return nil, Invalid("rollout.min_up_percent", "must be from 1 to 100")
		}
		r.MinUpPercent = *in.MinUpPercent
	}
	if in.MaxP95Factor != nil {
		if *in.MaxP95Factor < 1 || *in.MaxP95Factor > 100 {
			return nil, Invalid("rollout.max_p95_factor", "must be from 1 to 100")
		}
		r.MaxP95Factor = *in.MaxP95Factor
	}
	if in.WaitMinutes != nil {
		if *in.WaitMinutes < 1 || time.Duration(*in.WaitMinutes)*time.Minute > maxRolloutWait {
			return nil, Invalid("rollout.wait_minutes", "must be from 1 to %d", int(maxRolloutWait/time.Minute))
		}
		r.WaitSeconds = *in.WaitMinutes * 60
	}
	return r, nil
}

// beginRollout records, in the publish's transaction, the rollout of version ver of
// group g: the group must be strict and assign a version now, which it stays pinned to
// until the rollout ends; named canaries must be unlocked devices of the group.
func beginRollout(tx *gorm.DB, a *Actor, g *Group, ver *GroupVersion, r *Rollout) error {
	if !g.StrictVersioning {
		return Conflict("rollout", "group %d does not use strict versioning: its devices boot the newest version their server holds, so a rollout cannot hold them back", g.ID)
	}
	var active int64
	if err := tx.Model(&Rollout{}).Where("group_id = ? AND state IN ?", g.ID, []string{RolloutWaiting, RolloutCanary}).Count(&active).Error; err != nil {
		return err
	}
	if active > 0 {
		return Conflict("rollout", "group %d has a rollout under way: let it end (or abort it) first", g.ID)
	}
	var ready []GroupVersion
	if err := tx.Where("group_id = ? AND state = ? AND id <> ?", g.ID, StateReady, ver.ID).Find(&ready).Error; err != nil {
		return err
	}
	prev := AssignedVersion(g, ready)
	if prev == nil {
		return Conflict("rollout", "group %d assigns no version yet: there is nothing to roll out from (publish without a rollout)", g.ID)
	}
	if r.Named != "" {
		ids := idList(r.Named)
		var devs []Device
		if err := tx.Where("id IN ?", ids).Find(&devs).Error; err != nil {
			return err
		}
		found := map[uint]Device{}
		for _, d := range devs {
			found[d.ID] = d
		}
		for _, id := range ids {
			d, ok := found[id]
			switch {
			case !ok || d.GroupID == nil || *d.GroupID != g.ID:
				return Invalid("rollout.devices", "device %d is not in group %d", id, g.ID)
			case d.Locked:
				return Invalid("rollout.devices", "device %d is locked: a locked device keeps its disk and is never a canary", id)
			}
		}
	}
	r.NetworkID, r.GroupID, r.VersionID, r.Number = g.NetworkID, g.ID, ver.ID, ver.Number
	r.PreviousID, r.Previous, r.Follow = prev.ID, prev.Number, g.AssignedVersionID == nil
	if a != nil {
		r.UserID = &a.ID
	}
	if r.Follow {
		// The group would assign the new version as soon as it is ready: it stays on the
		// previous one until the rollout ends.
		if err := tx.Model(&Group{}).Where("id = ?", g.ID).Update("assigned_version_id", prev.ID).Error; err != nil {
			return err
		}
	}
	return tx.Create(r).Error
}

// canaryPick chooses percent % (at least one) of the eligible devices, the same ones for
// the same ids: ordered by a hash of the id.
func canaryPick(eligible []uint, percent int) []uint {
	if len(eligible) == 0 {
		return nil
	}
	h := func(id uint) uint32 {
		f := fnv.New32a()
		fmt.Fprintf(f, "%d", id)
		return f.Sum32()
	}
	ids := slices.Clone(eligible)
	sort.Slice(ids, func(i, j int) bool {
		hi, hj := h(ids[i]), h(ids[j])
		if hi != hj {
			return hi < hj
		}
		return ids[i] < ids[j]
	})
	n := max((len(ids)*percent+99)/100, 1)
	out := ids[:n]
	slices.Sort(out)
	return out
}

// RolloutWave is the start of a rollout's canary wave.
type RolloutWave struct {
	Rollout  Rollout
	Canaries []uint
	// Skipped says which devices are not canaries and why (locked, server without the version).
	Skipped []string
	// PrevP95 is the previous version's p95 time to up (0: never measured).
	PrevP95 time.Duration
}

// StartRolloutWave chooses the canaries of rollout id once its version is ready: named
// devices or a percentage of the group's devices, skipping locked devices, devices
// without a disk and devices whose server does not hold the version yet (a canary boots
// from its own server: it is skipped, not waited for), and
// records them with the wave's start; the boot path then serves them the new version.
// Repeating it returns the wave already started.
func StartRolloutWave(ctx context.Context, db *gorm.DB, id uint) (*RolloutWave, error) {
	w := &RolloutWave{}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r := &w.Rollout
		if err := forUpdate(tx).Take(r, id).Error; err != nil {
			return notFoundOr(err, "rollout")
		}
		if r.State != RolloutWaiting {
			w.Canaries = idList(r.Canaries)
			return nil
		}
		var n Network
		if err := tx.Take(&n, r.NetworkID).Error; err != nil {
			return err
		}
		holders := map[uint]bool{}
		if n.MasterServerID != nil {
			holders[*n.MasterServerID] = true
		}
		var copies []uint
		if err := tx.Model(&VersionCopy{}).Where("version_id = ?", r.VersionID).Pluck("server_id", &copies).Error; err != nil {
			return err
		}
		for _, s := range copies {
			holders[s] = true
		}
		q := tx.Where("group_id = ?", r.GroupID)
		if r.Named != "" {
			q = q.Where("id IN ?", idList(r.Named))
		}
		var devs []Device
		if err := q.Order("id").Find(&devs).Error; err != nil {
			return err
		}
		var eligible []uint
		for _, d := range devs {
			switch {
			case d.Locked:
				w.Skipped = append(w.Skipped, fmt.Sprintf("device %d is locked", d.ID))
			case d.ServerID == nil || d.CloneVersionID == nil:
				// A canary proves the version on a device that boots, and its rollback
				// gives it back the disk it had.
				w.Skipped = append(w.Skipped, fmt.Sprintf("device %d has no disk yet", d.ID))
			case *d.CloneVersionID == r.VersionID:
				w.Skipped = append(w.Skipped, fmt.Sprintf("device %d has v%d already", d.ID, r.Number))
			case !holders[*d.ServerID]:
				w.Skipped = append(w.Skipped, fmt.Sprintf("device %d's server %d does not hold v%d yet", d.ID, *d.ServerID, r.Number))
			default:
				eligible = append(eligible, d.ID)
			}
		}
		if r.Named != "" {
			w.Canaries = eligible
		} else {
			w.Canaries = canaryPick(eligible, r.Percent)
		}
		now := time.Now()
		r.State, r.WaveAt, r.Canaries = RolloutCanary, &now, idJSON(w.Canaries)
		return tx.Model(r).Updates(map[string]any{"state": r.State, "wave_at": now, "canaries": r.Canaries}).Error
	})
	if err != nil {
		return nil, err
	}
	w.Rollout.decode()
	prev, err := VersionBootStats(ctx, db, w.Rollout.GroupID, w.Rollout.Previous, nil, time.Time{})
	if err != nil {
		return nil, err
	}
	w.PrevP95 = prev.P95
	return w, nil
}

// Canary verdicts.
const (
	VerdictWait = "wait" // not every canary has a decided boot of the version yet
	VerdictPass = "pass"
	VerdictFail = "fail"
)

// CanaryCheck is the state of a rollout's canaries against its thresholds.
type CanaryCheck struct {
	Verdict string
	Stats   BootStats
	Why     string
	// Failing are the canaries whose latest boot of the version did not come up.
	Failing []uint
}

// JudgeCanaries applies a rollout's thresholds to its canaries' boots of the version
// (stats over canaries devices, prevP95 the previous version's p95): it fails as soon as
// the success rate cannot be met any more or, once every canary is decided, when the
// rate or p95 misses; it passes when every canary is decided within both. Pure.
func JudgeCanaries(r *Rollout, canaries int, st BootStats, prevP95 time.Duration) CanaryCheck {
	c := CanaryCheck{Verdict: VerdictWait, Stats: st}
	notUp := st.Failed + st.Unknown
	// Up at most: every canary not decided yet comes up.
	best := canaries - notUp
	if canaries > 0 && best*100 < r.MinUpPercent*canaries {
		c.Verdict = VerdictFail
		c.Why = fmt.Sprintf("%d of %d canaries did not come up (at least %d%% must)", notUp, canaries, r.MinUpPercent)
		return c
	}
	if st.Up+notUp < canaries {
		return c
	}
	if prevP95 > 0 && float64(st.P95) > r.MaxP95Factor*float64(prevP95) {
		c.Verdict = VerdictFail
		c.Why = fmt.Sprintf("p95 time to up %s is more than %.2f× the previous version's %s", st.P95, r.MaxP95Factor, prevP95)
		return c
	}
	c.Verdict = VerdictPass
	c.Why = fmt.Sprintf("%d of %d canaries up, p50 %s, p95 %s", st.Up, canaries, st.P50, st.P95)
	if prevP95 > 0 {
		c.Why += fmt.Sprintf(" (previous version's p95 %s)", prevP95)
	}
	return c
}

// CheckCanaries reads the canaries' latest boots of the version since the wave began and
// judges them (JudgeCanaries), naming the failing canaries with their boot records.
func CheckCanaries(ctx context.Context, db *gorm.DB, id uint, prevP95 time.Duration) (*CanaryCheck, []BootHistory, error) {
	var r Rollout
	if err := db.WithContext(ctx).Take(&r, id).Error; err != nil {
		return nil, nil, notFoundOr(err, "rollout")
	}
	canaries := idList(r.Canaries)
	if len(canaries) == 0 || r.WaveAt == nil {
		c := JudgeCanaries(&r, 0, BootStats{}, prevP95)
		return &c, nil, nil
	}
	latest, err := LatestBoots(ctx, db, r.GroupID, r.Number, canaries, *r.WaveAt)
	if err != nil {
		return nil, nil, err
	}
	st, err := VersionBootStats(ctx, db, r.GroupID, r.Number, canaries, *r.WaveAt)
	if err != nil {
		return nil, nil, err
	}
	c := JudgeCanaries(&r, len(canaries), st, prevP95)
	var records []BootHistory
	for _, d := range canaries {
		if b, ok := latest[d]; ok && (b.Result == BootResultFailed || b.Result == BootResultUnknown) {
			c.Failing = append(c.Failing, d)
			records = append(records, b)
		}
	}
	return &c, records, nil
}

// SetRolloutPaused records a rollout's pause (the workflow's, once it took the signal).
func SetRolloutPaused(ctx context.Context, db *gorm.DB, id uint, paused bool) error {
	return db.WithContext(ctx).Model(&Rollout{}).Where("id = ?", id).Update("paused", paused).Error
}

// RolloutEnd is how a rollout ends.
type RolloutEnd struct {
	RolloutID uint
	State     string // RolloutSucceeded, RolloutRolledBack or RolloutAborted
	Report    string
}

// RolloutEnded is what ending a rollout did: the restores it queued.
type RolloutEnded struct {
	Restores []uint // device restore operations, for the canaries that were reprovisioned
	// Changed is false when the rollout had ended already (a repeat).
	Changed bool
}

// EndRollout ends a rollout in one transaction. Succeeded: the group assigns the new
// version as AssignVersion does (or follows its newest again). Rolled back or aborted:
// the group assigns the previous version, and every canary whose disk became the new
// version gets a restore of its previous disk from the erator (the disk the
// reprovisioning replaced). The canaries stop being served the new version in the same
// transaction; the restores are handed to the device workflows right after it, so a
// canary's next boot runs behind its restore (the agents see the change only after
// their view's next poll). Repeating it changes nothing.
func (s *Store) EndRollout(ctx context.Context, e RolloutEnd) (*RolloutEnded, error) {
	out := &RolloutEnded{}
	var ops []*Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var r Rollout
		if err := forUpdate(tx).Take(&r, e.RolloutID).Error; err != nil {
			return notFoundOr(err, "rollout")
		}
		if !r.Active() {
			return nil
		}
		out.Changed = true
		var g Group
		if err := tx.Take(&g, r.GroupID).Error; err != nil {
			return notFoundOr(err, "group")
		}
		var to GroupVersion
		if e.State == RolloutSucceeded {
			if err := tx.Take(&to, r.VersionID).Error; err != nil {
				return notFoundOr(err, "version")
			}
			if r.Follow {
				g.AssignedVersionID, g.PendingVersionID = nil, nil
			} else if err := assign(tx, &g, &to); err != nil {
				return err
			}
		} else {
			if err := tx.Take(&to, r.PreviousID).Error; err != nil {
				return notFoundOr(err, "version")
			}
			g.AssignedVersionID, g.PendingVersionID = &to.ID, nil
		}
		if err := tx.Model(&Group{}).Where("id = ?", g.ID).Updates(map[string]any{
			"assigned_version_id": g.AssignedVersionID, "pending_version_id": g.PendingVersionID}).Error; err != nil {
			return err
		}
		if err := tx.Model(&Rollout{}).Where("id = ?", r.ID).Updates(map[string]any{
			"state": e.State, "paused": false, "report": e.Report}).Error; err != nil {
			return err
		}
		detail := fmt.Sprintf("rollout of v%d %s: %s", r.Number, e.State, e.Report)
		if err := audit(tx, nil, &r.NetworkID, "rollout", "group", g.ID, trunc(detail, 500)); err != nil {
			return err
		}
		if e.State == RolloutSucceeded {
			return nil
		}
		var devs []Device
		if ids := idList(r.Canaries); len(ids) > 0 {
			if err := tx.Where("id IN ? AND clone_version_id = ?", ids, r.VersionID).Order("id").Find(&devs).Error; err != nil {
				return err
			}
		}
		for i := range devs {
			op, err := restoreDeviceTx(tx, nil, &devs[i], "")
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		s.launch(ctx, op)
		out.Restores = append(out.Restores, op.ID)
	}
	return out, nil
}

// Rollout signals an operator sends to a running rollout.
const (
	RolloutPause  = "pause"
	RolloutResume = "resume"
	RolloutAbort  = "abort"
)

// RolloutSignaler is an Engine that can signal a rollout's workflow.
type RolloutSignaler interface {
	// SignalRollout sends signal (RolloutPause, RolloutResume, RolloutAbort) to the
	// workflow of operation op; safe to repeat.
	SignalRollout(ctx context.Context, op *Operation, signal string) error
}

// GetRollout loads a rollout of a visible group.
func (s *Store) GetRollout(ctx context.Context, a *Actor, id uint) (*Rollout, error) {
	r, err := getScoped[Rollout](ctx, s.DB, a.scopeNetworkOwned, id, "rollout")
	if err != nil {
		return nil, err
	}
	r.decode()
	return r, nil
}

// OperationRollout loads the rollout a visible group-rollout operation carries.
func (s *Store) OperationRollout(ctx context.Context, a *Actor, opID uint) (*Rollout, error) {
	var r Rollout
	if err := a.scopeNetworkOwned(s.DB.WithContext(ctx).Model(&Rollout{})).Where("operation_id = ?", opID).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "rollout")
	}
	r.decode()
	return &r, nil
}

// ListRollouts lists the rollouts the actor may see, newest first.
func (s *Store) ListRollouts(ctx context.Context, a *Actor, p Page) ([]Rollout, int64, error) {
	rs, n, err := listScoped[Rollout](ctx, s.DB, func(db *gorm.DB) *gorm.DB { return a.scopeNetworkOwned(db).Order("id DESC") }, p)
	for i := range rs {
		rs[i].decode()
	}
	return rs, n, err
}

// ControlRollout pauses, resumes or aborts a visible rollout under way (signal), through
// its workflow: the rollout row shows the change once the workflow took it.
func (s *Store) ControlRollout(ctx context.Context, a *Actor, id uint, signal string) (*Rollout, error) {
	r, err := s.GetRollout(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains([]string{RolloutPause, RolloutResume, RolloutAbort}, signal) {
		return nil, Invalid("action", "must be pause, resume or abort")
	}
	if !r.Active() {
		return nil, Conflict("state", "rollout %d has ended (%s): there is nothing to %s", r.ID, r.State, signal)
	}
	sig, ok := s.Engine.(RolloutSignaler)
	if !ok || r.OperationID == 0 {
		return nil, Unavailable("", errors.New("no engine"), "rollout %d has no workflow engine to %s it", r.ID, signal)
	}
	op, err := s.Operation(ctx, nil, r.OperationID)
	if err != nil {
		return nil, err
	}
	if err := s.tx(ctx, func(tx *gorm.DB) error {
		return audit(tx, a, &r.NetworkID, signal, "rollout", r.ID, fmt.Sprintf("group %d v%d", r.GroupID, r.Number))
	}); err != nil {
		return nil, err
	}
	if err := sig.SignalRollout(ctx, op, signal); err != nil {
		return nil, Unavailable("", err, "the workflow engine did not take the %s of rollout %d", signal, r.ID)
	}
	return r, nil
}

// RolloutReport is a rollback's account for people: why, and each failing canary with
// its boot record.
func RolloutReport(why string, records []BootHistory) string {
	var b strings.Builder
	b.WriteString(why)
	for _, h := range records {
		fmt.Fprintf(&b, "\n  device %d: boot of v%d at %s from server %d: %s (%s)", h.DeviceID, h.Version,
			h.CreatedAt.UTC().Format(time.RFC3339), h.ServerID, h.Result, h.Reason)
	}
	return b.String()
}

// rolloutsMigration adds the rollouts table.
func rolloutsMigration() *gormigrate.Migration {
	return createTableMigration("202612010420_rollouts", &rolloutTable{})
}

// rolloutTable is the rollouts table as migration 202612010420 creates it (frozen).
type rolloutTable struct {
	ID           uint    `gorm:"primaryKey"`
	NetworkID    uint    `gorm:"not null;index"`
	GroupID      uint    `gorm:"not null;index"`
	VersionID    uint    `gorm:"not null;uniqueIndex"`
	Number       int     `gorm:"not null"`
	PreviousID   uint    `gorm:"not null"`
	Previous     int     `gorm:"not null"`
	Follow       bool    `gorm:"not null;default:false"`
	State        string  `gorm:"size:20;not null;default:'waiting'"`
	Paused       bool    `gorm:"not null;default:false"`
	Named        string  `gorm:"type:text;not null;default:''"`
	Percent      int     `gorm:"not null;default:0"`
	Canaries     string  `gorm:"type:text;not null;default:''"`
	MinUpPercent int     `gorm:"not null;default:100"`
	MaxP95Factor float64 `gorm:"not null;default:1.5"`
	WaitSeconds  int     `gorm:"not null;default:1800"`
	UserID       *uint
	OperationID  uint `gorm:"not null;default:0"`
	WaveAt       *time.Time
	Report       string `gorm:"type:text;not null;default:''"`
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (rolloutTable) TableName() string { return "rollouts" }
