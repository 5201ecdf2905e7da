package bootviewtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
	"github.com/clusterducks/clusterducks/test/netboot"
)

// TestBootOutcomes plays a device with the Go initiator against the agent's real target
// and the real panel: a served script, a login and reads that go on past the bound end
// `up`; a second boot request within the bound ends the boot it follows `failed`; a
// check-in ends the next one `up` before the bound. Each result lands on the boot's own
// history row, and the version's stats count the device's latest boot.
func TestBootOutcomes(t *testing.T) {
	const upAfter = 2 * time.Second
	s := newSite(t, time.Minute)
	devs := KnownDevices(t, s.p, s.disks, s.loose, 300, 1, 1)
	a := Start(t, s.p, Options{Disks: s.disks, Config: func(c *boot.Config) {
		c.Outcomes, c.OutcomePoll = boot.OutcomeBounds{UpAfter: upAfter}, 50*time.Millisecond
	}})
	synced(t, s.p, a, 1)
	d := devs[0]
	row := s.p.Device(d.MAC)
	iqn := wire.DeviceIQN(row.NetworkID, row.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	login := func() *initiator.Session {
		t.Helper()
		sess, err := initiator.Dial(ctx, a.ISCSI, initiator.Options{InitiatorName: boot.InitiatorName(d.UUID), TargetName: iqn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		return sess
	}
	read := func(sess *initiator.Session, lba uint64) {
		t.Helper()
		if err := sess.Read(ctx, 0, lba, 512, make([]byte, 512)); err != nil {
			t.Fatal(err)
		}
	}
	// history waits for the device's n-th boot row to have a result and returns the rows, oldest first.
	history := func(n int) []models.BootHistory {
		t.Helper()
		var rows []models.BootHistory
		eventually(t, 30*time.Second, func() error {
			rows = nil
			if err := s.p.DB.Where("device_id = ?", row.ID).Order("id").Find(&rows).Error; err != nil {
				return err
			}
			if len(rows) < n || rows[n-1].Result == models.BootResultPending {
				return fmt.Errorf("boot rows %+v, want boot %d decided", rows, n)
			}
			return nil
		})
		return rows
	}

	// 1. Up: the script, a login, reads every 100 ms past the bound.
	served := time.Now()
	expectKind(t, bootScript(t, a, d), "sanboot", iqn)
	sess := login()
	for time.Since(served) < upAfter+time.Second {
		read(sess, uint64(time.Since(served)/(100*time.Millisecond)))
		time.Sleep(100 * time.Millisecond)
	}
	rows := history(1)
	b1 := rows[0]
	if b1.Result != models.BootResultUp || b1.BootID == "" || b1.UpMS < upAfter.Milliseconds() || b1.UpMS > (upAfter+time.Second).Milliseconds() {
		t.Fatalf("boot 1: %+v, want up after about %v", b1, upAfter)
	}
	t.Logf("boot 1: %s in %d ms (%s)", b1.Result, b1.UpMS, b1.ResultReason)
	sess.Close()

	// 2. Failed: the script, a login and one read, and the device asks again 500 ms later.
	expectKind(t, bootScript(t, a, d), "sanboot", iqn)
	sess = login()
	read(sess, 0)
	time.Sleep(500 * time.Millisecond)
	expectKind(t, bootScript(t, a, d), "sanboot", iqn)
	rows = history(2)
	if b2 := rows[1]; b2.Result != models.BootResultFailed || !strings.Contains(b2.ResultReason, "asked for a boot script again") || b2.BootID == b1.BootID {
		t.Fatalf("boot 2: %+v, want failed by the new request", b2)
	}
	sess.Close()

	// 3. The third boot (the request that failed the second) checks in: up before the
	// bound. Without CHAP the check-in names the device's UUID and comes from the
	// address of its live session; another UUID, or no session, is refused.
	sess = login()
	read(sess, 0)
	checkIn := func(uuid string) int {
		t.Helper()
		u := strings.TrimSuffix(a.URL, "/boot.ipxe") + "/booted?mac=" + d.MAC + "&uuid=" + uuid
		resp, err := http.Post(u, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := checkIn(netboot.DeviceN(301).UUID); code != http.StatusForbidden {
		t.Fatalf("check-in with another UUID: %d, want 403", code)
	}
	if code := checkIn(d.UUID); code != http.StatusNoContent {
		t.Fatalf("check-in: %d, want 204", code)
	}
	rows = history(3)
	b3 := rows[2]
	if b3.Result != models.BootResultUp || b3.ResultReason != "checked in" || b3.UpMS >= upAfter.Milliseconds() {
		t.Fatalf("boot 3: %+v, want up by its check-in, before the bound", b3)
	}
	if len(rows) != 3 {
		t.Fatalf("%d boot rows, want 3 (a result adds no row)", len(rows))
	}
	// The version's stats count the device's latest boot: up, with its time to up.
	st, err := models.VersionBootStats(ctx, s.p.DB, s.loose.ID, 1, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Boots != 1 || st.Up != 1 || st.P95 != time.Duration(b3.UpMS)*time.Millisecond {
		t.Fatalf("version stats %+v, want the latest boot, up in %d ms", st, b3.UpMS)
	}
	sess.Close()
	eventually(t, 10*time.Second, func() error {
		if code := checkIn(d.UUID); code != http.StatusForbidden {
			return fmt.Errorf("check-in with no session: %d, want 403", code)
		}
		return nil
	})
}
