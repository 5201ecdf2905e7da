package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

//go:embed build-image.sh
var buildScript []byte

// CacheDir holds the images, the built binaries and the running VMs' state. It lives
// outside the repository so that a fresh checkout reuses what an earlier one built.
var CacheDir = "/var/cache/clusterducks/lab"

// HostPackages are the Debian packages the lab needs on the host.
var HostPackages = []string{
	"debootstrap", "debian-archive-keyring", "qemu-system-x86", "qemu-utils", "e2fsprogs", "util-linux",
}

// Image is a built storage-server image: an ext4 root file system plus the kernel and
// initrd it boots with.
type Image struct {
	Root          string // raw ext4 image, used read-only as the overlays' backing file
	Kernel        string
	Initrd        string
	KernelVersion string
	ZFSVersion    string
}

// suite is the Debian release the guest runs; it must match build-image.sh.
const suite = "bookworm"

// recipeHash names what goes into an image: the build script (package list, stage-1
// init) and the archive it is built from. A change to either makes a new image.
func recipeHash(mirror string) string {
	h := sha256.New()
	h.Write(buildScript)
	h.Write([]byte("\x00" + mirror + "\x00" + suite))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// EnsureImage returns the cached image for the current recipe, building it first when
// there is none (12–15 minutes on two cores). Concurrent callers, in this process or
// another, wait for one build. logf receives progress; it may be nil.
// Setting CLUSTERDUCKS_LAB_REBUILD=1 forces a new build (to pick up archive updates);
// CLUSTERDUCKS_LAB_PRUNE=1 removes the other recipes' images after a build.
func EnsureImage(ctx context.Context, logf func(format string, args ...any)) (*Image, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := harness.InstallPackages(HostPackages...); err != nil {
		return nil, fmt.Errorf("lab host packages: %w", err)
	}
	mirror, err := HostMirror()
	if err != nil {
		return nil, err
	}
	key := recipeHash(mirror)
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return nil, err
	}
	if img, ok := findImage(key); ok && os.Getenv("CLUSTERDUCKS_LAB_REBUILD") != "1" {
		return img, nil
	}

	lock := filepath.Join(CacheDir, "build.lock")
	unlock, err := lockFile(ctx, lock, func() {
		logf("lab: another process is building the lab image (it holds %s): waiting for it to finish", lock)
	})
	if err != nil {
		return nil, fmt.Errorf("lab image lock: %w", err)
	}
	defer unlock()
	// Whoever held the lock before may have built it meanwhile.
	if img, ok := findImage(key); ok && os.Getenv("CLUSTERDUCKS_LAB_REBUILD") != "1" {
		return img, nil
	}
	// Under the lock no build runs, so every build directory left is from a killed one.
	if err := cleanBuildDirs(); err != nil {
		return nil, err
	}

	work := filepath.Join(CacheDir, fmt.Sprintf("build-%d", os.Getpid()))
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	script := filepath.Join(work, "build-image.sh")
	if err := os.WriteFile(script, buildScript, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(work, "out")
	logf("lab: building the storage-server image from %s (recipe %s); this takes 12-15 minutes", mirror, key)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", script, mirror, filepath.Join(work, "tmp"), out)
	// The script unmounts on SIGTERM/EXIT; give it time to do so before a kill.
	// It runs in its own process group so that apt and dkms stop with it, and is told to
	// stop when this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	logFile, err := os.Create(filepath.Join(work, "build.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	err = cmd.Start()
	if err == nil {
		// The next build kills this one's process group if it outlives this process.
		os.WriteFile(filepath.Join(work, "script.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644) //nolint:errcheck
		err = cmd.Wait()
	}
	if err != nil {
		b, _ := os.ReadFile(logFile.Name())
		cleanBuildDirs() //nolint:errcheck // best effort; the next build cleans again
		return nil, fmt.Errorf("lab image build (%s): %w\n%s", time.Since(start).Round(time.Second), err, tailString(string(b), 4000))
	}
	env, err := readEnvFile(out + ".env")
	if err != nil {
		return nil, err
	}
	kver, zver := env["KERNEL"], env["ZFS"]
	if kver == "" || zver == "" {
		return nil, fmt.Errorf("lab image build: no versions in %s.env", out)
	}
	base := filepath.Join(CacheDir, fmt.Sprintf("%s-%s-%s", kver, zver, key))
	// The .img is renamed last: its presence means the set is complete.
	for _, ext := range []string{".env", ".vmlinuz", ".initrd", ".img"} {
		if err := os.Rename(out+ext, base+ext); err != nil {
			return nil, fmt.Errorf("lab image: %w", err)
		}
	}
	logf("lab: image %s built in %s", filepath.Base(base)+".img", time.Since(start).Round(time.Second))
	os.RemoveAll(work) //nolint:errcheck
	// Other worktrees may still boot an older recipe's image: pruning is asked for, never implied.
	if os.Getenv("CLUSTERDUCKS_LAB_PRUNE") == "1" {
		pruneImages(key)
	}
	img, ok := findImage(key)
	if !ok {
		return nil, errors.New("lab image: built but not found")
	}
	return img, nil
}

// findImage returns the complete image built from recipe key, if there is one.
func findImage(key string) (*Image, bool) {
	matches, _ := filepath.Glob(filepath.Join(CacheDir, "*-"+key+".img"))
	for _, m := range matches {
		base := strings.TrimSuffix(m, ".img")
		img := &Image{Root: m, Kernel: base + ".vmlinuz", Initrd: base + ".initrd"}
		if !fileExists(img.Kernel) || !fileExists(img.Initrd) {
			continue
		}
		// <kernel>-<zfs>-<key>: the kernel version has dashes, the zfs version starts after the last but one.
		if env, err := readEnvFile(base + ".env"); err == nil {
			img.KernelVersion, img.ZFSVersion = env["KERNEL"], env["ZFS"]
		}
		return img, true
	}
	return nil, false
}

// pruneImages removes the images of other recipes, which nothing will boot again. A VM
// still running on one keeps its open file until it stops.
func pruneImages(key string) {
	imgs, _ := filepath.Glob(filepath.Join(CacheDir, "*.img"))
	for _, img := range imgs {
		base := strings.TrimSuffix(img, ".img")
		if strings.HasSuffix(base, "-"+key) {
			continue
		}
		for _, ext := range []string{".img", ".vmlinuz", ".initrd", ".env"} {
			os.Remove(base + ext) //nolint:errcheck
		}
	}
}

// cleanBuildDirs removes the work directories of builds that were killed. It must only
// run under the build lock. Mounts inside them are undone first; a directory that still
// has a mount is left alone rather than risk deleting through a bind mount of /dev.
func cleanBuildDirs() error {
	dirs, _ := filepath.Glob(filepath.Join(CacheDir, "build-*"))
	for _, d := range dirs {
		killStaleBuild(d)
		if err := unmountUnder(d); err != nil {
			return err
		}
		if err := exec.Command("rm", "-rf", "--one-file-system", d).Run(); err != nil {
			return fmt.Errorf("remove stale build %s: %w", d, err)
		}
	}
	return nil
}

// killStaleBuild kills the process group of a build script that outlived its driver,
// if the pid in dir/script.pid is still that script (its command line names dir).
func killStaleBuild(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "script.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), dir+"/") {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL) //nolint:errcheck
	for range 100 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	for range 3 {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			return nil
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := syscall.Unmount(mounts[i], 0); err != nil {
				syscall.Unmount(mounts[i], syscall.MNT_DETACH) //nolint:errcheck
			}
		}
	}
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("stale mounts remain under %s: %v", dir, m)
	}
	return nil
}

// mountsUnder lists the mount points at or below dir in /proc/mounts order (parents first).
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		mp := unescapeMount(fields[1])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// HostMirror returns the Debian archive URL the host's apt uses for the guest's suite,
// from deb822 files in /etc/apt/sources.list.d or the one-line /etc/apt/sources.list.
func HostMirror() (string, error) { return mirrorFor(suite) }

// mirrorFor is the URI of the machine's apt source for Debian suite's main component.
func mirrorFor(suite string) (string, error) {
	var files []string
	d822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, d822...)
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, "/etc/apt/sources.list")
	files = append(files, lists...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorFromDeb822(string(b), suite)
		} else {
			uri = mirrorFromList(string(b), suite)
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no apt source for Debian %s main in /etc/apt", suite)
}

// mirrorFromDeb822 picks the first URI of an enabled "deb" stanza that carries suite and main.
func mirrorFromDeb822(text, suite string) string {
	for _, stanza := range splitStanzas(text) {
		if strings.EqualFold(stanza["enabled"], "no") {
			continue
		}
		if !hasField(stanza["types"], "deb") || !hasField(stanza["suites"], suite) || !hasField(stanza["components"], "main") {
			continue
		}
		if uris := strings.Fields(stanza["uris"]); len(uris) > 0 {
			return strings.TrimSuffix(uris[0], "/")
		}
	}
	return ""
}

// mirrorFromList reads one-line "deb [opts] URI suite components" entries.
func mirrorFromList(text, suite string) string {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) >= 3 && f[1] == suite && hasField(strings.Join(f[2:], " "), "main") {
			return strings.TrimSuffix(f[0], "/")
		}
	}
	return ""
}

// splitStanzas parses deb822 text into lower-cased field maps; continuation lines are
// joined, comments dropped.
func splitStanzas(text string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, last = map[string]string{}, ""
	}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			cur[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

func hasField(list, want string) bool {
	for _, f := range strings.Fields(list) {
		if f == want {
			return true
		}
	}
	return false
}

func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends; waiting, when set,
// is called once if the lock is held by another process (so the wait is not silent).
func lockFile(ctx context.Context, path string, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
