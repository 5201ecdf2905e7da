package boot

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// fakePanel answers from a fixed Info (or fails), and records what the service asks.
type fakePanel struct {
	mu      sync.Mutex
	info    *wire.Info
	err     error
	queries []wire.Query
	reports []wire.Report
	exports []wire.Export // nil: device 7's clone
}

func (p *fakePanel) Boot(_ context.Context, q wire.Query) (*wire.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries = append(p.queries, q)
	if p.err != nil {
		return nil, p.err
	}
	cp := *p.info
	return &cp, nil
}
func (p *fakePanel) Booted(_ context.Context, r []wire.Report) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, r...)
	return nil
}
func (p *fakePanel) Exports(context.Context) ([]wire.Export, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exports != nil {
		return p.exports, nil
	}
	return []wire.Export{{Kind: "device", ID: 7, NetworkID: 1, UUID: uuid1}}, nil
}

type recordTarget struct {
	mu       sync.Mutex
	added    map[string]iscsi.TargetConfig
	sessions map[string]int
}

func (r *recordTarget) AddTarget(tc iscsi.TargetConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.added == nil {
		r.added = map[string]iscsi.TargetConfig{}
	}
	r.added[tc.IQN] = tc
	return nil
}
func (r *recordTarget) RemoveTarget(iqn string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.added, iqn)
	return nil
}

func (r *recordTarget) AddLUN(iqn string, n uint64, lc iscsi.LUNConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tc, ok := r.added[iqn]
	if !ok {
		return iscsi.ErrTargetNotFound
	}
	for uint64(len(tc.LUNs)) <= n {
		tc.LUNs = append(tc.LUNs, iscsi.LUNConfig{})
	}
	tc.LUNs[n] = lc
	r.added[iqn] = tc
	return nil
}
func (r *recordTarget) RemoveLUN(iqn string, n uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tc, ok := r.added[iqn]; ok && uint64(len(tc.LUNs)) > n {
		tc.LUNs = tc.LUNs[:n]
		r.added[iqn] = tc
	}
	return nil
}
func (r *recordTarget) LUNPath(iqn string, n uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tc, ok := r.added[iqn]; ok && uint64(len(tc.LUNs)) > n && tc.LUNs[n].Path != "" {
		return tc.LUNs[n].Path, true
	}
	return "", false
}
func (r *recordTarget) Sessions(iqn string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[iqn]
}

type countingProvisioner struct {
	LocalProvisioner
	mu   sync.Mutex
	reqs []wire.ProvisionRequest
}

func (c *countingProvisioner) Provision(ctx context.Context, r wire.ProvisionRequest) error {
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	return c.LocalProvisioner.Provision(ctx, r)
}

const (
	mac1  = "52:54:00:00:00:07"
	uuid1 = "c1d0c1d0-0000-4000-8000-000000000007"
)

func newTestService(t *testing.T, info *wire.Info) (*Service, *fakePanel, *recordTarget, *countingProvisioner, *FileDisks) {
	t.Helper()
	disks, err := NewFileDisks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		if err := writeFile(disks.GroupVersionPath(3, n)); err != nil {
			t.Fatal(err)
		}
	}
	panel := &fakePanel{info: info}
	target := &recordTarget{}
	prov := &countingProvisioner{LocalProvisioner: LocalProvisioner{Disks: disks, Target: target}}
	cache, _ := OpenCache(filepath.Join(t.TempDir(), "cache.json"))
	svc, err := NewService(Config{ServerID: 1, Portal: "10.0.0.1:3260", Panel: panel, Provision: prov, Disks: disks, Target: target, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, panel, target, prov, disks
}

// v1Disks is a server's disks holding group 3's v1.
func v1Disks(t *testing.T) *FileDisks {
	t.Helper()
	disks, err := NewFileDisks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(disks.GroupVersionPath(3, 1)); err != nil {
		t.Fatal(err)
	}
	return disks
}

func writeFile(p string) error { return os.WriteFile(p, []byte("disk"), 0o644) }

func info(strict bool, assigned int) *wire.Info {
	return &wire.Info{Registered: true,
		Device:         wire.DeviceInfo{ID: 7, NetworkID: 1, MAC: mac1, UUID: uuid1},
		Group:          &wire.GroupInfo{ID: 3, Name: "g", Strict: strict, Assigned: assigned, Versions: []wire.VersionInfo{{ID: 31, Number: 1, Servers: []uint{1}}, {ID: 32, Number: 2, Servers: []uint{1}}}},
		Servers:        []wire.ServerInfo{{ID: 1, IP: "10.0.0.1"}, {ID: 2, IP: "10.0.0.2"}},
		MasterServerID: 1}
}

func TestScriptNewDeviceProvisionsAndSanboots(t *testing.T) {
	svc, _, target, prov, _ := newTestService(t, info(true, 1))
	s := svc.Script(context.Background(), "52-54-00-00-00-07", uuid1, 0)
	if !strings.Contains(s, "sanboot iscsi:10.0.0.1::::0:"+wire.DeviceIQN(1, 7)) && !strings.Contains(s, "sanboot iscsi:10.0.0.1:::0:"+wire.DeviceIQN(1, 7)) {
		t.Fatalf("script:\n%s", s)
	}
	if len(prov.reqs) != 1 || prov.reqs[0].Version != 1 || prov.reqs[0].Reprovision {
		t.Fatalf("provisioning: %+v", prov.reqs)
	}
	tc := target.added[wire.DeviceIQN(1, 7)]
	if len(tc.AllowedInitiators) != 1 || tc.AllowedInitiators[0] != "iqn.2010-04.org.ipxe:"+uuid1 {
		t.Fatalf("ACL: %+v", tc)
	}
}

func TestScriptKnownDeviceNeedsNoProvisioning(t *testing.T) {
	in := info(true, 1)
	svc, _, _, prov, disks := newTestService(t, in)
	if _, err := disks.Clone(3, 1, 7); err != nil {
		t.Fatal(err)
	}
	in.Device.CloneGroupID, in.Device.CloneVersion, in.Device.CloneServerID = 3, 1, 1
	for range 3 {
		if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot iscsi:") {
			t.Fatalf("script:\n%s", s)
		}
	}
	if len(prov.reqs) != 0 {
		t.Fatalf("a provisioned device started provisioning: %+v", prov.reqs)
	}
}

// TestScriptKnowsTheDiskByItsTarget: an exported device disk is its target's LUN 0, which
// holds it open (no stat per boot); a disk neither exported nor on the pool (trashed by
// hand) is no clone, and the device gets a new one.
func TestScriptKnowsTheDiskByItsTarget(t *testing.T) {
	in := info(true, 1)
	svc, _, target, prov, disks := newTestService(t, in)
	if _, err := disks.Clone(3, 1, 7); err != nil {
		t.Fatal(err)
	}
	disk, _, err := disks.DevicePath(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	in.Device.CloneGroupID, in.Device.CloneVersion, in.Device.CloneServerID = 3, 1, 1
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot iscsi:") {
		t.Fatalf("script:\n%s", s)
	}
	if err := os.Remove(disk); err != nil { // the exported LUN answers for it now
		t.Fatal(err)
	}
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot iscsi:") || len(prov.reqs) != 0 {
		t.Fatalf("an exported disk was looked for on the pool: provisioning %+v, script:\n%s", prov.reqs, s)
	}
	if err := target.RemoveTarget(wire.DeviceIQN(1, 7)); err != nil {
		t.Fatal(err)
	}
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot iscsi:") {
		t.Fatalf("script:\n%s", s)
	}
	if len(prov.reqs) != 1 || prov.reqs[0].Version != 1 {
		t.Fatalf("a disk gone from the pool and not exported did not get a new clone: %+v", prov.reqs)
	}
}

func TestScriptAnswers(t *testing.T) {
	tests := []struct {
		name string
		edit func(*wire.Info)
		err  error
		want string
	}{
		{"not registered", func(i *wire.Info) {
			*i = wire.Info{Message: "this device is not registered and the network has no default group"}
		}, nil,
			"not registered and the network has no default group"},
		{"menu", func(i *wire.Info) {
			i.Menu = &wire.MenuInfo{Name: "Pick", Entries: []wire.MenuEntry{{Type: wire.MenuGroup, Label: "Desktops", GroupID: 3}, {Type: wire.MenuLocal, Label: "Disk"}}}
		}, nil, "chain --autofree /boot.ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid}&group=3"},
		{"no group", func(i *wire.Info) { i.Group = nil }, nil, "no group"},
		{"strict, A elsewhere: redirect", func(i *wire.Info) {
			i.Group.Assigned = 4
			i.Group.Versions = append(i.Group.Versions, wire.VersionInfo{Number: 4, Servers: []uint{2}})
		}, nil,
			"chain --replace --autofree http://10.0.0.2:8080/boot.ipxe?"},
		{"strict, A nowhere: reboot loop", func(i *wire.Info) {
			i.Group.Assigned = 4
			i.Group.Versions = append(i.Group.Versions, wire.VersionInfo{Number: 4})
		}, nil,
			"no server holds the assigned v4 yet"},
		{"panel down, unknown device", nil, errors.New("down"), "panel is unreachable"},
		{"maintenance", func(i *wire.Info) { i.Group.Maintenance, i.Group.MaintenanceDevice = true, 7 }, nil, "group 3's head is not on this server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := info(true, 1)
			if tt.edit != nil {
				tt.edit(in)
			}
			svc, panel, _, _, _ := newTestService(t, in)
			panel.err = tt.err
			s := svc.Script(context.Background(), mac1, uuid1, 0)
			if !strings.HasPrefix(s, "#!ipxe\n") || !strings.Contains(s, tt.want) {
				t.Fatalf("script lacks %q:\n%s", tt.want, s)
			}
		})
	}
}

func TestScriptFromCacheWhenPanelIsDown(t *testing.T) {
	in := info(false, 1)
	svc, panel, _, _, _ := newTestService(t, in)
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot") {
		t.Fatalf("online:\n%s", s)
	}
	panel.err = wire.ErrUnreachable
	in.Device.CloneGroupID, in.Device.CloneVersion, in.Device.CloneServerID = 3, 2, 1
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot") {
		t.Fatalf("non-strict from the cache:\n%s", s)
	}
	// A strict group needs the panel.
	svc2, panel2, _, _, _ := newTestService(t, info(true, 1))
	svc2.Script(context.Background(), mac1, uuid1, 0)
	panel2.err = wire.ErrUnreachable
	if s := svc2.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "strict versioning") {
		t.Fatalf("strict from the cache:\n%s", s)
	}
}

func TestStaticScriptAndBadInput(t *testing.T) {
	if s := ChainScript(); !strings.Contains(s, "chain --replace --autofree /boot.ipxe?mac=${net0/mac:hexhyp}&uuid=${uuid}") {
		t.Fatalf("static script:\n%s", s)
	}
	svc, _, _, _, _ := newTestService(t, info(true, 1))
	if s := svc.Script(context.Background(), "zz", uuid1, 0); !strings.Contains(s, "bad MAC") {
		t.Fatalf("bad mac:\n%s", s)
	}
	if s := svc.Script(context.Background(), mac1, "", 0); !strings.Contains(s, "no SMBIOS UUID") {
		t.Fatalf("no uuid:\n%s", s)
	}
	if got := SANURI(SANTarget{Portal: "10.0.2.2:3261", LUN: 0, IQN: "iqn.x:y"}); got != "iscsi:10.0.2.2::3261:0:iqn.x:y" {
		t.Fatalf("SANURI: %s", got)
	}
	if got := screenText("a\n${x}"); strings.ContainsAny(got, "\n$") {
		t.Fatalf("screenText: %q", got)
	}
}

func TestRestoreFromPanel(t *testing.T) {
	svc, _, target, _, disks := newTestService(t, info(true, 1))
	if _, err := disks.Clone(3, 1, 7); err != nil {
		t.Fatal(err)
	}
	n, err := svc.Restore(context.Background())
	if err != nil || n != 1 || target.added[wire.DeviceIQN(1, 7)].IQN == "" {
		t.Fatalf("restore: %d %v %v", n, err, target.added)
	}
}

func TestRestoreUnexportsEndedMaintenance(t *testing.T) {
	svc, _, target, _, disks := newTestService(t, info(true, 1))
	head := filepath.Join(disks.Root, "groups", "3")
	if err := writeFile(head); err != nil {
		t.Fatal(err)
	}
	iqn := wire.GroupHeadIQN(1, 3)
	if err := svc.Export(iqn, wire.Export{Kind: "group", ID: 3, NetworkID: 1, UUID: uuid1}, head); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := target.added[iqn]; ok {
		t.Fatalf("the group head stays exported after maintenance: %v", target.added)
	}
}

// volumeInfo is device 7 maintaining volume 9; it has no group, only a menu, which the
// volume comes before.
func volumeInfo() *wire.Info {
	in := info(true, 1)
	in.Group = nil
	in.Menu = &wire.MenuInfo{Name: "Pick", Entries: []wire.MenuEntry{{Type: wire.MenuLocal, Label: "Disk"}}}
	in.Volume = &wire.VolumeInfo{ID: 9}
	return in
}

func TestScriptVolumeMaintenance(t *testing.T) {
	svc, _, target, prov, disks := newTestService(t, volumeInfo())
	if err := writeFile(filepath.Join(disks.Root, "volumes", "9")); err != nil {
		t.Fatal(err)
	}
	s := svc.Script(context.Background(), mac1, uuid1, 0)
	iqn := wire.VolumeIQN(1, 9)
	if !strings.Contains(s, "sanboot iscsi:10.0.0.1:::0:"+iqn) || !strings.Contains(s, "volume 9 read-write") {
		t.Fatalf("script:\n%s", s)
	}
	tc, ok := target.added[iqn]
	if !ok || len(tc.LUNs) != 1 || tc.LUNs[0].ReadOnly || tc.LUNs[0].Path != filepath.Join(disks.Root, "volumes", "9") {
		t.Fatalf("volume target: %+v (targets %v)", tc, target.added)
	}
	if len(tc.AllowedInitiators) != 1 || tc.AllowedInitiators[0] != InitiatorName(uuid1) {
		t.Fatalf("ACL: %+v", tc.AllowedInitiators)
	}
	if len(prov.reqs) != 0 {
		t.Fatalf("volume maintenance provisioned a clone: %+v", prov.reqs)
	}
}

func TestScriptVolumeMaintenanceAnswers(t *testing.T) {
	tests := []struct {
		name string
		edit func(*wire.Info)
		want string
	}{
		{"not the master: redirect", func(i *wire.Info) { i.MasterServerID = 2 }, "chain --replace --autofree http://10.0.0.2:8080/boot.ipxe?"},
		{"no volume file", func(i *wire.Info) { i.Volume.ID = 8 }, "volume 8 is not on this server"},
		{"before the group", func(i *wire.Info) { *i = *info(true, 1); i.Volume = &wire.VolumeInfo{ID: 8} }, "volume 8 is not on this server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := volumeInfo()
			tt.edit(in)
			svc, _, target, _, _ := newTestService(t, in)
			if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, tt.want) {
				t.Fatalf("script lacks %q:\n%s", tt.want, s)
			}
			if len(target.added) != 0 {
				t.Fatalf("targets added: %v", target.added)
			}
		})
	}
}

// TestVolumeMaintenanceMovesToAnotherDevice: with the real target, the volume's target
// exported to a first device is replaced when the maintenance moves to a second one, and
// the agent's check removes it once the panel no longer lists it.
func TestVolumeMaintenanceMovesToAnotherDevice(t *testing.T) {
	in := volumeInfo()
	svc, panel, _, _, disks := newTestService(t, in)
	target := iscsi.NewServer(iscsi.Config{})
	svc.cfg.Target = target
	vol := filepath.Join(disks.Root, "volumes", "9")
	if err := os.WriteFile(vol, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	iqn := wire.VolumeIQN(1, 9)
	if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, "sanboot") {
		t.Fatalf("first device:\n%s", s)
	}
	const uuid2 = "c1d0c1d0-0000-4000-8000-000000000008"
	panel.mu.Lock()
	panel.info = volumeInfo()
	panel.info.Device = wire.DeviceInfo{ID: 8, NetworkID: 1, MAC: "52:54:00:00:00:08", UUID: uuid2}
	panel.exports = []wire.Export{{Kind: "volume", ID: 9, NetworkID: 1, UUID: uuid2}}
	panel.mu.Unlock()
	if s := svc.Script(context.Background(), "52:54:00:00:00:08", uuid2, 0); !strings.Contains(s, "sanboot") {
		t.Fatalf("second device:\n%s", s)
	}
	// The periodic check with the volume still listed keeps it (same ACL: a no-op).
	if n, err := svc.restore(context.Background(), false); err != nil || n != 1 {
		t.Fatalf("check while listed: %d %v", n, err)
	}
	if got := target.Targets(); len(got) != 1 || got[0] != iqn {
		t.Fatalf("targets: %v", got)
	}
	if err := target.AddTarget(TargetConfig(iqn, vol, uuid2, false)); err != nil {
		t.Fatalf("the target does not admit the second device only: %v", err)
	}
	// Maintenance ends: the next check removes the target.
	panel.mu.Lock()
	panel.exports = []wire.Export{}
	panel.mu.Unlock()
	if _, err := svc.restore(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if got := target.Targets(); len(got) != 0 {
		t.Fatalf("targets after maintenance: %v", got)
	}
}

// Redirects count their hops in the URL; past maxHops a server that would redirect again
// answers a reboot loop that says why, so two servers each sure the other holds the disk
// do not pass a device back and forth for ever.
func TestRedirectHopsAreBounded(t *testing.T) {
	in := info(true, 1)
	in.Group.Assigned = 4
	in.Group.Versions = append(in.Group.Versions, wire.VersionInfo{Number: 4, Servers: []uint{2}})
	svc, _, _, _, _ := newTestService(t, in)
	get := func(hop string) string {
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, httptest.NewRequest("GET", "/boot.ipxe?mac="+mac1+"&uuid="+uuid1+hop, nil))
		return rec.Body.String()
	}
	if s := get(""); !strings.Contains(s, "chain --replace --autofree http://10.0.0.2:8080/boot.ipxe?hop=1&mac=") {
		t.Fatalf("first redirect:\n%s", s)
	}
	if s := get("&hop=2"); !strings.Contains(s, "boot.ipxe?hop=3&mac=") {
		t.Fatalf("third redirect:\n%s", s)
	}
	if s := get("&hop=3"); strings.Contains(s, "chain") || !strings.Contains(s, "redirected 3 times") || !strings.Contains(s, "reboot") {
		t.Fatalf("past the limit:\n%s", s)
	}
}

// With a CHAP key every target requires CHAP with its own secret, and the sanboot script
// carries the credentials.
func TestScriptWithCHAP(t *testing.T) {
	in := info(true, 1)
	svc, _, target, _, _ := newTestService(t, in)
	svc.cfg.CHAPKey = []byte("k")
	s := svc.Script(context.Background(), mac1, uuid1, 0)
	iqn := wire.DeviceIQN(1, 7)
	user, secret := CHAPCredentials([]byte("k"), iqn)
	if !strings.Contains(s, "set username "+user+"\nset password "+secret+"\n") || !strings.Contains(s, "sanboot iscsi:") {
		t.Fatalf("script:\n%s", s)
	}
	tc := target.added[iqn]
	if tc.CHAP == nil || tc.CHAP.User != user || tc.CHAP.Secret != secret || len(secret) != 16 {
		t.Fatalf("target CHAP: %+v", tc.CHAP)
	}
	if _, other := CHAPCredentials([]byte("k"), wire.DeviceIQN(1, 8)); other == secret {
		t.Fatal("two targets share a CHAP secret")
	}
}

type failingProvisioner struct{ err error }

func (f failingProvisioner) Provision(context.Context, wire.ProvisionRequest) error { return f.err }

// When the device needs a new clone and provisioning fails (Temporal unreachable, the
// clone refused): a non-strict device boots its old clone as is, a strict one gets a
// reboot loop saying why, and a device locked meanwhile is asked again.
func TestScriptWhenProvisioningFails(t *testing.T) {
	for _, tt := range []struct {
		name   string
		strict bool
		err    error
		want   string
	}{
		{"non-strict, engine unreachable: the old clone", false, wire.ErrUnreachable, "sanboot iscsi:"},
		{"strict, engine unreachable: reboot loop", true, wire.ErrUnreachable, "preparing the disk failed"},
		{"locked meanwhile: ask again", true, ErrLocked, "was just locked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := info(tt.strict, 2)
			svc, _, _, _, disks := newTestService(t, in)
			if _, err := disks.Clone(3, 1, 7); err != nil {
				t.Fatal(err)
			}
			in.Device.CloneGroupID, in.Device.CloneVersion, in.Device.CloneServerID = 3, 1, 1
			svc.cfg.Provision = failingProvisioner{tt.err}
			if s := svc.Script(context.Background(), mac1, uuid1, 0); !strings.Contains(s, tt.want) {
				t.Fatalf("script lacks %q:\n%s", tt.want, s)
			}
		})
	}
}

// TestExportBuildsTheTargetForItsDiskAndDevice: the target configuration kept per target
// follows a new disk (a reprovisioned clone) and a new SMBIOS UUID (a replaced board).
// (The fake target replaces a target; the real one refuses another configuration.)
func TestExportBuildsTheTargetForItsDiskAndDevice(t *testing.T) {
	svc, _, target, _, disks := newTestService(t, info(true, 1))
	iqn := wire.DeviceIQN(1, 7)
	a, b := filepath.Join(disks.Root, "a"), filepath.Join(disks.Root, "b")
	const uuid2 = "c1d0c1d0-0000-4000-8000-000000000008"
	for i, step := range []struct{ path, uuid string }{{a, uuid1}, {a, uuid1}, {b, uuid1}, {b, uuid2}} {
		if err := svc.Export(iqn, wire.Export{Kind: "device", ID: 7, NetworkID: 1, UUID: step.uuid}, step.path); err != nil {
			t.Fatal(err)
		}
		tc := target.added[iqn]
		if len(tc.LUNs) != 1 || tc.LUNs[0].Path != step.path || len(tc.AllowedInitiators) != 1 || tc.AllowedInitiators[0] != InitiatorName(step.uuid) {
			t.Fatalf("export %d (%s, %s): target %+v", i, step.path, step.uuid, tc)
		}
	}
}
