package boot

import (
	"fmt"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// RedirectTarget says which server a Redirect goes to.
type RedirectTarget string

const (
	// ToAssigned is another server that holds the group's assigned version.
	ToAssigned RedirectTarget = "assigned"
	// ToClone is the server that holds the device's clone.
	ToClone RedirectTarget = "clone"
)

// DecideInput is everything the versions-and-locks table of DESIGN.md §5 looks at.
// Version numbers are a group's v<N>; 0 means none.
type DecideInput struct {
	Strict bool // the group's Strict Versioning
	Lazy   bool // the group's Lazy Locks
	Locked bool // the device is locked
	// Clone is the version the device's clone was made from; 0: the device has no clone
	// (a new device).
	Clone int
	// CloneElsewhere: the clone lives on another server than this one.
	CloneElsewhere bool
	// Assigned is the version the group assigns (A); 0 when the group assigns none.
	Assigned int
	// HasAssigned: this server holds A.
	HasAssigned bool
	// AssignedElsewhere: at least one other server holds A.
	AssignedElsewhere bool
	// Newest is the newest version of the group this server holds; 0: none.
	Newest int
	// Maintenance: the group is in maintenance and this is its maintenance device.
	Maintenance bool
	// Canary: the device is a rollout's canary and Assigned the version rolled out to it:
	// lazy locks do not keep its clone (a lock does).
	Canary bool
}

// Decision is what a device boots.
type Decision struct {
	Action wire.Action
	// Version is the version booted (BootClone: the clone's; Provision: the one to clone;
	// Redirect to the assigned version: A).
	Version int
	// Reprovision: the device has an older clone that goes to the erator (restorable)
	// before the new clone is made.
	Reprovision bool
	// NonCompliant: strict versioning is on and the device boots another version than A.
	NonCompliant bool
	// To names the server of a Redirect.
	To RedirectTarget
	// Reason says why, in words shown on the device's screen and in the logs.
	Reason string
}

// Decide applies the versions-and-locks table. It is pure: the caller gathers the facts
// (from the panel, or from the agent's cache when the panel is unreachable) and carries
// out the decision.
func Decide(in DecideInput) Decision {
	if in.Maintenance {
		return Decision{Action: wire.Maintenance, Reason: "group in maintenance: this device boots the group head read-write"}
	}
	if !in.Strict {
		return decideLoose(in)
	}
	hasClone := in.Clone > 0
	switch {
	case hasClone && in.Locked:
		return bootAsIs(in, "locked device boots its clone as is")
	case hasClone && in.Lazy && !in.Canary:
		return bootAsIs(in, "lazy locks: unlocked device keeps its clone")
	case hasClone && in.Assigned == 0:
		return bootAsIs(in, "group assigns no version: device keeps its clone")
	case hasClone && in.Clone == in.Assigned:
		return bootAsIs(in, "clone is the assigned version")
	}
	// The device needs A: a new device, or an unlocked one without lazy locks whose clone
	// is another version.
	if in.Assigned == 0 {
		return Decision{Action: wire.Wait, Reason: "the group has no assigned version yet"}
	}
	switch {
	case in.HasAssigned && hasClone:
		return Decision{Action: wire.Provision, Version: in.Assigned, Reprovision: true,
			Reason: fmt.Sprintf("strict versioning: reprovision from v%d to the assigned v%d", in.Clone, in.Assigned)}
	case in.HasAssigned:
		return Decision{Action: wire.Provision, Version: in.Assigned, Reason: fmt.Sprintf("new clone of the assigned v%d", in.Assigned)}
	case in.AssignedElsewhere:
		return Decision{Action: wire.Redirect, To: ToAssigned, Version: in.Assigned,
			Reason: fmt.Sprintf("this server does not hold the assigned v%d: another server does", in.Assigned)}
	default:
		return Decision{Action: wire.Wait, Version: in.Assigned,
			Reason: fmt.Sprintf("no server holds the assigned v%d yet", in.Assigned)}
	}
}

// bootAsIs boots the existing clone, on the server that holds it.
func bootAsIs(in DecideInput, why string) Decision {
	d := Decision{Action: wire.BootClone, Version: in.Clone, Reason: why}
	if in.Strict && in.Assigned != 0 && in.Clone != in.Assigned {
		d.NonCompliant = true
		d.Reason += fmt.Sprintf(" (v%d, assigned v%d: non-compliant)", in.Clone, in.Assigned)
	}
	if in.CloneElsewhere {
		d.Action, d.To = wire.Redirect, ToClone
		d.Reason += "; the clone is on another server"
	}
	return d
}

// decideLoose is the non-strict half of the table: locked devices keep their clone, the
// others boot a clone of the newest version this server holds.
func decideLoose(in DecideInput) Decision {
	hasClone := in.Clone > 0
	switch {
	case hasClone && in.Locked:
		return bootAsIs(in, "locked device boots its clone as is")
	case in.Newest == 0 && hasClone:
		return bootAsIs(in, "this server holds no version of the group: device keeps its clone")
	case in.Newest == 0:
		return Decision{Action: wire.Wait, Reason: "this server holds no version of the group yet"}
	case hasClone && in.Clone >= in.Newest && !in.CloneElsewhere:
		return bootAsIs(in, fmt.Sprintf("clone of v%d is up to date", in.Clone))
	case hasClone:
		return Decision{Action: wire.Provision, Version: in.Newest, Reprovision: true,
			Reason: fmt.Sprintf("reprovision from v%d to the newest local v%d", in.Clone, in.Newest)}
	default:
		return Decision{Action: wire.Provision, Version: in.Newest, Reason: fmt.Sprintf("new clone of the newest local v%d", in.Newest)}
	}
}
