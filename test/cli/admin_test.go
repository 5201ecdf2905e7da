package cli_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quietDev runs `clusterducks dev` until it has printed its API token, then stops it with
// Ctrl-C (SIGINT) and returns its standard output, its standard error and its exit error.
func quietDev(t *testing.T, data string) (stdout, stderr string, waitErr error) {
	t.Helper()
	cmd := exec.Command(binary, "dev", "--data", data, "--listen", "127.0.0.1:0", "--temporal-port", "-1", "--no-temporal-ui")
	_, stdout, stderr, waitErr = runUntilToken(t, cmd, 120*time.Second)
	return stdout, stderr, waitErr
}

// runUntilToken starts cmd (a dev panel, directly or through `go tool task`) in its own
// process group, waits up to wait for its API token, then sends Ctrl-C (SIGINT) to the
// group as a terminal does. It returns the standard error printed before and after
// Ctrl-C, the standard output, and the exit error.
func runUntilToken(t *testing.T, cmd *exec.Cmd, wait time.Duration) (startErr, stdout, stderr string, waitErr error) {
	t.Helper()
	cmd.Env = append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	errb := &lockedBuffer{}
	cmd.Stderr = errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var lines []string
	ready := make(chan struct{})
	rest := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "API token: ") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(rest)
	}()
	select {
	case <-ready:
	case <-time.After(wait):
		t.Fatalf("dev printed no API token in %s: %q\n%s", wait, lines, errb.String())
	}
	// Only what dev says from Ctrl-C on is judged (a loaded machine's start may log the
	// engine warming up; that is not the stop).
	before := errb.Len()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { <-rest; done <- cmd.Wait() }()
	select {
	case waitErr = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop within 60 s of Ctrl-C")
	}
	all := errb.String()
	return all[:before], strings.Join(lines, "\n"), all[before:], waitErr
}

// lockedBuffer is a bytes.Buffer written by the command's copier and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) Len() int       { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Len() }
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDevQuietStartAndPasswordReset: the first start names the command that resets the
// admin's password; Ctrl-C stops dev with exit 0 and no error lines; `clusterducks admin
// reset-password` gives the admin a new password that logs in.
func TestDevQuietStartAndPasswordReset(t *testing.T) {
	data := t.TempDir()
	stdout, stderr, err := quietDev(t, data)
	if want := "clusterducks admin reset-password --data " + data + " --email admin@localhost"; !strings.Contains(stdout, want) {
		t.Errorf("the first start does not name %q:\n%s", want, stdout)
	}
	if err != nil {
		t.Errorf("Ctrl-C: dev exited with %v (want 0)", err)
	}
	for _, l := range strings.Split(stderr, "\n") {
		low := strings.ToLower(l)
		if strings.Contains(low, "error") || strings.Contains(low, "panic") || strings.HasPrefix(l, "clusterducks:") {
			t.Errorf("Ctrl-C: an error line: %s", l)
		}
	}

	out, rerr := exec.Command(binary, "admin", "reset-password", "--data", data, "--email", "admin@localhost").CombinedOutput()
	m := regexp.MustCompile(`Password: (\S+)`).FindSubmatch(out)
	if rerr != nil || m == nil {
		t.Fatalf("admin reset-password: %v\n%s", rerr, out)
	}
	if out, err := exec.Command(binary, "admin", "reset-password", "--data", data, "--email", "nobody@localhost").CombinedOutput(); err == nil || !strings.Contains(string(out), "not found") {
		t.Errorf("reset for an unknown user: %v %s", err, out)
	}

	dashboard, _, _, _ := startDevAgain(t, data)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(dashboard + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if csrf == nil {
		t.Fatalf("login page without a CSRF field:\n%s", page)
	}
	resp, err = c.PostForm(dashboard+"/login", url.Values{"email": {"admin@localhost"}, "password": {string(m[1])}, "csrf": {string(csrf[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with the reset password: %d", resp.StatusCode)
	}
}

// startDevAgain starts dev on data (not its first start) and leaves it running for the test.
func startDevAgain(t *testing.T, data string) (dashboard, token string, lines []string, stop func()) {
	return startDev(t, binary, data, "--temporal-port", "-1", "--no-temporal-ui")
}

// TestTaskDevSaysItBuilds: `go tool task dev` says first that it is building and how long
// the first build takes, builds bin/clusterducks with the build tags the tests use (so here
// it only links: the cache is warm from TestMain), runs dev with the flags after `--`, and
// Ctrl-C ends it with exit 0.
func TestTaskDevSaysItBuilds(t *testing.T) {
	cmd := exec.Command("go", "tool", "task", "dev", "--", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--temporal-port", "-1", "--no-temporal-ui")
	cmd.Dir = "../.."
	start, stdout, stop, err := runUntilToken(t, cmd, 5*time.Minute)
	if first, _, _ := strings.Cut(strings.TrimLeft(start, "\n"), "\n"); !strings.Contains(first, "building clusterducks") || !strings.Contains(first, "min on 2 cores; later starts take seconds") {
		t.Errorf("task dev's first line is not the build notice: %q\n%s", first, start)
	}
	if !strings.Contains(stdout, "E-mail:   admin@localhost") {
		t.Errorf("task dev did not pass the flags to dev or dev did not start:\n%s", stdout)
	}
	if err != nil {
		t.Errorf("Ctrl-C: task dev exited with %v (want 0)\n%s", err, stop)
	}
	for _, l := range strings.Split(stop, "\n") {
		if low := strings.ToLower(l); strings.Contains(low, "error") || strings.Contains(low, "panic") || strings.HasPrefix(l, "clusterducks:") {
			t.Errorf("Ctrl-C: an error line: %s", l)
		}
	}
}
