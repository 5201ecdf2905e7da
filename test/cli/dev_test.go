// Package cli_test runs the clusterducks binary as an operator would.
package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

var binary string

// TestMain compiles the binary once for all tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clusterducks-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "clusterducks")
	cmd := exec.Command("go", "build", "-tags", harness.BuildTags, "-o", binary, ".")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build: " + err.Error() + "\n" + string(out))
	}
	code := harness.RunWithPostgres(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// startDev runs `clusterducks dev` and returns the dashboard URL and the printed token.
func startDev(t *testing.T, bin, data string, args ...string) (url, token string, lines []string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"dev", "--data", data, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { cancel(); cmd.Wait() } //nolint:errcheck
	t.Cleanup(stop)
	sc := bufio.NewScanner(out)
	found := make(chan struct{})
	go func() {
		for sc.Scan() {
			line := sc.Text()
			lines = append(lines, line)
			if m := regexp.MustCompile(`Dashboard: (http://\S+)/`).FindStringSubmatch(line); m != nil {
				url = m[1]
			}
			if tok, ok := strings.CutPrefix(line, "API token: "); ok {
				token = tok
				close(found)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-found:
	case <-time.After(120 * time.Second):
		t.Fatalf("dev printed no API token in 120 s: %q", lines)
	}
	return url, token, lines, stop
}

// TestDevGuide: `clusterducks dev` prints its URLs and the admin's credentials once, and
// the guide's curl sequence works with the printed token; a restart prints a fresh token.
func TestDevGuide(t *testing.T) {
	bin := binary
	data := t.TempDir()
	url, token, lines, _ := startDev(t, bin, data)
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"E-mail:   admin@localhost", "Password: ", "API:       " + url + "/api/v0.9.2/"} {
		if !strings.Contains(joined, want) {
			t.Errorf("first start output lacks %q:\n%s", want, joined)
		}
	}
	cmd := exec.Command("bash", "../api/testdata/guide.sh")
	cmd.Env = append(os.Environ(), "PANEL="+url, "API_TOKEN="+token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("guide's curl sequence against dev: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "clusterducks ") {
		t.Errorf("version: %q %v", out, err)
	}
}

// TestDevRestart: `migrate` prepares an empty database; the password is printed only at
// the first start; a restart prints a fresh dev token that works.
func TestDevRestart(t *testing.T) {
	data := t.TempDir()
	out, err := exec.Command(binary, "migrate", "--db", "sqlite:"+filepath.Join(data, "panel.db")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "migration(s) [202611240001_initial") {
		t.Fatalf("migrate: %v %s", err, out)
	}
	_, _, first, stop := startDev(t, binary, data)
	if !strings.Contains(strings.Join(first, "\n"), "Password: ") {
		t.Fatalf("first start on a migrated but empty database printed no password: %q", first)
	}
	stop()
	url, token, again, _ := startDev(t, binary, data)
	if strings.Contains(strings.Join(again, "\n"), "Password: ") {
		t.Errorf("restart printed a password again: %q", again)
	}
	req, _ := http.NewRequest("GET", url+"/api/v0.9.2/networks.json", nil)
	req.Header.Set("Authorization", `Token token="`+token+`"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("fresh dev token: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestPanelPostgres: `clusterducks panel` on PostgreSQL (DATABASE_URL) migrates, prints the
// first admin's credentials once and serves the API.
func TestPanelPostgres(t *testing.T) {
	dsn := harness.SharedPostgres(t).NewDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "panel", "--listen", addr)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "TEMPORAL_VERSION_CHECK_DISABLED=1")
	out := &proc.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }() //nolint:errcheck
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "API token: ") {
		if time.Now().After(deadline) {
			t.Fatalf("panel printed no token: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var token string
	for _, line := range strings.Split(out.String(), "\n") {
		if tok, ok := strings.CutPrefix(line, "API token: "); ok {
			token = tok
		}
	}
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v0.9.2/clients.json", nil)
		req.Header.Set("Authorization", `Token token="`+token+`"`)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET clients.json: %d", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("panel not serving: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDevTemporalPortTaken: with the Temporal port it is given already taken (by a
// listener this test opens on a free port, standing for another Temporal on 7233), dev
// says so in one line, starts on a free port, and the admin's token works.
func TestDevTemporalPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	url, token, lines, _ := startDev(t, binary, t.TempDir(), "--temporal-port", strconv.Itoa(port), "--no-temporal-ui")
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, fmt.Sprintf("Temporal's port %d is taken", port)) || strings.Contains(joined, "panic") || strings.Contains(joined, "goroutine ") {
		t.Fatalf("output with the port taken:\n%s", joined)
	}
	req, _ := http.NewRequest("GET", url+"/api/v0.9.2/account.json", nil)
	req.Header.Set("Authorization", `Token token="`+token+`"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the admin's token with Temporal on another port: %v %v", resp, err)
	}
	resp.Body.Close()
}
