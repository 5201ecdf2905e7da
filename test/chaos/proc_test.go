package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/test/harness/proc"
)

// process is one clusterducks process the test started: its output kept, killed by pid at
// the test's end (and with the test binary, through the parent-death signal).
type process struct {
	name string
	cmd  *exec.Cmd
	out  *proc.SyncBuffer
	done chan struct{}

	notify chan struct{}
}

// start runs bin with args and env (added to the test's environment).
func start(t *testing.T, name, bin string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{name: name, cmd: cmd, out: &proc.SyncBuffer{}, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.out.Write([]byte(sc.Text() + "\n")) //nolint:errcheck
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		cmd.Wait() //nolint:errcheck
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 5000))
		}
	})
	return p
}

// kill ends the process with SIGKILL (a crash, not a shutdown) and waits for it.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill() //nolint:errcheck
	<-p.done
}

// await waits until the output has a line matching re and returns the submatches.
func (p *process) await(ctx context.Context, re *regexp.Regexp, within time.Duration) ([]string, error) {
	deadline := time.After(within)
	for {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m, nil
		}
		select {
		case <-p.notify:
		case <-time.After(200 * time.Millisecond):
		case <-p.done:
			if m := re.FindStringSubmatch(p.out.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited before printing %s:\n%s", p.name, re, tail(p.out.String(), 3000))
		case <-deadline:
			return nil, fmt.Errorf("%s printed no %s in %s:\n%s", p.name, re, within, tail(p.out.String(), 3000))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var errTimeout = errors.New("timed out")

// eventually calls fn every interval until it returns nil, or fails with its last error.
func eventually(within, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s: %v", errTimeout, within, err)
		}
		time.Sleep(interval)
	}
}
