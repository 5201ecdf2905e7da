package chaos

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
)

// TestDeployUnits: every systemd unit in deploy/ passes `systemd-analyze verify` with no
// complaint (unknown keys, bad values), its clusterducks path pointed at a real executable.
func TestDeployUnits(t *testing.T) {
	if err := harness.InstallPackages("systemd"); err != nil {
		t.Fatal(err)
	}
	units := deployFiles(t, ".service")
	if len(units) == 0 {
		t.Fatal("no systemd unit under deploy/")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(t.TempDir(), filepath.Base(u))
		if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/clusterducks", exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", tmp).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}

// TestDeployEnvironment: every variable the example environment files set (or show
// commented out) is one the code reads, so an example never names a setting that does
// nothing.
func TestDeployEnvironment(t *testing.T) {
	root, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err != nil || (d.IsDir() && (d.Name() == ".git" || d.Name() == "test")) {
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, _ := os.ReadFile(path)
			src.Write(b)
		}
		return nil
	})
	code := src.String()
	setting := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]+)=`)
	envs := deployFiles(t, ".env")
	if len(envs) == 0 {
		t.Fatal("no example environment file under deploy/")
	}
	for _, f := range envs {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for n := 1; sc.Scan(); n++ {
			if m := setting.FindStringSubmatch(sc.Text()); m != nil && !strings.Contains(code, `"`+m[1]+`"`) {
				t.Errorf("%s:%d: %s is read by no code", f, n, m[1])
			}
		}
		fh.Close()
	}
}

func deployFiles(t *testing.T, suffix string) []string {
	t.Helper()
	root, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	filepath.WalkDir(filepath.Join(root, "deploy"), func(path string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() && strings.HasSuffix(path, suffix) {
			out = append(out, path)
		}
		return nil
	})
	return out
}
