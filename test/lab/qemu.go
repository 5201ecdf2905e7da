package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The storage servers' emulator.
//
// Under TCG a guest's AES instructions are emulated. QEMU 7.2, Debian bookworm's, emulates
// them in plain C, slower than software ChaCha20, so with it the lab hides AES from its
// guests. From QEMU 8.1 on, TCG runs a guest's AES rounds (and from 8.2 its carry-less
// multiplications) on the host's own AES-NI and PCLMULQDQ: AES-GCM in a guest, the cipher
// real servers use, then costs a fraction of what it did, and the lab shows the guests the
// AES flag as real servers have it. Replication's stream is where it shows: the kernel's
// TLS seals it with AES-GCM (test/bench/replication/RESULTS.md).
//
// The lab takes the host's qemu when it is new enough. Otherwise it fetches the host
// release's backports build of qemu-system-x86 once, from the machine's own mirror, into
// the lab cache (CacheDir/qemu-<version>), without touching the machine's apt
// configuration or its installed qemu; the device VMs (iPXE) keep the installed one. When
// neither works, it says so and runs the installed qemu with AES hidden.
//
// CLUSTERDUCKS_LAB_QEMU names an emulator binary to use instead; CLUSTERDUCKS_LAB_CPU
// replaces the -cpu value (an experiment's knob).

// emulator is how the storage-server VMs are run.
type emulator struct {
	Bin     string   // qemu-system-x86_64
	Args    []string // before the VM's own (-L for a fetched build's firmware)
	Env     []string // added to the environment (QEMU_MODULE_DIR for a fetched build)
	CPU     string   // the -cpu value
	Version string
}

// cpuFor is the -cpu value for a qemu version: AES shown to the guests when TCG runs it on
// the host's AES-NI.
func cpuFor(major, minor int) string {
	if major > 8 || major == 8 && minor >= 1 {
		return "max"
	}
	return "max,aes=off"
}

var (
	emuOnce sync.Once
	emu     emulator
)

// serverEmulator returns the emulator of the storage-server VMs, fetching it on first use.
func serverEmulator(ctx context.Context, logf func(string, ...any)) emulator {
	emuOnce.Do(func() {
		emu = chooseEmulator(ctx, logf)
		if cpu := os.Getenv("CLUSTERDUCKS_LAB_CPU"); cpu != "" {
			emu.CPU = cpu
		}
		logf("lab: storage servers run in QEMU %s (%s), -cpu %s", emu.Version, emu.Bin, emu.CPU)
	})
	return emu
}

func chooseEmulator(ctx context.Context, logf func(string, ...any)) emulator {
	if bin := os.Getenv("CLUSTERDUCKS_LAB_QEMU"); bin != "" {
		e := emulator{Bin: bin}
		if err := e.probe(); err != nil {
			logf("lab: CLUSTERDUCKS_LAB_QEMU=%s: %v", bin, err)
		}
		return e
	}
	installed := emulator{Bin: "qemu-system-x86_64"}
	if err := installed.probe(); err == nil && installed.CPU == "max" {
		return installed
	}
	fetched, err := fetchEmulator(ctx, logf, CacheDir)
	if err == nil {
		return fetched
	}
	logf("lab: no QEMU >= 8.1 (%v): the storage servers run in the installed QEMU %s with AES hidden from them, "+
		"so replication's encrypted stream is slower than on real servers", err, installed.Version)
	installed.CPU = "max,aes=off"
	return installed
}

var qemuVersion = regexp.MustCompile(`QEMU emulator version ((\d+)\.(\d+)\S*)`)

// parseVersion reads qemu's --version output: its version and the -cpu value for it.
func parseVersion(out string) (version, cpu string, err error) {
	m := qemuVersion.FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("no version in %q", tailString(out, 200))
	}
	major, _ := strconv.Atoi(m[2])
	minor, _ := strconv.Atoi(m[3])
	return m[1], cpuFor(major, minor), nil
}

// probe runs the emulator's --version and sets Version and CPU from it.
func (e *emulator) probe() error {
	cmd := exec.Command(e.Bin, "--version")
	cmd.Env = append(os.Environ(), e.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %v: %s", e.Bin, err, tailString(string(out), 400))
	}
	version, cpu, err := parseVersion(string(out))
	if err != nil {
		return fmt.Errorf("%s --version: %w", e.Bin, err)
	}
	e.Version, e.CPU = version, cpu
	return nil
}

// fetchedEmulator is the emulator unpacked in dir.
func fetchedEmulator(dir string) emulator {
	return emulator{
		Bin:  filepath.Join(dir, "usr/bin/qemu-system-x86_64"),
		Args: []string{"-L", filepath.Join(dir, "usr/share/qemu")},
		Env:  []string{"QEMU_MODULE_DIR=" + filepath.Join(dir, "usr/lib/x86_64-linux-gnu/qemu")},
	}
}

// emulatorPackages are what a fetched emulator unpacks: the binary, its modules and its
// firmware. Its shared libraries are the installed qemu's (HostPackages).
var emulatorPackages = []string{"qemu-system-x86", "qemu-system-common", "qemu-system-data"}

// fetchEmulator returns the newest emulator unpacked in cache (the lab's CacheDir), first
// downloading the host release's backports build when there is none.
func fetchEmulator(ctx context.Context, logf func(string, ...any), cache string) (emulator, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return emulator{}, err
	}
	unlock, err := lockFile(ctx, filepath.Join(cache, "qemu.lock"), func() {
		logf("lab: another process is fetching QEMU: waiting for it")
	})
	if err != nil {
		return emulator{}, err
	}
	defer unlock()
	if e, ok := cachedEmulator(cache); ok {
		return e, nil
	}
	codename, err := hostCodename()
	if err != nil {
		return emulator{}, err
	}
	mirror, err := mirrorFor(codename)
	if err != nil {
		return emulator{}, err
	}
	start := time.Now()
	work, err := os.MkdirTemp(cache, "qemu-fetch-")
	if err != nil {
		return emulator{}, err
	}
	defer os.RemoveAll(work)
	for _, d := range []string{"lists/partial", "parts", "debs"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return emulator{}, err
		}
	}
	list := filepath.Join(work, "sources.list")
	line := fmt.Sprintf("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s-backports main\n", mirror, codename)
	if err := os.WriteFile(list, []byte(line), 0o644); err != nil {
		return emulator{}, err
	}
	apt := func(tool string, args ...string) error {
		full := []string{"-q", "-o", "Dir::Etc::SourceList=" + list, "-o", "Dir::Etc::SourceParts=" + filepath.Join(work, "parts"),
			"-o", "Dir::State::Lists=" + filepath.Join(work, "lists"), "-o", "APT::Sandbox::User=root",
			"-o", "Debug::NoLocking=1"}
		cmd := exec.CommandContext(ctx, tool, append(full, args...)...)
		cmd.Dir = filepath.Join(work, "debs")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, tailString(string(out), 800))
		}
		return nil
	}
	if err := apt("apt-get", "update"); err != nil {
		return emulator{}, err
	}
	if err := apt("apt-get", append([]string{"download"}, emulatorPackages...)...); err != nil {
		return emulator{}, err
	}
	debs, _ := filepath.Glob(filepath.Join(work, "debs", "*.deb"))
	if len(debs) != len(emulatorPackages) {
		return emulator{}, fmt.Errorf("apt-get download: %d packages, want %d", len(debs), len(emulatorPackages))
	}
	version, err := exec.Command("dpkg-deb", "-f", debs[0], "Version").Output()
	if err != nil {
		return emulator{}, fmt.Errorf("dpkg-deb -f %s: %w", debs[0], err)
	}
	root := filepath.Join(work, "root")
	for _, d := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", d, root).CombinedOutput(); err != nil {
			return emulator{}, fmt.Errorf("dpkg-deb -x %s: %v: %s", d, err, out)
		}
	}
	e := fetchedEmulator(root)
	if err := e.probe(); err != nil {
		return emulator{}, err
	}
	if e.CPU != "max" {
		return emulator{}, fmt.Errorf("%s-backports has QEMU %s, older than 8.1", codename, e.Version)
	}
	dir := filepath.Join(cache, "qemu-"+sanitizeVersion(strings.TrimSpace(string(version))))
	// A directory of that name that cachedEmulator passed over does not run: replace it.
	if err := os.RemoveAll(dir); err != nil {
		return emulator{}, err
	}
	if err := os.Rename(root, dir); err != nil {
		return emulator{}, err
	}
	logf("lab: fetched QEMU %s from %s-backports in %s", e.Version, codename, time.Since(start).Round(time.Second))
	e = fetchedEmulator(dir)
	return e, e.probe()
}

// cachedEmulator is the newest working emulator under cache/qemu-*.
func cachedEmulator(cache string) (emulator, bool) {
	dirs, _ := filepath.Glob(filepath.Join(cache, "qemu-[0-9]*"))
	var best emulator
	var bestTime time.Time
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil {
			continue
		}
		e := fetchedEmulator(d)
		if e.probe() != nil || e.CPU != "max" {
			continue
		}
		if best.Bin == "" || st.ModTime().After(bestTime) {
			best, bestTime = e, st.ModTime()
		}
	}
	return best, best.Bin != ""
}

var unsafeVersion = regexp.MustCompile(`[^A-Za-z0-9.+~-]`)

func sanitizeVersion(v string) string { return unsafeVersion.ReplaceAllString(v, "_") }

// hostCodename is the host's Debian release (VERSION_CODENAME of /etc/os-release).
func hostCodename() (string, error) {
	env, err := readEnvFile("/etc/os-release")
	if err != nil {
		return "", err
	}
	if v := strings.Trim(env["VERSION_CODENAME"], `"`); v != "" {
		return v, nil
	}
	return "", errors.New("/etc/os-release: no VERSION_CODENAME")
}
