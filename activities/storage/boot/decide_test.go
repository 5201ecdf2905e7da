package boot

import (
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// TestDecide covers every row of DESIGN.md §5's versions-and-locks table, and the edges
// the table leaves to judgement (no assigned version, no local version, clone elsewhere).
func TestDecide(t *testing.T) {
	tests := []struct {
		row  string
		in   DecideInput
		want Decision
	}{
		// strict | any | locked | — | its clone as is (C); non-compliant if C ≠ A
		{"strict, locked, C=A", DecideInput{Strict: true, Locked: true, Clone: 2, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.BootClone, Version: 2}},
		{"strict, locked, C≠A", DecideInput{Strict: true, Locked: true, Clone: 1, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.BootClone, Version: 1, NonCompliant: true}},
		{"strict, lazy, locked, C≠A, A absent", DecideInput{Strict: true, Lazy: true, Locked: true, Clone: 1, Assigned: 2},
			Decision{Action: wire.BootClone, Version: 1, NonCompliant: true}},
		// strict | on | unlocked | — | its clone as is; non-compliant if C ≠ A
		{"strict, lazy, unlocked, C≠A", DecideInput{Strict: true, Lazy: true, Clone: 1, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.BootClone, Version: 1, NonCompliant: true}},
		{"strict, lazy, unlocked, C=A", DecideInput{Strict: true, Lazy: true, Clone: 3, Assigned: 3},
			Decision{Action: wire.BootClone, Version: 3}},
		// a rollout's canary takes the version rolled out even under lazy locks, never when locked
		{"strict, lazy, canary, C≠A", DecideInput{Strict: true, Lazy: true, Canary: true, Clone: 1, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.Provision, Version: 2, Reprovision: true}},
		{"strict, lazy, locked canary, C≠A", DecideInput{Strict: true, Lazy: true, Canary: true, Locked: true, Clone: 1, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.BootClone, Version: 1, NonCompliant: true}},
		// strict | off | unlocked | yes | C = A: its clone; else reprovision
		{"strict, no lazy, unlocked, C=A", DecideInput{Strict: true, Clone: 2, Assigned: 2, HasAssigned: true},
			Decision{Action: wire.BootClone, Version: 2}},
		{"strict, no lazy, unlocked, C≠A, has A", DecideInput{Strict: true, Clone: 1, Assigned: 2, HasAssigned: true, Newest: 2},
			Decision{Action: wire.Provision, Version: 2, Reprovision: true}},
		// strict | any | new device | yes | a new clone of A
		{"strict, new device, has A", DecideInput{Strict: true, Assigned: 1, HasAssigned: true, Newest: 3},
			Decision{Action: wire.Provision, Version: 1}},
		{"strict, lazy, new device, has A", DecideInput{Strict: true, Lazy: true, Assigned: 1, HasAssigned: true},
			Decision{Action: wire.Provision, Version: 1}},
		{"strict, locked new device, has A", DecideInput{Strict: true, Locked: true, Assigned: 4, HasAssigned: true},
			Decision{Action: wire.Provision, Version: 4}},
		// strict | any | needs A | no | redirected to another server that has A; none: reboot loop
		{"strict, new device, A elsewhere", DecideInput{Strict: true, Assigned: 2, AssignedElsewhere: true, Newest: 1},
			Decision{Action: wire.Redirect, To: ToAssigned, Version: 2}},
		{"strict, new device, A nowhere", DecideInput{Strict: true, Assigned: 2, Newest: 1},
			Decision{Action: wire.Wait, Version: 2}},
		{"strict, unlocked C≠A, A elsewhere", DecideInput{Strict: true, Clone: 1, Assigned: 2, AssignedElsewhere: true, Newest: 1},
			Decision{Action: wire.Redirect, To: ToAssigned, Version: 2}},
		{"strict, unlocked C≠A, A nowhere", DecideInput{Strict: true, Clone: 1, Assigned: 2, Newest: 1},
			Decision{Action: wire.Wait, Version: 2}},
		// off | any | locked | — | its clone as is
		{"loose, locked, newer local", DecideInput{Locked: true, Clone: 1, Assigned: 2, Newest: 3},
			Decision{Action: wire.BootClone, Version: 1}},
		{"loose, lazy, locked", DecideInput{Lazy: true, Locked: true, Clone: 2, Newest: 2},
			Decision{Action: wire.BootClone, Version: 2}},
		// off | any | unlocked or new | — | a clone of the newest local version (reprovisioned when newer)
		{"loose, unlocked, newer local", DecideInput{Clone: 1, Assigned: 1, Newest: 2},
			Decision{Action: wire.Provision, Version: 2, Reprovision: true}},
		{"loose, lazy, unlocked, newer local", DecideInput{Lazy: true, Clone: 1, Newest: 3},
			Decision{Action: wire.Provision, Version: 3, Reprovision: true}},
		{"loose, unlocked, up to date", DecideInput{Clone: 2, Assigned: 1, Newest: 2},
			Decision{Action: wire.BootClone, Version: 2}},
		{"loose, new device", DecideInput{Assigned: 1, Newest: 2},
			Decision{Action: wire.Provision, Version: 2}},
		{"loose, new locked device", DecideInput{Locked: true, Newest: 2},
			Decision{Action: wire.Provision, Version: 2}},
		// Edges.
		{"loose, new device, no local version", DecideInput{Assigned: 1},
			Decision{Action: wire.Wait}},
		{"loose, unlocked, no local version keeps clone", DecideInput{Clone: 1},
			Decision{Action: wire.BootClone, Version: 1}},
		{"loose, clone elsewhere, local newest: reprovision here", DecideInput{Clone: 2, CloneElsewhere: true, Newest: 2},
			Decision{Action: wire.Provision, Version: 2, Reprovision: true}},
		{"loose, locked, clone elsewhere", DecideInput{Locked: true, Clone: 2, CloneElsewhere: true, Newest: 3},
			Decision{Action: wire.Redirect, To: ToClone, Version: 2}},
		{"strict, locked, clone elsewhere", DecideInput{Strict: true, Locked: true, Clone: 1, CloneElsewhere: true, Assigned: 1},
			Decision{Action: wire.Redirect, To: ToClone, Version: 1}},
		{"strict, no assigned version, new device", DecideInput{Strict: true, Newest: 2},
			Decision{Action: wire.Wait}},
		{"strict, no assigned version, keeps clone", DecideInput{Strict: true, Clone: 1, Newest: 2},
			Decision{Action: wire.BootClone, Version: 1}},
		{"maintenance device", DecideInput{Strict: true, Maintenance: true, Clone: 1, Assigned: 2},
			Decision{Action: wire.Maintenance}},
	}
	for _, tt := range tests {
		t.Run(tt.row, func(t *testing.T) {
			got := Decide(tt.in)
			if got.Reason == "" {
				t.Errorf("no reason given")
			}
			got.Reason = ""
			if got != tt.want {
				t.Errorf("Decide(%+v)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}
