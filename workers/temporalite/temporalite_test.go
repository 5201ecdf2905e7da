package temporalite

import (
	"path/filepath"
	"testing"
	"time"
)

// Servers starting at the same time on the machine take turns to pick and bind their
// ports: a second start waits for the first to have bound its own.
func TestStartsTakeTurnsWithPorts(t *testing.T) {
	portsLock = filepath.Join(t.TempDir(), "ports.lock")
	first := lockPorts()
	got := make(chan func(), 1)
	go func() {
		got <- lockPorts()
	}()
	select {
	case <-got:
		t.Fatal("a second start picked ports while the first had not bound its own")
	case <-time.After(200 * time.Millisecond):
	}
	first()
	first() // releasing twice is harmless
	select {
	case second := <-got:
		second()
	case <-time.After(10 * time.Second):
		t.Fatal("the second start still waits after the first released the lock")
	}
}

// A lock that cannot be taken (no directory for it) does not stop a start.
func TestStartsWithoutALockTheyCannotTake(t *testing.T) {
	portsLock = filepath.Join(t.TempDir(), "missing", "ports.lock")
	lockPorts()() // takes nothing, releases nothing
}
