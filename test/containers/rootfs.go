// Package containerstest runs ctemplates and containers through their real parts: a dev
// panel, its tunnel, and a storage-lab VM booted with systemd whose agent runs
// systemd-nspawn machines on OpenZFS clones.
package containerstest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// busyboxCache is where the harness keeps Debian's busybox-static, downloaded once with
// apt (the only way anything reaches this machine from outside) and unpacked.
var busyboxCache = "/var/cache/clusterducks/busybox-static"

// Busybox returns the path of a static busybox binary from Debian's busybox-static
// package, fetched with `apt-get download` and unpacked with dpkg-deb the first time
// (the package is not installed: it would replace the host's busybox).
func Busybox(ctx context.Context) (string, error) {
	bin := filepath.Join(busyboxCache, "root", "bin", "busybox")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	dl := filepath.Join(busyboxCache, "deb")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(actx, "apt-get", "download", "-q", "busybox-static")
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download busybox-static: %w: %s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "busybox-static_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download left no busybox-static package in %s", dl)
	}
	tmp := filepath.Join(busyboxCache, fmt.Sprintf("root.%d", os.Getpid()))
	if out, err := exec.CommandContext(actx, "dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x: %w: %s", err, out)
	}
	if err := os.Rename(tmp, filepath.Join(busyboxCache, "root")); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(bin); serr != nil { // another test unpacked it first: fine
			return "", err
		}
	}
	return bin, nil
}

// OSRelease is the os-release of the tiny root file system (systemd-nspawn refuses a
// directory without one).
const OSRelease = "ID=clusterducks-test\nNAME=\"clusterducks test rootfs\"\nPRETTY_NAME=\"busybox\"\n"

// Rootfs is a tar of a root file system made of busybox, its applets as symlinks,
// /etc/os-release and the empty directories nspawn mounts on, plus pad bytes of
// incompressible filler (0: none) in /pad, for upload sizes.
func Rootfs(busybox string, pad int64) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := WriteRootfs(&buf, bb, pad); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rootfsTime is every entry's modification time: fixed, so that the same arguments give
// the same bytes (the benchmark computes the checksum in a first pass, then streams a
// second one).
var rootfsTime = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// WriteRootfs writes Rootfs's tar to w (busybox's bytes given), streaming the filler.
func WriteRootfs(w io.Writer, busybox []byte, pad int64) error {
	tw := tar.NewWriter(w)
	now := rootfsTime
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "run", "tmp", "var", "usr", "root", "www"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	if err := file(tw, "bin/busybox", 0o755, busybox, now); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "echo", "sleep", "cat", "httpd", "ls"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	}
	if err := file(tw, "etc/os-release", 0o644, []byte(OSRelease), now); err != nil {
		return err
	}
	if pad > 0 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pad", Mode: 0o644, Size: pad, ModTime: now}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, filler(), pad); err != nil {
			return err
		}
	}
	return tw.Close()
}

func file(tw *tar.Writer, name string, mode int64, b []byte, at time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: at}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// filler is an endless stream of chained sha256 blocks: incompressible and repeatable.
func filler() io.Reader { return &fill{block: sha256.Sum256([]byte("clusterducks"))} }

type fill struct {
	block [32]byte
	off   int
}

func (f *fill) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if f.off == len(f.block) {
			f.block, f.off = sha256.Sum256(f.block[:]), 0
		}
		c := copy(p[n:], f.block[f.off:])
		n += c
		f.off += c
	}
	return n, nil
}

// SHA256 is the hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
