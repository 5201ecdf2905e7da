package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

func get(t *testing.T, h interface {
	Test(*http.Request, ...int) (*http.Response, error)
}, path string, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if len(header) == 2 {
		req.Header.Set(header[0], header[1])
	}
	resp, err := h.Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The panel serves install.sh, the agent binary and its sha256 (sha256sum's format),
// computed again when the file changes; a panel without a binary says so in JSON.
func TestDownloads(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "clusterducks")
	if err := os.WriteFile(bin, []byte("version one"), 0o755); err != nil {
		t.Fatal(err)
	}
	app := NewApp()
	(&Downloads{Script: []byte("#!/bin/sh\nmain \"$@\"\n"), Binary: bin}).Mount(app)

	if code, body := get(t, app, PathInstallScript); code != 200 || body != "#!/bin/sh\nmain \"$@\"\n" {
		t.Errorf("install.sh: %d %q", code, body)
	}
	for _, content := range []string{"version one", "version two, longer"} {
		if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		// A new mtime even on a coarse clock.
		later := time.Now().Add(time.Duration(len(content)) * time.Second)
		os.Chtimes(bin, later, later) //nolint:errcheck
		sum := sha256.Sum256([]byte(content))
		if code, body := get(t, app, PathAgentChecksum); code != 200 || body != hex.EncodeToString(sum[:])+"  clusterducks\n" {
			t.Errorf("checksum of %q: %d %q", content, code, body)
		}
		if code, body := get(t, app, PathAgentBinary); code != 200 || body != content {
			t.Errorf("binary: %d %q, want %q", code, body, content)
		}
	}

	missing := NewApp()
	(&Downloads{Binary: filepath.Join(t.TempDir(), "none")}).Mount(missing)
	code, body := get(t, missing, PathAgentChecksum)
	var e ErrorBody
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		t.Errorf("missing binary: %d %q", code, body)
	}
}

// Only a static x86-64 executable is served as the agent by default.
func TestStaticLinuxAMD64(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// This test binary is built with CGO_ENABLED=0 like the release; /bin/sh is dynamic.
	if os.Getenv("CGO_ENABLED") == "0" && !staticLinuxAMD64(self) {
		t.Errorf("%s is not seen as static", self)
	}
	if staticLinuxAMD64("/bin/sh") {
		t.Error("/bin/sh is seen as static")
	}
	if staticLinuxAMD64("downloads.go") {
		t.Error("a Go source file is seen as an executable")
	}
}

// /metrics with a token answers only a scrape that sends it.
func TestMetricsToken(t *testing.T) {
	app := NewApp()
	MountMetrics(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "clusterducks_up 1\n") //nolint:errcheck
	}), "s3cret", harness.NewDB(t, "sqlite"))
	if code, _ := get(t, app, PathMetrics); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	if code, _ := get(t, app, PathMetrics, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d", code)
	}
	if code, body := get(t, app, PathMetrics, "Authorization", "Bearer s3cret"); code != 200 || !strings.Contains(body, "clusterducks_up 1") {
		t.Errorf("with the token: %d %q", code, body)
	}
	// An agent's metrics (through its tunnel: TestTunnelLabVM) are behind the same token,
	// and a server that is not there is said so.
	for _, c := range []struct {
		path, token string
		want        int
		says        string
	}{
		{"/metrics/servers/1", "", http.StatusUnauthorized, "scrape token"},
		{"/metrics/servers/x", "Bearer s3cret", http.StatusBadRequest, "id"},
		{"/metrics/servers/99", "Bearer s3cret", http.StatusNotFound, "99"},
	} {
		if code, body := get(t, app, c.path, "Authorization", c.token); code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("GET %s: %d %q, want %d saying %q", c.path, code, body, c.want, c.says)
		}
	}
}
