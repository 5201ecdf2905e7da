package workflows

import (
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel"
	"github.com/clusterducks/clusterducks/models"
	"go.temporal.io/sdk/workflow"
)

// RolloutInput rolls version Number (row VersionID) of group GroupID out in waves, as
// rollout RolloutID recorded with the publish.
type RolloutInput struct {
	OperationID uint
	RolloutID   uint
	GroupID     uint
	VersionID   uint
	Number      int
}

// RolloutResult is how the rollout ended (models.RolloutSucceeded, RolloutRolledBack,
// RolloutAborted) and its report.
type RolloutResult struct {
	State  string
	Report string
}

// Bounds of a rollout's waits: the publish it waits for (which itself waits for the
// master's agent up to storageWait), and how often it looks at the canaries' boots.
const (
	rolloutPublishWait = storageWait
	rolloutPollMin     = time.Second
	rolloutPollMax     = 150 * time.Second
)

// rolloutPoll is how often the canaries' boots are read: a 600th of the wait, within
// rolloutPollMin..rolloutPollMax (a bound of 30 minutes polls every 3 s, the longest,
// 24 hours, every 144 s), so a wave's history stays within about 600 polls.
func rolloutPoll(wait time.Duration) time.Duration {
	return min(max(wait/600, rolloutPollMin), rolloutPollMax)
}

// rolloutCtl follows the operator's signals (pause, resume, abort) between waits.
type rolloutCtl struct {
	ctx     workflow.Context
	t       *tracker
	id      uint
	chans   []workflow.ReceiveChannel
	paused  bool
	aborted bool
	// pausedFor is the time spent paused: the bound on the canaries' wait excludes it.
	pausedFor time.Duration
	since     time.Time
}

func newRolloutCtl(ctx workflow.Context, t *tracker, id uint) *rolloutCtl {
	c := &rolloutCtl{ctx: ctx, t: t, id: id}
	for _, name := range []string{SignalRolloutPause, SignalRolloutResume, SignalRolloutAbort} {
		c.chans = append(c.chans, workflow.GetSignalChannel(ctx, name))
	}
	return c
}

// signal applies one signal.
func (c *rolloutCtl) signal(ch workflow.ReceiveChannel, _ bool) {
	ch.Receive(c.ctx, nil)
	switch ch.Name() {
	case SignalRolloutPause:
		if !c.paused {
			c.paused, c.since = true, workflow.Now(c.ctx)
			c.record(true)
		}
	case SignalRolloutResume:
		if c.paused {
			c.paused = false
			c.pausedFor += workflow.Now(c.ctx).Sub(c.since)
			c.record(false)
		}
	case SignalRolloutAbort:
		c.aborted = true
	}
}

// record writes the pause on the rollout row and the operation.
func (c *rolloutCtl) record(paused bool) {
	err := workflow.ExecuteActivity(panelCtx(c.ctx), pa.RolloutPaused, panel.RolloutPausedInput{RolloutID: c.id, Paused: paused}).Get(c.ctx, nil)
	if err == nil {
		if paused {
			err = c.t.step("paused", c.t.cur.Percent, "paused by an operator at %q: resume or abort it", c.t.cur.Step)
		} else {
			err = c.t.step("resumed", c.t.cur.Percent, "resumed by an operator")
		}
	}
	if err != nil {
		workflow.GetLogger(c.ctx).Warn("rollout pause not recorded", "rollout", c.id, "error", err)
	}
}

// wait waits d, taking the signals that come meanwhile; while paused it waits for resume
// or abort. A cancelled workflow counts as aborted.
func (c *rolloutCtl) wait(d time.Duration) {
	tctx, cancel := workflow.WithCancel(c.ctx)
	defer cancel()
	fired := false
	timer := workflow.NewTimer(tctx, d)
	for !fired && !c.aborted && c.ctx.Err() == nil {
		s := workflow.NewSelector(c.ctx)
		for _, ch := range c.chans {
			s.AddReceive(ch, c.signal)
		}
		s.AddReceive(c.ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		if !c.paused {
			s.AddFuture(timer, func(workflow.Future) { fired = true })
		}
		s.Select(c.ctx)
	}
	if c.ctx.Err() != nil {
		c.aborted = true
	}
}

// Rollout is the workflow rollout-<group>-v<N>: it waits for the version to be
// published, serves it to the canaries (models.StartRolloutWave), reads their boots of
// it until they meet or miss the thresholds or the bound on the wait passes, then
// assigns it to the whole group (succeeded) or rolls back: the group assigns the
// previous version, reprovisioned canaries get their previous disks back, the operator
// is mailed once. Pause, resume and abort arrive as signals; a cancel is an abort.
func Rollout(ctx workflow.Context, in RolloutInput) (*RolloutResult, error) {
	t, err := newTracker(ctx, in.OperationID)
	if err != nil {
		return nil, err
	}
	c := newRolloutCtl(ctx, t, in.RolloutID)
	end := func(state, report string) (*RolloutResult, error) {
		return endRollout(ctx, t, in, state, report)
	}

	// 1. The version is published (ready).
	if err := t.step("publishing", 5, "waiting for v%d to be published", in.Number); err != nil {
		return nil, err
	}
	deadline := workflow.Now(ctx).Add(rolloutPublishWait)
	for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
		var v panel.RolloutVersionResult
		if err := workflow.ExecuteActivity(panelCtx(ctx), pa.RolloutVersion, panel.RolloutVersionInput{VersionID: in.VersionID}).Get(ctx, &v); err != nil {
			return end(models.RolloutAborted, fmt.Sprintf("v%d's state could not be read: %s", in.Number, failureText(err)))
		}
		if v.State == models.StateReady {
			break
		}
		if v.State == models.StateFailed {
			return end(models.RolloutAborted, fmt.Sprintf("v%d failed to publish: nothing was rolled out", in.Number))
		}
		if workflow.Now(ctx).After(deadline) {
			return end(models.RolloutAborted, fmt.Sprintf("v%d was not published within %s", in.Number, rolloutPublishWait))
		}
		if c.wait(backoff); c.aborted {
			return end(models.RolloutAborted, "aborted by an operator before the canary wave")
		}
	}

	// 2. The canary wave.
	var wave panel.RolloutWaveResult
	if err := workflow.ExecuteActivity(panelCtx(ctx), pa.StartRolloutWave, panel.RolloutWaveInput{RolloutID: in.RolloutID}).Get(ctx, &wave); err != nil {
		return end(models.RolloutAborted, "the canaries could not be chosen: "+failureText(err))
	}
	skipped := ""
	if len(wave.Skipped) > 0 {
		skipped = fmt.Sprintf("; skipped (not canaries): %v", wave.Skipped)
	}
	if len(wave.Canaries) == 0 {
		return end(models.RolloutAborted, "no device of the group can be a canary"+skipped)
	}
	if err := t.step("canaries", 20, "v%d is served to canaries %v; waiting up to %s for their boots%s", in.Number, wave.Canaries, wave.Wait, skipped); err != nil {
		return nil, err
	}
	start, poll := workflow.Now(ctx), rolloutPoll(wave.Wait)
	for {
		if c.wait(poll); c.aborted {
			return end(models.RolloutAborted, "aborted by an operator during the canary wave")
		}
		if c.paused {
			continue
		}
		var chk panel.CheckCanariesResult
		if err := workflow.ExecuteActivity(panelCtx(ctx), pa.CheckCanaries,
			panel.CheckCanariesInput{RolloutID: in.RolloutID, PrevP95: wave.PrevP95}).Get(ctx, &chk); err != nil {
			return end(models.RolloutAborted, "the canaries' boots could not be read: "+failureText(err))
		}
		switch chk.Verdict {
		case models.VerdictPass:
			return end(models.RolloutSucceeded, chk.Why)
		case models.VerdictFail:
			return end(models.RolloutRolledBack, chk.Report)
		}
		elapsed := workflow.Now(ctx).Sub(start) - c.pausedFor
		if elapsed >= wave.Wait {
			st := chk.Stats
			return end(models.RolloutRolledBack, fmt.Sprintf("after %s, %d of %d canaries came up (%d failed, %d unknown, %d still booting, %d never booted v%d)",
				wave.Wait, st.Up, len(wave.Canaries), st.Failed, st.Unknown, st.Pending, len(wave.Canaries)-st.Boots, in.Number)+"\n"+chk.Report)
		}
		st := chk.Stats
		pct := 20 + 60*(st.Up+st.Failed+st.Unknown)/len(wave.Canaries)
		if pct != t.cur.Percent || t.cur.Step != "canaries" {
			if err := t.step("canaries", pct, "v%d on canaries %v: %d up, %d failed, %d unknown, %d booting; waited %s of %s",
				in.Number, wave.Canaries, st.Up, st.Failed, st.Unknown, st.Pending, elapsed.Round(time.Second), wave.Wait); err != nil {
				return nil, err
			}
		}
	}
}

// endRollout ends the rollout in state with report: the group's assignment, the
// canaries' restores, the operator's mail (a rollback only, once: the child's id is the
// rollout's) and the operation.
func endRollout(ctx workflow.Context, t *tracker, in RolloutInput, state, report string) (*RolloutResult, error) {
	// A cancelled workflow still ends its rollout.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	t.ctx = dctx
	step := map[string]string{models.RolloutSucceeded: "assigning", models.RolloutRolledBack: "rolling back", models.RolloutAborted: "aborting"}[state]
	if err := t.step(step, 90, "%s", report); err != nil {
		workflow.GetLogger(ctx).Warn("rollout step not recorded", "error", err)
	}
	var res panel.EndRolloutResult
	err := workflow.ExecuteActivity(panelCtx(dctx), pa.EndRollout, panel.EndRolloutInput{RolloutID: in.RolloutID, State: state, Report: report}).Get(dctx, &res)
	if err != nil {
		return nil, t.fail(models.Outcome{}, err)
	}
	out := &RolloutResult{State: state, Report: report}
	if state == models.RolloutRolledBack && res.UserID != 0 {
		if err := notifyOnce(dctx, RolloutNotifyID(in.RolloutID, res.UserID), NotifyInput{UserID: res.UserID, Subject: res.Subject, Body: res.Body}); err != nil {
			workflow.GetLogger(ctx).Warn("rollback mail not started", "rollout", in.RolloutID, "error", err)
		}
	}
	restores := ""
	if len(res.Restores) > 0 {
		restores = fmt.Sprintf(" (restore operations %v)", res.Restores)
	}
	if state == models.RolloutSucceeded {
		if err := t.succeed(models.Outcome{}, "v%d assigned to the whole group: %s", in.Number, report); err != nil {
			return nil, err
		}
		return out, nil
	}
	// Rolled back: the operation failed, with why; aborted: cancelled. The workflow itself
	// completes: it did what it had to.
	o := models.Outcome{WorkflowProgress: t.progress(), Failed: true, Cancelled: state == models.RolloutAborted,
		Error: state + restores + ": " + report}
	o.Step = state
	if err := workflow.ExecuteActivity(panelCtx(dctx), pa.Finish, o).Get(dctx, nil); err != nil {
		return nil, err
	}
	return out, nil
}
