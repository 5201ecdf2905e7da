package storage

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"go.temporal.io/sdk/temporal"
)

// testPKI is a panel CA and the certificates it signs, as activities/panel/pki makes them
// (identity in the URI and DNS SANs, client and server use).
type testPKI struct {
	ca   *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, _, err := wire.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test panel CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{ca: ca, key: key, pool: pool}
}

func (p *testPKI) cert(t *testing.T, id wire.AgentIdentity) tls.Certificate {
	t.Helper()
	key, _, err := wire.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: id.CommonName()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{id.URI()}, DNSNames: []string{id.DNSName()}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var (
	masterID = wire.AgentIdentity{NetworkID: 1, ServerID: 1}
	slaveID  = wire.AgentIdentity{NetworkID: 1, ServerID: 2}
)

// replRig is a master (fake pool "mpool" behind the real endpoint over mutual TLS) and a
// slave (fake pool "spool") whose Replicate activity pulls from it.
type replRig struct {
	master, slave *fakeZFS
	srv           *httptest.Server
	acts          *Activities
	rs            *ReplicationServer
	writes        atomic.Int64 // socket writes of the master's connections
}

func newRig(t *testing.T, maxSends int, slave wire.AgentIdentity) *replRig {
	t.Helper()
	return newRigWith(t, maxSends, slave, nil)
}

// newRigWith is newRig with the master's server changed by tweak before it starts.
func newRigWith(t *testing.T, maxSends int, slave wire.AgentIdentity, tweak func(*replRig)) *replRig {
	t.Helper()
	pki := newPKI(t)
	r := &replRig{master: newFake(), slave: newFake()}
	r.rs = &ReplicationServer{ZFS: r.master, Pool: "mpool", Self: masterID, MaxSends: maxSends}
	r.srv = httptest.NewUnstartedServer(r.rs.Handler())
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.cert(t, masterID)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	if tweak != nil {
		tweak(r)
	}
	// As the agent serves it: connections that gather a stream's records.
	r.srv.Listener = GatherListener(countingListener{r.srv.Listener, &r.writes})
	r.srv.Config.ConnContext = GatherContext
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	sc := pki.cert(t, slave)
	r.acts = &Activities{ReplicationZFS: r.slave, HeartbeatEvery: 100 * time.Millisecond,
		ReplicationTLS: func() (*tls.Config, error) {
			return &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{sc}}, nil
		}}
	return r
}

func (r *replRig) input(ds, snap, guid string) ReplicateInput {
	return ReplicateInput{MasterAddr: strings.TrimPrefix(r.srv.URL, "https://"), Master: masterID, Pool: "spool",
		Dataset: ds, Snapshot: snap, GUID: guid}
}

func (r *replRig) guids(t *testing.T, ds string) []string {
	snaps, err := r.slave.Snapshots(context.Background(), "spool/"+ds)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range snaps {
		out = append(out, s.Name+"="+s.GUID)
	}
	return out
}

func TestReplicateFullThenIncrementalByGUID(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "group-7")
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-7", g1))
	if err != nil || res.GUID != g1 || res.UpToDate {
		t.Fatalf("full: %+v %v", res, err)
	}
	// The group is a clone of the volume's snapshot: its first stream builds on the origin.
	r.master.ds["mpool/iscsi/groups/7"] = &fakeDS{origin: "mpool/iscsi/volumes/5@group-7"}
	v1 := r.master.snapshot("mpool/iscsi/groups/7", "v1")
	v2 := r.master.snapshot("mpool/iscsi/groups/7", "v2")
	in := r.input("iscsi/groups/7", "v2", v2)
	in.Origin = "iscsi/volumes/5@group-7"
	before := r.master.sent.Load()
	if res, err = r.acts.Replicate(ctx, in); err != nil || res.GUID != v2 {
		t.Fatalf("group: %+v %v", res, err)
	}
	if got := r.guids(t, "iscsi/groups/7"); !slices.Equal(got, []string{"v1=" + v1, "v2=" + v2}) {
		t.Errorf("slave's group snapshots %v (every version, guids kept)", got)
	}
	if len(res.Snapshots) != 2 || res.Snapshots[1].GUID != v2 {
		t.Errorf("the result's listing %+v, want the slave's two versions", res.Snapshots)
	}
	if o := r.slave.ds["spool/iscsi/groups/7"].origin; o != "spool/iscsi/volumes/5@group-7" {
		t.Errorf("slave's group origin %q, want its own volume's snapshot", o)
	}
	if sent := r.master.sent.Load() - before; sent != 2*int64(r.master.snapSize) {
		t.Errorf("sent %d bytes for two versions, want %d (incremental from the origin)", sent, 2*r.master.snapSize)
	}
	// The master holds the slave's base (v2) only, once the acknowledgement's release
	// (answered before it runs) is done.
	r.rs.WaitReleases()
	tag := wire.HoldTag(slaveID.ServerID)
	if h := r.master.holds["mpool/iscsi/groups/7@v2"]; !slices.Equal(h, []string{tag}) || len(r.master.holds["mpool/iscsi/groups/7@v1"]) != 0 {
		t.Errorf("holds %v", r.master.holds)
	}
	// Repeated: nothing is sent, the snapshot is acknowledged again.
	before = r.master.sent.Load()
	if res, err = r.acts.Replicate(ctx, in); err != nil || !res.UpToDate || r.master.sent.Load() != before {
		t.Errorf("repeat: %+v %v, sent %d", res, err, r.master.sent.Load()-before)
	}
	// v3 comes as an incremental from v2, matched by guid even though the slave renamed nothing.
	v3 := r.master.snapshot("mpool/iscsi/groups/7", "v3")
	before = r.master.sent.Load()
	if res, err = r.acts.Replicate(ctx, r.input("iscsi/groups/7", "v3", v3)); err != nil || res.Bytes == 0 {
		t.Fatalf("v3: %+v %v", res, err)
	}
	if sent := r.master.sent.Load() - before; sent != int64(r.master.snapSize) {
		t.Errorf("v3 sent %d bytes, want one snapshot's %d", sent, r.master.snapSize)
	}
	// The slave is removed: its holds go.
	r.rs.WaitReleases()
	rel, err := r.masterActs().ReleaseReplicationHolds(ctx, ReleaseReplicationHoldsInput{Pool: "mpool", SlaveID: slaveID.ServerID})
	if err != nil || !slices.Equal(rel.Released, []string{"mpool/iscsi/groups/7@v3", "mpool/iscsi/volumes/5@group-7"}) || len(r.master.holds) != 0 {
		t.Errorf("release: %+v %v, left %v", rel, err, r.master.holds)
	}
}

// The hold runs beside the send's start: when it fails, the stream is closed unsent and
// the slave receives nothing; the retry replicates once the hold works.
func TestSendRefusedWhenItsHoldFails(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "group-7")
	r.master.mu.Lock()
	r.master.holdErr = &zfs.Error{Command: "zfs hold", Stderr: "cannot hold snapshot 'mpool/iscsi/volumes/5@group-7': out of space"}
	r.master.mu.Unlock()
	_, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-7", g1))
	if err == nil || !strings.Contains(err.Error(), "out of space") {
		t.Fatalf("replicate with the hold failing: %v, want the hold's error", err)
	}
	if n := r.master.sent.Load(); n != 0 {
		t.Errorf("%d bytes sent without a hold", n)
	}
	if _, ok := r.slave.ds["spool/iscsi/volumes/5"]; ok {
		t.Error("the slave received a dataset without the master's hold")
	}
	r.master.mu.Lock()
	r.master.holdErr = nil
	r.master.mu.Unlock()
	if res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-7", g1)); err != nil || res.GUID != g1 {
		t.Fatalf("retry: %+v %v", res, err)
	}
}

func (r *replRig) masterActs() *Activities { return &Activities{ReplicationZFS: r.master} }

func TestReplicateResumesACutStream(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	r.master.snapSize = 1 << 20
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	r.master.cutAfter = 300 << 10 // the connection drops after 300 KiB
	in := r.input("iscsi/volumes/5", "s1", g)
	if _, err := r.acts.Replicate(ctx, in); err == nil {
		t.Fatal("a cut stream succeeded")
	}
	tok, _ := r.slave.ResumeToken(ctx, "spool/iscsi/volumes/5")
	if tok == "" {
		t.Fatal("no resume token after the cut")
	}
	res, err := r.acts.Replicate(ctx, in)
	if err != nil || !res.Resumed || res.GUID != g {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if sent := r.master.sent.Load(); float64(sent) > 1.2*float64(r.master.snapSize) {
		t.Errorf("sent %d bytes in total for %d", sent, r.master.snapSize)
	}
	if tok, _ := r.slave.ResumeToken(ctx, "spool/iscsi/volumes/5"); tok != "" {
		t.Errorf("token left: %q", tok)
	}
}

// Without the master's guid in its input (a volume's snapshot: the panel records none),
// the slave ends with the guid the master's answer names: after a full stream, when it
// holds the snapshot already, and after a cut stream resumed (a fresh request names it).
func TestReplicateTakesTheGUIDFromTheMaster(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	r.master.snapSize = 1 << 20
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "group-7")
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-7", ""))
	if err != nil || res.GUID != g1 || res.UpToDate {
		t.Fatalf("full: %+v %v", res, err)
	}
	if got := r.guids(t, "iscsi/volumes/5"); !slices.Equal(got, []string{"group-7=" + g1}) {
		t.Errorf("slave's snapshots %v", got)
	}
	if res, err = r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-7", "")); err != nil || res.GUID != g1 || !res.UpToDate {
		t.Errorf("repeat: %+v %v", res, err)
	}
	g2 := r.master.snapshot("mpool/iscsi/volumes/5", "group-9")
	r.master.cutAfter = 300 << 10
	if _, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-9", "")); err == nil {
		t.Fatal("a cut stream succeeded")
	}
	res, err = r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-9", ""))
	if err != nil || res.GUID != g2 || !res.Resumed {
		t.Fatalf("resumed: %+v %v", res, err)
	}
	if got := r.guids(t, "iscsi/volumes/5"); !slices.Equal(got, []string{"group-7=" + g1, "group-9=" + g2}) {
		t.Errorf("slave's snapshots after the resume %v", got)
	}
	// The master's snapshot of that name was made again (another guid): the slave's
	// copy is not taken for it.
	delete(r.master.ds, "mpool/iscsi/volumes/5")
	g3 := r.master.snapshot("mpool/iscsi/volumes/5", "group-9")
	if res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "group-9", "")); err == nil && res.GUID != g3 {
		t.Errorf("a snapshot made again: %+v, want guid %s or an error", res, g3)
	}
}

func TestReplicateStaleTokenRestartsFromTheCommonSnapshot(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	ds := "mpool/iscsi/groups/7"
	v1 := r.master.snapshot(ds, "v1")
	if _, err := r.acts.Replicate(ctx, r.input("iscsi/groups/7", "v1", v1)); err != nil {
		t.Fatal(err)
	}
	v2 := r.master.snapshot(ds, "v2")
	r.master.cutAfter = 1000
	if _, err := r.acts.Replicate(ctx, r.input("iscsi/groups/7", "v2", v2)); err == nil {
		t.Fatal("a cut stream succeeded")
	}
	// v2 is destroyed on the master before the slave comes back; v3 is wanted now.
	r.master.destroy(ds + "@v2")
	v3 := r.master.snapshot(ds, "v3")
	before := r.master.sent.Load()
	res, err := r.acts.Replicate(ctx, r.input("iscsi/groups/7", "v3", v3))
	if err != nil || res.GUID != v3 {
		t.Fatalf("after a stale token: %+v %v", res, err)
	}
	if got := r.guids(t, "iscsi/groups/7"); !slices.Equal(got, []string{"v1=" + v1, "v3=" + v3}) {
		t.Errorf("slave holds %v", got)
	}
	if sent := r.master.sent.Load() - before; sent != int64(r.master.snapSize) {
		t.Errorf("sent %d: want one incremental from v1 (%d), not a full stream", sent, r.master.snapSize)
	}
}

func TestReplicateCutsAStalledStream(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	r.master.cutAfter, r.master.stall = 20000, true // past the server's 4 KiB buffer
	in := r.input("iscsi/volumes/5", "s1", g)
	in.StallSeconds = 1
	_, err := r.acts.Replicate(ctx, in)
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("stalled stream: %v", err)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() {
		t.Errorf("a stall must be retried: %v", err)
	}
	if tok, _ := r.slave.ResumeToken(ctx, "spool/iscsi/volumes/5"); tok == "" {
		t.Error("a stalled stream left no resume token")
	}
	if res, err := r.acts.Replicate(ctx, in); err != nil || !res.Resumed {
		t.Errorf("retry: %+v %v", res, err)
	}
}

func TestReplicationRefusesOutsiders(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		slave wire.AgentIdentity
		ds    string
	}{
		{"another network", wire.AgentIdentity{NetworkID: 2, ServerID: 9}, "iscsi/volumes/5"},
		{"the master itself", masterID, "iscsi/volumes/5"},
		{"a device disk", slaveID, "iscsi/devices/3"},
		{"a path escape", slaveID, "iscsi/volumes/../../x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 0, tc.slave)
			g := r.master.snapshot("mpool/"+strings.TrimPrefix(tc.ds, ""), "s1")
			in := r.input(tc.ds, "s1", g)
			if tc.ds != "iscsi/volumes/5" {
				// The slave refuses to ask for it; ask the endpoint directly as well.
				c, err := r.acts.client(in)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := startPull(ctx, c, in).send(wire.SendRequest{Dataset: tc.ds, Snapshot: "s1"})
				var re *wire.ReplicationError
				if !errors.As(err, &re) || re.Code != wire.CodeForbidden {
					t.Errorf("direct request: %v %v", resp, err)
				}
			}
			_, err := r.acts.Replicate(ctx, in)
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || !app.NonRetryable() {
				t.Errorf("want a non-retryable refusal, got %v", err)
			}
			if r.master.sent.Load() != 0 {
				t.Errorf("sent %d bytes", r.master.sent.Load())
			}
		})
	}
}

func TestReplicationRefusesAnImpostorMaster(t *testing.T) {
	r := newRig(t, 0, slaveID)
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	in := r.input("iscsi/volumes/5", "s1", g)
	in.Master = wire.AgentIdentity{NetworkID: 1, ServerID: 3} // the slave meant another server
	if _, err := r.acts.Replicate(context.Background(), in); err == nil || r.master.sent.Load() != 0 {
		t.Fatalf("pulled from the wrong server: %v", err)
	}
}

func TestReplicationBusyBeyondTheCap(t *testing.T) {
	r := newRig(t, 1, slaveID)
	ctx := context.Background()
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	r.master.block = make(chan struct{})
	in := r.input("iscsi/volumes/5", "s1", g)
	var wg sync.WaitGroup
	wg.Add(1)
	var first error
	go func() { defer wg.Done(); _, first = r.acts.Replicate(ctx, in) }()
	// Wait for the first send to take the one slot.
	for i := 0; len(r.rs.slots) == 0; i++ {
		if i > 500 {
			t.Fatal("the first send never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := r.input("iscsi/volumes/6", "s1", "1")
	c, err := r.acts.client(other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = startPull(ctx, c, other).send(wire.SendRequest{Dataset: "iscsi/volumes/6", Snapshot: "s1"})
	var re *wire.ReplicationError
	if !errors.As(err, &re) || re.Code != wire.CodeBusy {
		t.Errorf("second send: %v", err)
	}
	close(r.master.block)
	wg.Wait()
	if first != nil {
		t.Errorf("first send: %v", first)
	}
}

func TestReplicateBandwidthLimit(t *testing.T) {
	r := newRig(t, 0, slaveID)
	r.master.snapSize = 512 << 10
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	in := r.input("iscsi/volumes/5", "s1", g)
	in.BytesPerSecond = 1 << 20
	start := time.Now()
	if _, err := r.acts.Replicate(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	// 512 KiB at 1 MiB/s with a 256 KiB burst takes at least a quarter second: a lower
	// bound, which load cannot make fail.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("512 KiB at 1 MiB/s took %s", took)
	}
}

// TestSnapshotWrittenKeepsAnIdleVDisk: a vdisk unchanged since its newest snapshot (idle,
// or the copy a move left behind) gets no new one: that snapshot is the answer. The
// vdisks root is one a server sends from (a move, a backup).
func TestSnapshotWrittenKeepsAnIdleVDisk(t *testing.T) {
	f := newFake()
	f.snapshot("tank/vdisks/6", "move-1")
	a := &Activities{ReplicationZFS: f}
	res, err := a.SnapshotWritten(context.Background(), SnapshotInput{Dataset: "tank/vdisks/6", Name: "backup-2"})
	if err != nil || res.Created || res.Snapshot != "tank/vdisks/6@move-1" || res.GUID == "" {
		t.Fatalf("idle vdisk: %+v %v", res, err)
	}
	if snaps, _ := f.Snapshots(context.Background(), "tank/vdisks/6"); len(snaps) != 1 {
		t.Fatalf("snapshots %+v: a new one was taken", snaps)
	}
	if _, err := a.SnapshotWritten(context.Background(), SnapshotInput{Dataset: "tank/vdisks/7", Name: "backup-2"}); !errors.Is(err, activities.ErrDatasetNotFound) {
		t.Errorf("missing vdisk: %v", err)
	}
	if !replicated("vdisks/6") || replicated("vdisks/6/x") || replicated("iscsi/devices/3") {
		t.Error("vdisks/<id> is sent, nothing under it nor a device's disk")
	}
}

// TestReplicatedCTemplates: a ctemplate's dataset is sent (its versions go to every server
// of the network), nothing under it; a container's clone never is.
func TestReplicatedCTemplates(t *testing.T) {
	if !replicated("iscsi/ctemplates/4") || replicated("iscsi/ctemplates/4/x") || replicated("iscsi/containers/4") {
		t.Error("iscsi/ctemplates/<id> is sent, nothing under it nor a container's clone")
	}
}

// TestReplicationCommandCount counts the zfs commands of a full and of an incremental
// replication on each side (each ReplicationZFS call is one command of the real package):
// in a TCG guest each costs 0.2-3 s, and raw zfs send | zfs receive runs two.
func TestReplicationCommandCount(t *testing.T) {
	r := newRig(t, 0, slaveID)
	ctx := context.Background()
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	r.master.commands()
	if _, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "s1", g1)); err != nil {
		t.Fatal(err)
	}
	mt, mby := r.master.commands()
	st, sby := r.slave.commands()
	t.Logf("full: master %d %v, slave %d %v", mt, mby, st, sby)
	// Before the listing was merged: master 10, slave 4; before the acknowledgement
	// trusted the send's holds: master 5.
	// The slave's verifying listing is gone too: a stream of one snapshot names its guid.
	if mt > 3 || st > 2 {
		t.Errorf("a full replication ran %d commands on the master, %d on the slave; want at most 3 and 2", mt, st)
	}
	g2 := r.master.snapshot("mpool/iscsi/volumes/5", "s2")
	r.master.commands()
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "s2", g2))
	if err != nil {
		t.Fatal(err)
	}
	r.rs.WaitReleases()
	mi, miby := r.master.commands()
	si, siby := r.slave.commands()
	t.Logf("incremental: master %d %v, slave %d %v", mi, miby, si, siby)
	// Before: master 11, slave 4; then master 6. The release of the old base runs
	// after the acknowledgement's answer.
	if mi > 4 || si > 2 || miby["Release"] != 1 {
		t.Errorf("an incremental ran %d commands on the master (%v), %d on the slave; want at most 4, one of them the release, and 2", mi, miby, si)
	}
	// Verified by the stream, the result still names the slave's snapshots at the end.
	var got []string
	for _, sn := range res.Snapshots {
		got = append(got, sn.Name+"="+sn.GUID)
	}
	if want := r.guids(t, "iscsi/volumes/5"); !slices.Equal(got, want) {
		t.Errorf("the result names %v, the slave holds %v", got, want)
	}
}

// A slave that holds snapshots after the stream's base ends with the base and the
// received snapshot (zfs receive -F destroys the later ones); a full stream or one based
// on a clone's origin leaves the received one alone.
func TestReceivedOnto(t *testing.T) {
	before := []zfs.Snap{{Name: "a", GUID: "1"}, {Name: "b", GUID: "2"}, {Name: "x", GUID: "9"}}
	got := zfs.Snap{Name: "c", GUID: "3"}
	for _, c := range []struct {
		from string
		want []zfs.Snap
	}{
		{"2", []zfs.Snap{before[0], before[1], got}},
		{"1", []zfs.Snap{before[0], got}},
		{"", []zfs.Snap{got}},
		{"77", []zfs.Snap{got}}, // the origin's snapshot: a new clone
	} {
		if res := receivedOnto(before, c.from, got); !slices.Equal(res, c.want) {
			t.Errorf("from %q: %v, want %v", c.from, res, c.want)
		}
	}
	if len(before) != 3 || before[2].Name != "x" {
		t.Errorf("the listing before was changed: %v", before)
	}
}

// The slave's request names its dataset before its body: the master lists the dataset
// while the slave lists its own copy (the body's Have), not after.
func TestReplicationListingsOverlap(t *testing.T) {
	r := newRig(t, 0, slaveID)
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	masterListed := make(chan struct{})
	var once sync.Once
	r.master.stateHook = func(ds string) {
		if ds == "mpool/iscsi/volumes/5" {
			once.Do(func() { close(masterListed) })
		}
	}
	overlapped := false
	r.slave.stateHook = func(string) {
		if overlapped {
			return // the verifying listing after the stream
		}
		select {
		case <-masterListed:
			overlapped = true
		case <-time.After(5 * time.Second):
		}
	}
	if _, err := r.acts.Replicate(context.Background(), r.input("iscsi/volumes/5", "s1", g1)); err != nil {
		t.Fatal(err)
	}
	if !overlapped {
		t.Error("the master listed its dataset only after the slave's listing")
	}
	if mt, mby := r.master.commands(); mby["State"] != 1 {
		t.Errorf("the master ran %d commands %v, want one listing", mt, mby)
	}
}

// acknowledgedOnce is a rig whose slave received and acknowledged volume 5's snapshot s1
// (its guid returned): the master remembers it as the slave's next base.
func acknowledgedOnce(t *testing.T) (*replRig, string) {
	t.Helper()
	r := newRig(t, 0, slaveID)
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	if _, err := r.acts.Replicate(context.Background(), r.input("iscsi/volumes/5", "s1", g1)); err != nil {
		t.Fatal(err)
	}
	r.rs.WaitReleases()
	return r, g1
}

// TestReplicationSpeculatesTheNextIncremental: once a slave acknowledged a snapshot, the
// headers of its next request (dataset and snapshot) let the master start the incremental
// from that snapshot while the slave still lists its copy; the body asks for that stream,
// and it is the one sent: no second zfs send, hold or listing.
func TestReplicationSpeculatesTheNextIncremental(t *testing.T) {
	r, g1 := acknowledgedOnce(t)
	ctx := context.Background()
	const ds = "mpool/iscsi/volumes/5"
	g2 := r.master.snapshot(ds, "s2")
	r.master.commands()
	started := make(chan zfs.SendArgs, 4)
	r.master.sendHook = func(a zfs.SendArgs) { started <- a }
	var early zfs.SendArgs
	var listings atomic.Int32
	r.slave.stateHook = func(string) {
		if listings.Add(1) > 1 {
			return // only the slave's first listing waits
		}
		select {
		case early = <-started:
		case <-time.After(5 * time.Second):
		}
	}
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "s2", g2))
	if err != nil || res.GUID != g2 {
		t.Fatalf("incremental: %+v %v", res, err)
	}
	if want := (zfs.SendArgs{Snapshot: ds + "@s2", From: ds + "@s1", Single: true}); early != want {
		t.Fatalf("while the slave listed its copy, the master started %+v, want %+v", early, want)
	}
	if _, by := r.master.commands(); by["Send"] != 1 || by["Hold"] != 1 || by["State"] != 1 {
		t.Errorf("the master ran %v, want one listing, one hold and one send", by)
	}
	if got := r.guids(t, "iscsi/volumes/5"); !slices.Equal(got, []string{"s1=" + g1, "s2=" + g2}) {
		t.Errorf("slave has %v", got)
	}
}

// TestReplicationDropsAWrongSpeculation: a slave that lost the snapshot it acknowledged
// asks (in its body) for the full stream; the incremental the master started from the
// request's headers is dropped unsent, and the full stream is what the slave receives.
func TestReplicationDropsAWrongSpeculation(t *testing.T) {
	r, _ := acknowledgedOnce(t)
	ctx := context.Background()
	const ds = "mpool/iscsi/volumes/5"
	r.slave.destroy("spool/iscsi/volumes/5@s1")
	g2 := r.master.snapshot(ds, "s2")
	var mu sync.Mutex
	var sends []zfs.SendArgs
	var closedBefore int64 = -1
	base := r.master.closed.Load() // the first transfer's stream
	r.master.sendHook = func(a zfs.SendArgs) {
		mu.Lock()
		defer mu.Unlock()
		if len(sends) == 1 {
			closedBefore = r.master.closed.Load() - base
		}
		sends = append(sends, a)
	}
	res, err := r.acts.Replicate(ctx, r.input("iscsi/volumes/5", "s2", g2))
	if err != nil || res.GUID != g2 {
		t.Fatalf("after the slave lost its base: %+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []zfs.SendArgs{{Snapshot: ds + "@s2", From: ds + "@s1", Single: true}, {Snapshot: ds + "@s2"}}
	if !slices.Equal(sends, want) {
		t.Fatalf("the master started %+v, want the speculation then the full stream %+v", sends, want)
	}
	if closedBefore != 1 {
		t.Errorf("%d streams were closed when the full stream started, want the speculation's", closedBefore)
	}
	if got := r.guids(t, "iscsi/volumes/5"); !slices.Equal(got, []string{"s2=" + g2}) {
		t.Errorf("slave has %v", got)
	}
}

// A slave that sends its request's headers and never its body gets its sending slot
// taken back after the body wait: the next request is served.
func TestSendSlotFreedWhenTheBodyNeverComes(t *testing.T) {
	r := newRig(t, 1, slaveID)
	r.rs.BodyWait = 200 * time.Millisecond
	g1 := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	in := r.input("iscsi/volumes/5", "s1", g1)
	c, err := r.acts.client(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	silent := startPull(ctx, c, in) // its body is never written
	got := <-silent.done
	silent.sent = true
	if got.err != nil || got.resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a request without its body: %+v", got)
	}
	got.resp.Body.Close()
	for i := 0; len(r.rs.slots) != 0; i++ { // the handler returns just after its answer
		if i > 200 {
			t.Fatalf("%d sending slots still taken", len(r.rs.slots))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := r.acts.Replicate(ctx, in); err != nil || res.GUID != g1 {
		t.Fatalf("the next request: %+v %v", res, err)
	}
}

// TestSendWaitsForTheAcknowledgementsRelease: an acknowledgement's release runs after its
// answer; a send to the same slave of the same dataset places its holds only after it
// (the release could otherwise take the tag off a snapshot the send just held).
func TestSendWaitsForTheAcknowledgementsRelease(t *testing.T) {
	r := newRig(t, 0, slaveID)
	g := r.master.snapshot("mpool/iscsi/volumes/5", "s1")
	pending := make(chan struct{})
	r.rs.releasing.Store(wire.HoldTag(slaveID.ServerID)+" mpool/iscsi/volumes/5", pending)
	done := make(chan error, 1)
	go func() {
		_, err := r.acts.Replicate(context.Background(), r.input("iscsi/volumes/5", "s1", g))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("replicated during a pending release: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if len(r.master.holds) != 0 {
		t.Errorf("held during a pending release: %v", r.master.holds)
	}
	close(pending)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
