package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Each VM has a state directory CacheDir/run/<name>-<owner pid>-<n> holding "owner"
// (the pid and start time of the process that started it), qemu's pid file, the overlay,
// the pool disk and the share. A directory whose owner is gone belongs to a killed run.

func runDir() string { return filepath.Join(CacheDir, "run") }

// newStateDir creates a state directory for a VM of this process.
func newStateDir(name string) (string, error) {
	if err := os.MkdirAll(runDir(), 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(runDir(), fmt.Sprintf("%s-%d-", name, os.Getpid()))
	if err != nil {
		return "", err
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// serverInfo is what Find needs to reach a server another process started.
type serverInfo struct {
	Name  string      `json:"name"`
	UUID  string      `json:"uuid"`
	Pool  string      `json:"pool"`
	Ports map[int]int `json:"ports"`
	Token string      `json:"token"`
}

func (s *Server) writeInfo() error {
	b, err := json.Marshal(serverInfo{Name: s.Name, UUID: s.UUID, Pool: s.Pool, Ports: s.ports, Token: s.token})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "server.json"), b, 0o600)
}

// Find returns a ready server named name that another live process (such as `task lab`)
// started, for Exec, Addr and Log. It cannot be stopped from here.
func Find(name string) (*Server, error) {
	dirs, _ := filepath.Glob(filepath.Join(runDir(), name+"-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "server.json"))
		if err != nil || !ownerAlive(d) {
			continue
		}
		var info serverInfo
		if err := json.Unmarshal(b, &info); err != nil || info.Name != name {
			continue
		}
		done := make(chan struct{})
		return &Server{Name: info.Name, UUID: info.UUID, Pool: info.Pool, Dir: d, Share: filepath.Join(d, "share"),
			ports: info.Ports, token: info.Token, done: done, attached: true}, nil
	}
	return nil, fmt.Errorf("lab: no running server named %q", name)
}

// CleanStale stops the VMs of runs that were killed and removes their state: a qemu is
// killed only when its pid file's process is a qemu whose command line names that state
// directory, so nothing else is ever touched. VMs of live processes are left alone.
func CleanStale() error {
	dirs, _ := filepath.Glob(filepath.Join(runDir(), "*"))
	var errs []error
	for _, d := range dirs {
		if ownerAlive(d) {
			continue
		}
		if err := killStaleQemu(d); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unmountUnder(d); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerAlive reports whether the process that created dir still runs (same pid and the
// same start time, so a reused pid does not count).
func ownerAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "owner"))
	if err != nil {
		// Being created right now, or garbage: judge by age.
		st, err := os.Stat(dir)
		return err == nil && time.Since(st.ModTime()) < time.Minute
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	start, err := procStartTime(pid)
	return err == nil && start == f[1]
}

func killStaleQemu(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil // gone
	}
	args := bytes.Split(cmdline, []byte{0})
	if len(args) == 0 || !strings.HasPrefix(filepath.Base(string(args[0])), "qemu-system") ||
		!bytes.Contains(cmdline, []byte(dir+"/")) {
		return nil // the pid was reused by something that is not ours
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill stale qemu %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return nil
		}
		// A zombie whose parent is gone is reaped by init shortly.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && statState(string(st)) == "Z" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("stale qemu %d did not exit", pid)
}

// procStartTime returns field 22 of /proc/<pid>/stat (start time in clock ticks).
func procStartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	// The command name (field 2) may contain spaces; fields are counted after its ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("bad stat for %d", pid)
	}
	return f[19], nil
}

func statState(s string) string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}
