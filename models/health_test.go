package models

import (
	"strings"
	"testing"
	"time"
)

// TestHealthApply walks result sequences through the rules (3 failures, flapping at 4
// changes within 10 minutes): which events each causes and which are mailed.
func TestHealthApply(t *testing.T) {
	rules := HealthRules{Failures: 3, FlapChanges: 4, FlapWindow: 10 * time.Minute}
	cases := []struct {
		name    string
		results string // u: ok, d: failed, s: skipped (its tunnel is failing); one per 40 s
		want    string // events, "kind" or "kind!" when mailed, in order
	}{
		{"first look up: no news", "uuu", ""},
		{"first look down: recorded, mailed to nobody", "ddd", "down"},
		{"one dropped check", "uuu d uuu", ""},
		{"two dropped checks", "uuu dd uuu", ""},
		{"unreachable then recovered", "uuu ddd uuu", "down! up!"},
		{"recovered only after 3 good checks", "uuu ddd uu", "down!"},
		{"skips count neither way", "uuu dd ss d uu", ""},
		{"recovery of an unmailed first down is not mailed", "ddd uuu", "down up"},
		{"flapping: one mail, then quiet", "uuu ddd uuu ddd uuu ddd uuu", "down! up! down! flapping! down up"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &HealthState{Key: "server/1", Class: HealthServer, Name: "s1"}
			now := time.Unix(1_800_000_000, 0)
			var got []string
			for _, ch := range strings.ReplaceAll(c.results, " ", "") {
				now = now.Add(40 * time.Second)
				r := HealthResult{Class: HealthServer, ObjectID: 1, OK: ch == 'u', Skip: ch == 's', Error: "timeout"}
				for _, ev := range st.apply(r, rules, now) {
					k := ev.Kind
					if ev.Mailed {
						k += "!"
					}
					got = append(got, k)
				}
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Errorf("events %q, want %q", g, c.want)
			}
		})
	}
	// A flapping server that stays put for the window gets one "stable" mail.
	st := &HealthState{Key: "server/1", Class: HealthServer, Name: "s1", State: HealthUp, Flapping: true}
	at := time.Unix(1_800_000_000, 0)
	st.ChangedAt = &at
	evs := st.apply(HealthResult{OK: true}, rules, at.Add(11*time.Minute))
	if len(evs) != 1 || evs[0].Kind != EventStable || !evs[0].Mailed || st.Flapping {
		t.Errorf("stable after flapping: %+v, flapping %v", evs, st.Flapping)
	}
}
