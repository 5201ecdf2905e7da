package panel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/models"
)

// The rollout workflow's database steps (issue 18). Each is safe to repeat.

// RolloutVersionInput names a rollout's version.
type RolloutVersionInput struct {
	VersionID uint
}

// RolloutVersionResult is the version's state (pending, ready, failed).
type RolloutVersionResult struct {
	State string
}

// RolloutVersion reads the state of the version a rollout waits for. Read-only.
func (a *Activities) RolloutVersion(ctx context.Context, in RolloutVersionInput) (*RolloutVersionResult, error) {
	var v models.GroupVersion
	if err := a.DB.WithContext(ctx).Take(&v, in.VersionID).Error; err != nil {
		return nil, fmt.Errorf("version %d: %w", in.VersionID, err)
	}
	return &RolloutVersionResult{State: v.State}, nil
}

// RolloutWaveInput names a rollout.
type RolloutWaveInput struct {
	RolloutID uint
}

// RolloutWaveResult is the canary wave: its canaries, the devices skipped and why, the
// previous version's p95 time to up and the bound on the wait.
type RolloutWaveResult struct {
	Canaries []uint
	Skipped  []string
	PrevP95  time.Duration
	Wait     time.Duration
}

// StartRolloutWave chooses and records the canaries (models.StartRolloutWave); a repeat
// returns the wave already started.
func (a *Activities) StartRolloutWave(ctx context.Context, in RolloutWaveInput) (*RolloutWaveResult, error) {
	w, err := models.StartRolloutWave(ctx, a.DB, in.RolloutID)
	if err != nil {
		return nil, err
	}
	return &RolloutWaveResult{Canaries: w.Canaries, Skipped: w.Skipped, PrevP95: w.PrevP95,
		Wait: time.Duration(w.Rollout.WaitSeconds) * time.Second}, nil
}

// CheckCanariesInput names a rollout and the previous version's p95 time to up.
type CheckCanariesInput struct {
	RolloutID uint
	PrevP95   time.Duration
}

// CheckCanariesResult is the canaries' verdict (models.VerdictWait, Pass, Fail), their
// figures, and for a failure the report naming the failing canaries with their boots.
type CheckCanariesResult struct {
	Verdict string
	Stats   models.BootStats
	Why     string
	Report  string
}

// CheckCanaries judges a rollout's canaries against its thresholds. Read-only.
func (a *Activities) CheckCanaries(ctx context.Context, in CheckCanariesInput) (*CheckCanariesResult, error) {
	c, records, err := models.CheckCanaries(ctx, a.DB, in.RolloutID, in.PrevP95)
	if err != nil {
		return nil, err
	}
	return &CheckCanariesResult{Verdict: c.Verdict, Stats: c.Stats, Why: c.Why, Report: models.RolloutReport(c.Why, records)}, nil
}

// RolloutPausedInput records a rollout's pause.
type RolloutPausedInput struct {
	RolloutID uint
	Paused    bool
}

// RolloutPausedResult is empty.
type RolloutPausedResult struct{}

// RolloutPaused records that a rollout is paused (or resumed).
func (a *Activities) RolloutPaused(ctx context.Context, in RolloutPausedInput) (*RolloutPausedResult, error) {
	return &RolloutPausedResult{}, models.SetRolloutPaused(ctx, a.DB, in.RolloutID, in.Paused)
}

// EndRolloutInput is how a rollout ends.
type EndRolloutInput = models.RolloutEnd

// EndRolloutResult is what the end did: the restores queued for reprovisioned canaries,
// and the operator to tell (0: none) with the mail.
type EndRolloutResult struct {
	Restores []uint
	UserID   uint
	Subject  string
	Body     string
}

// EndRollout ends a rollout (models.Store.EndRollout): the group's assignment moves on or
// back, reprovisioned canaries get their previous disks back. Repeating it changes nothing.
func (a *Activities) EndRollout(ctx context.Context, in EndRolloutInput) (*EndRolloutResult, error) {
	if a.Store == nil {
		return nil, errors.New("the panel activities have no store to launch operations with")
	}
	ended, err := a.Store.EndRollout(ctx, in)
	if err != nil {
		return nil, err
	}
	var r models.Rollout
	if err := a.DB.WithContext(ctx).Take(&r, in.RolloutID).Error; err != nil {
		return nil, fmt.Errorf("rollout %d: %w", in.RolloutID, err)
	}
	out := &EndRolloutResult{Restores: ended.Restores}
	if r.UserID != nil {
		out.UserID = *r.UserID
	}
	var g models.Group
	_ = a.DB.WithContext(ctx).Take(&g, r.GroupID).Error
	out.Subject = fmt.Sprintf("clusterducks: rollout of %s v%d %s", g.Name, r.Number, r.State)
	out.Body = fmt.Sprintf("The rollout of group %q (id %d) v%d ended %s.\n\nThe group assigns v%d again; canaries that were reprovisioned get their previous disks back from the erator.\n\n%s\n",
		g.Name, g.ID, r.Number, r.State, r.Previous, r.Report)
	return out, nil
}
