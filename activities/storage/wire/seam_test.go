package wire_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/clusterducks/clusterducks"

// deps lists what the packages link (go list -deps), with CGO_ENABLED=0 as the test
// task builds; std marks the standard library's.
func deps(t *testing.T, pkgs ...string) (all []string, std map[string]bool) {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH, so "go" is the toolchain under test.
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, msg)
	}
	std = map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, isStd, _ := strings.Cut(line, " ")
		all = append(all, path)
		std[path] = isStd == "true"
	}
	return all, std
}

// forbid fails for every package of all that one of the rules names.
func forbid(t *testing.T, all []string, why string, rules ...func(string) bool) {
	t.Helper()
	for _, p := range all {
		for _, r := range rules {
			if r(p) {
				t.Errorf("%s: links %s", why, p)
			}
		}
	}
}

func contains(s string) func(string) bool {
	return func(p string) bool { return strings.Contains(p, s) }
}

func under(pkg string) func(string) bool {
	return func(p string) bool { return p == module+"/"+pkg || strings.HasPrefix(p, module+"/"+pkg+"/") }
}

// The agent links no database, SQL driver, web framework or Temporal server, and none
// of the panel's packages: it reaches the panel only through this package.
func TestAgentLinksNoPanel(t *testing.T) {
	all, _ := deps(t, module+"/workers/storage", module+"/activities/storage/...")
	forbid(t, all, "the agent",
		contains("gorm.io/"), contains("/pgx"), contains("sqlite"), contains("lib/pq"), contains("gofiber/"),
		contains("go.temporal.io/server"),
		under("api"), under("models"), under("webui"), under("workflows"), under("activities/panel"), under("workers/panel"))
}

// The panel links no iSCSI target nor the agent's boot path.
func TestPanelLinksNoTarget(t *testing.T) {
	all, _ := deps(t, module+"/api", module+"/models", module+"/webui", module+"/workers/panel", module+"/workflows")
	forbid(t, all, "the panel", under("activities/storage/boot"), under("activities/storage/iscsi"), under("workers/storage"))
}

// The contract itself is standard library only, so both ends can import it freely.
func TestWireIsStandardLibraryOnly(t *testing.T) {
	all, std := deps(t, module+"/activities/storage/wire")
	for _, p := range all {
		if !std[p] && p != module+"/activities/storage/wire" {
			t.Errorf("wire links %s", p)
		}
	}
}
