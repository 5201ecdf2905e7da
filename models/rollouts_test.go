package models

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestJudgeCanaries: the thresholds' verdict per case of the canaries' boots.
func TestJudgeCanaries(t *testing.T) {
	def := &Rollout{MinUpPercent: 100, MaxP95Factor: 1.5}
	half := &Rollout{MinUpPercent: 50, MaxP95Factor: 1.5}
	s := time.Second
	for _, c := range []struct {
		name     string
		r        *Rollout
		canaries int
		st       BootStats
		prev     time.Duration
		want     string
	}{
		{"none booted yet", def, 2, BootStats{}, 2 * s, VerdictWait},
		{"one up, one booting", def, 2, BootStats{Boots: 2, Up: 1, Pending: 1, P95: s}, 2 * s, VerdictWait},
		{"one failed: every canary must come up", def, 2, BootStats{Boots: 1, Failed: 1}, 2 * s, VerdictFail},
		{"unknown counts as not up", def, 2, BootStats{Boots: 1, Unknown: 1}, 2 * s, VerdictFail},
		{"all up within 1.5x", def, 2, BootStats{Boots: 2, Up: 2, P95: 3 * s}, 2 * s, VerdictPass},
		{"all up, p95 too slow", def, 2, BootStats{Boots: 2, Up: 2, P95: 3*s + 1}, 2 * s, VerdictFail},
		{"all up, no previous p95", def, 2, BootStats{Boots: 2, Up: 2, P95: time.Hour}, 0, VerdictPass},
		{"50%: one failed, one booting", half, 2, BootStats{Boots: 2, Failed: 1, Pending: 1}, 0, VerdictWait},
		{"50%: one failed, one up", half, 2, BootStats{Boots: 2, Failed: 1, Up: 1, P95: s}, 0, VerdictPass},
		{"50%: two of three failed", half, 3, BootStats{Boots: 2, Failed: 2}, 0, VerdictFail},
	} {
		if got := JudgeCanaries(c.r, c.canaries, c.st, c.prev); got.Verdict != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got.Verdict, got.Why, c.want)
		}
	}
}

// TestCanaryPick: a percentage picks at least one device, the same ones for the same ids,
// whatever their order.
func TestCanaryPick(t *testing.T) {
	ids := []uint{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	a := canaryPick(ids, 30)
	b := canaryPick([]uint{20, 19, 18, 17, 16, 15, 14, 13, 12, 11}, 30)
	if len(a) != 3 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("30%% of 10: %v and %v", a, b)
	}
	if got := canaryPick(ids, 1); len(got) != 1 {
		t.Fatalf("1%% of 10: %v, want one device", got)
	}
	if got := canaryPick(nil, 50); len(got) != 0 {
		t.Fatalf("of none: %v", got)
	}
}

// TestNewRollout: bad rollout inputs are refused naming the field.
func TestNewRollout(t *testing.T) {
	n := func(v int) *int { return &v }
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		in    RolloutInput
		field string
	}{
		{RolloutInput{}, "rollout.devices"},
		{RolloutInput{Devices: []uint{1}, Percent: n(5)}, "rollout.percent"},
		{RolloutInput{Devices: []uint{0}}, "rollout.devices"},
		{RolloutInput{Percent: n(101)}, "rollout.percent"},
		{RolloutInput{Percent: n(10), MinUpPercent: n(0)}, "rollout.min_up_percent"},
		{RolloutInput{Percent: n(10), MaxP95Factor: f(0.9)}, "rollout.max_p95_factor"},
		{RolloutInput{Percent: n(10), WaitMinutes: n(0)}, "rollout.wait_minutes"},
		{RolloutInput{Percent: n(10), WaitMinutes: n(30)}, ""},
	} {
		_, err := newRollout(&c.in)
		var ve *ValidationError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.in, err)
		case c.field != "" && (!errors.As(err, &ve) || ve.Field != c.field):
			t.Errorf("%+v: %v, want an error naming %s", c.in, err, c.field)
		}
	}
}
