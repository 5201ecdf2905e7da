package boot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// With CHAP a check-in authenticates with the device's target credentials (HTTP Basic):
// none or another target's is 401; its own is 204, and the boot's result reaches the
// panel as up, under the boot id of the boot's first report.
func TestCheckInWithCHAP(t *testing.T) {
	svc, panel, _, _, _ := newTestService(t, info(true, 1))
	svc.cfg.CHAPKey = []byte("k")
	checkIn := func(mac string, creds func(*http.Request)) int {
		req := httptest.NewRequest(http.MethodPost, "/booted?mac="+mac, nil)
		if creds != nil {
			creds(req)
		}
		rec := httptest.NewRecorder()
		svc.CheckIn().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := checkIn(mac1, nil); code != http.StatusNotFound {
		t.Fatalf("check-in before any boot: %d, want 404", code)
	}
	if s := svc.Script(context.Background(), mac1, uuid1, 0); ScriptKind(s) != "sanboot" {
		t.Fatalf("script:\n%s", s)
	}
	user, secret := CHAPCredentials([]byte("k"), wire.DeviceIQN(1, 7))
	_, otherSecret := CHAPCredentials([]byte("k"), wire.DeviceIQN(1, 8))
	for _, c := range []struct {
		name  string
		creds func(*http.Request)
		want  int
	}{
		{"none", nil, http.StatusUnauthorized},
		{"another target's", func(r *http.Request) { r.SetBasicAuth(user, otherSecret) }, http.StatusUnauthorized},
		{"its own", func(r *http.Request) { r.SetBasicAuth(user, secret) }, http.StatusNoContent},
	} {
		if code := checkIn("52-54-00-00-00-07", c.creds); code != c.want {
			t.Fatalf("check-in with %s credentials: %d, want %d", c.name, code, c.want)
		}
	}
	if code := checkIn("nonsense", nil); code != http.StatusBadRequest {
		t.Fatalf("check-in with a bad MAC: %d, want 400", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		panel.mu.Lock()
		reps := append([]wire.Report(nil), panel.reports...)
		panel.mu.Unlock()
		if len(reps) == 2 {
			if reps[0].BootID == "" || reps[0].Result != "" || reps[1].BootID != reps[0].BootID || reps[1].Result != ResultUp || reps[1].Why != "checked in" {
				t.Fatalf("reports %+v, want the boot and then its result up", reps)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reports %+v, want 2", reps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
