package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/clusterducks/clusterducks/test/harness"
)

// built remembers one static build per package for the life of the process.
var (
	builtMu sync.Mutex
	built   = map[string]string{}
)

// ModuleRoot returns the directory of the clusterducks module, found with `go env GOMOD`
// from the working directory (any directory inside the module works).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// BuildBinary builds the static clusterducks binary (`CGO_ENABLED=0 go build .` at the
// module root) once per process and returns its path in the cache, named by content so
// that VMs of later runs share unchanged builds.
func BuildBinary(ctx context.Context) (string, error) {
	return buildStatic(ctx, ".", "clusterducks")
}

// BuildStatic builds the main package pkg (an import path, or a path relative to the
// module root such as "./test/lab/zfsprobe") as a static linux/amd64 binary, once per
// process, and returns its path in the cache.
func BuildStatic(ctx context.Context, pkg, name string) (string, error) {
	return buildStatic(ctx, pkg, name)
}

// guestExecBinary builds the guest's exec helper (test/lab/guestexec).
func guestExecBinary(ctx context.Context) (string, error) {
	return buildStatic(ctx, "./test/lab/guestexec", "guestexec")
}

func buildStatic(ctx context.Context, pkg, name string) (string, error) {
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[pkg]; ok && fileExists(p) {
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(CacheDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", harness.BuildTags, "-o", out, pkg) // no -trimpath: share the build cache with the tests
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, tailString(string(b), 4000))
	}
	sum, err := fileSHA256(out)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, name+"-"+sum[:16])
	if !fileExists(final) {
		if err := os.Rename(out, final); err != nil {
			return "", err
		}
	} else {
		now := time.Now()
		os.Chtimes(final, now, now) //nolint:errcheck // in use: not pruned below
	}
	pruneBuilds(dir, name, final)
	built[pkg] = final
	return final, nil
}

// keepBuilds is how long a cached build nobody asked for stays: every change to the code
// makes a new one (about 230 MB for clusterducks), so a CI machine's cache would grow
// without bound. A build in use is touched each time it is asked for.
const keepBuilds = 24 * time.Hour

// pruneBuilds removes name's cached builds other than keep that were not used for keepBuilds.
func pruneBuilds(dir, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && p != keep && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > keepBuilds {
			os.Remove(p) //nolint:errcheck // best effort: the next build prunes again
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to dst. Not a hard link: the guest can write to its share, and
// must not be able to change the cached build.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
