package bootview

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// script is a panel that answers watches from a list, then fails.
type script struct {
	mu      sync.Mutex
	answers []*wire.BootDelta
	asked   []uint64
}

func (s *script) BootView(ctx context.Context, since uint64, _ string, _ time.Duration) (*wire.BootDelta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, since)
	if len(s.answers) == 0 {
		return nil, errors.New("panel gone")
	}
	d := s.answers[0]
	s.answers = s.answers[1:]
	return d, nil
}

func network() *wire.BootNetwork {
	return &wire.BootNetwork{NetworkID: 1, MasterServerID: 1, Servers: []wire.ServerInfo{{ID: 1, IP: "10.0.0.1"}},
		Groups:   []wire.GroupInfo{{ID: 3, Name: "g", Strict: true, Assigned: 1, Versions: []wire.VersionInfo{{ID: 31, Number: 1, Servers: []uint{1}}}}},
		Versions: []wire.VersionRef{{ID: 31, GroupID: 3, Number: 1}}}
}

func TestApplyLookupAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "view.json")
	v, err := Open(Config{Panel: &script{}, Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := v.Lookup("52:54:00:00:00:07", 0); ok {
		t.Fatal("an empty view answered")
	}
	dev := wire.BootDevice{ID: 7, NetworkID: 1, MAC: "52:54:00:00:00:07", UUID: "u7", GroupID: 3, CloneVersionID: 31, ServerID: 1}
	v.Apply(&wire.BootDelta{Revision: 5, Full: true, Digest: "n1", Network: network(), Devices: []wire.BootDevice{dev, {ID: 8, MAC: "52:54:00:00:00:08", GroupID: 3}}, LeaseSeconds: 30})
	info, fresh, ok := v.Lookup(dev.MAC, 0)
	if !ok || !fresh || info.Group.ID != 3 || info.Device.CloneVersion != 1 || info.Device.CloneServerID != 1 || info.Device.Revision != 5 {
		t.Fatalf("lookup: %+v fresh %v ok %v", info, fresh, ok)
	}
	if _, _, ok := v.Lookup("52:54:00:00:00:08", 0); ok {
		t.Fatal("a device without a UUID must go to the panel (its first boot records it)")
	}
	if _, _, ok := v.Lookup(dev.MAC, 9); ok {
		t.Fatal("a menu's choice of another group must go to the panel")
	}
	v.Apply(&wire.BootDelta{Revision: 6, Digest: "n1", Removed: []uint{8}})
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}

	// A restarted agent answers from the file and resumes from its revision.
	panel := &script{answers: []*wire.BootDelta{{Revision: 7, Digest: "n1", Devices: []wire.BootDevice{{ID: 7, NetworkID: 1, MAC: dev.MAC, UUID: "u7", GroupID: 3, Locked: true}}}}}
	w, err := Open(Config{Panel: panel, Path: path, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Revision != 6 || st.Devices != 1 || st.Lease != 30*time.Second {
		t.Fatalf("reopened: %+v", st)
	}
	if _, _, ok := w.Lookup(dev.MAC, 0); !ok {
		t.Fatal("the reopened view does not answer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if info, _, _ := w.Lookup(dev.MAC, 0); info.Device.Locked {
			// The device changed at revision 7: its provisioning's update id is a new one.
			if info.Device.Revision != 7 {
				t.Fatalf("device's revision %d, want 7", info.Device.Revision)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delta was not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	panel.mu.Lock()
	defer panel.mu.Unlock()
	if panel.asked[0] != 6 {
		t.Fatalf("the watch resumed from %d, want 6", panel.asked[0])
	}
	if st := w.Stats(); st.FullLoads != 0 || st.Deltas != 1 {
		t.Fatalf("stats %+v", st)
	}
}
